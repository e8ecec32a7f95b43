"""What the gateway reads from its neighbours: routes, approvals, decisions, tokens.

The gateway is an interface over domain services; the composition root (:mod:`tabard.app`)
passes them in. Routes and approvals are owned by other packages
(``tabard.registry.routes``, ``tabard.policy.approvals``); the gateway reads them through
the read-only views below, which those services' values satisfy structurally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from tabard.policy import Decision, DecisionRequest

__all__ = [
    "ApprovalSource",
    "ApprovalView",
    "CredentialSpecView",
    "Decider",
    "RouteSource",
    "RouteView",
    "TokenVerifier",
]


class CredentialSpecView(Protocol):
    """How a route's upstream credential is made: ``kind`` is ``none``, ``static``,
    ``client_credentials`` or ``downstream_jwt``."""

    @property
    def kind(self) -> str: ...
    @property
    def secret(self) -> str | None: ...
    @property
    def client_id_secret(self) -> str | None: ...
    @property
    def header(self) -> str: ...
    @property
    def scheme(self) -> str | None: ...
    @property
    def token_url(self) -> str | None: ...
    @property
    def scopes(self) -> Mapping[str, str]: ...
    @property
    def audience(self) -> str | None: ...


class RouteView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def protocol(self) -> str: ...  # "mcp" | "a2a" | "http"
    @property
    def upstream(self) -> str: ...
    @property
    def audience(self) -> str | None: ...
    @property
    def credential(self) -> CredentialSpecView: ...
    @property
    def dlp_profile(self) -> str | None: ...
    @property
    def dlp_action(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def strip_headers(self) -> tuple[str, ...]: ...
    @property
    def approval_timeout(self) -> float: ...
    @property
    def user_token_issuers(self) -> tuple[str, ...]: ...  # dual-token mode, opt-in
    @property
    def push_urls(self) -> tuple[str, ...]: ...  # A2A webhook URL prefixes


class RouteSource(Protocol):
    def get(self, name: str) -> RouteView:
        """The route; a :class:`tabard.errors.NotFound` when there is none."""
        ...

    def version(self) -> int:
        """Grows on every change of any route (the gateway's caches key on it)."""
        ...


class ApprovalView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...  # "pending" | "approved" | "denied" | "expired"
    @property
    def expires_at(self) -> datetime: ...


class ApprovalSource(Protocol):
    def request(self, *, agent: str, instance: str, user: str | None, action: str,
                resource: str, route: str, reason: str, timeout: timedelta) -> ApprovalView:
        ...

    def get(self, approval_id: str) -> ApprovalView: ...


class Decider(Protocol):
    """The blended decision (:class:`tabard.policy.PolicyService` or its engine)."""

    def decide(self, request: DecisionRequest) -> Decision: ...


class TokenVerifier(Protocol):
    """The authorization server's local verification (:class:`tabard.oauth.AuthorizationServer`)."""

    @property
    def issuer(self) -> str: ...

    def verify_access_token(self, token: str) -> dict[str, Any]: ...

    def verify_user_token(self, token: str, audiences: Sequence[str]) -> dict[str, Any]: ...
