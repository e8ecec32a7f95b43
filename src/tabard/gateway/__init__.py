"""The identity gateway for MCP, A2A and HTTP (ARCHITECTURE §6, ``docs/design/gateway.md``).

:class:`Gateway` is the ASGI application; :mod:`.auth` authenticates agents and users,
:mod:`.operations` reads what a request asks, :mod:`.credentials` injects the route's
just-in-time credential, :mod:`.bindings` seals MCP session and A2A task ids to their
caller, :mod:`.pushurls` checks A2A webhook URLs, :mod:`.ports` declares what it reads
from routes, approvals, the policy engine and the authorization server; :mod:`.serve` runs
it on uvicorn.
"""

from tabard.gateway.auth import AGENT_TOKEN_HEADER, AgentIdentity, Caller
from tabard.gateway.credentials import CredentialBroker
from tabard.gateway.ports import (
    ApprovalSource,
    ApprovalView,
    CredentialSpecView,
    Decider,
    RouteSource,
    RouteView,
    TokenVerifier,
)
from tabard.gateway.service import DENIED, UNAVAILABLE, Gateway, GatewayConfig

__all__ = [
    "AGENT_TOKEN_HEADER",
    "DENIED",
    "UNAVAILABLE",
    "AgentIdentity",
    "ApprovalSource",
    "ApprovalView",
    "Caller",
    "CredentialBroker",
    "CredentialSpecView",
    "Decider",
    "Gateway",
    "GatewayConfig",
    "RouteSource",
    "RouteView",
    "TokenVerifier",
]
