"""The gateway's refusals, each with a stable code and the HTTP status it answers with."""

from __future__ import annotations

from tabard.errors import Denied, Invalid, NotFound, Unauthenticated, Unavailable

__all__ = [
    "AgentUnauthenticatedError",
    "BodyTooLargeError",
    "GatewayDeniedError",
    "GatewayUnavailableError",
    "UnknownRouteError",
    "UserTokenError",
]


class AgentUnauthenticatedError(Unauthenticated):
    code = "agent_unauthenticated"


class UserTokenError(Unauthenticated):
    code = "invalid_user_token"


class UnknownRouteError(NotFound):
    code = "unknown_route"


class BodyTooLargeError(Invalid):
    code = "body_too_large"


class GatewayDeniedError(Denied):
    code = "denied"


class GatewayUnavailableError(Unavailable):
    code = "gateway_unavailable"
