"""What the routes need, as typed dependencies: the services and the calling admin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tabard.authority import Authority
from tabard.clock import Clock
from tabard.directory import AdminPrincipal, AdminTokenService
from tabard.spiffe import TrustDomain

__all__ = ["Admin", "ServerServices", "Services", "get_services"]


@dataclass
class ServerServices:
    """Everything the REST API calls, filled in by the composition root (``tabard.app``)."""

    trust_domain: TrustDomain
    clock: Clock
    authority: Authority
    admin_tokens: AdminTokenService
    database_ready: Callable[[], bool]


def get_services(request: Request) -> ServerServices:
    services: ServerServices = request.app.state.services
    return services


Services = Annotated[ServerServices, Depends(get_services)]


def require_admin(request: Request, services: Services) -> AdminPrincipal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return services.admin_tokens.authenticate(token.strip() if scheme.lower() == "bearer" else None)


Admin = Annotated[AdminPrincipal, Depends(require_admin)]
