"""Gateway routes and approvals of held calls (admin).

``/api/v1/routes``: create, list, show, replace, delete (routes from ``tabard.toml`` are
listed and read-only). ``/api/v1/approvals``: list (``?state=``), show, approve, deny; a
decision is recorded in the audit log with its approver and outcome by the service, on top
of the admin request record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tabard.errors import Unavailable
from tabard.policy import Approval, ApprovalService, ApprovalState
from tabard.registry import Route, RouteService, route_from_mapping
from tabard.server.deps import Admin, ServerServices, Services

router = APIRouter(prefix="/api/v1/routes", tags=["gateway"])
approvals_router = APIRouter(prefix="/api/v1/approvals", tags=["gateway"])


def _routes(services: ServerServices) -> RouteService:
    if services.routes is None:
        raise Unavailable("routes are not configured on this server")
    return services.routes


def _approvals(services: ServerServices) -> ApprovalService:
    if services.approvals is None:
        raise Unavailable("approvals are not configured on this server")
    return services.approvals


class CredentialBody(BaseModel):
    kind: str = Field(default="none", max_length=32)
    secret: str | None = Field(default=None, max_length=128)
    header: str = Field(default="Authorization", max_length=128)
    scheme: str | None = Field(default="Bearer", max_length=64)
    token_url: str | None = Field(default=None, max_length=2048)
    scopes: dict[str, str] = Field(default_factory=dict, max_length=64)
    audience: str | None = Field(default=None, max_length=2048)
    client_id_secret: str | None = Field(default=None, max_length=128)


class RouteSpec(BaseModel):
    protocol: str = Field(max_length=8)
    upstream: str = Field(max_length=2048)
    audience: str | None = Field(default=None, max_length=2048)
    credential: CredentialBody = Field(default_factory=CredentialBody)
    dlp_profile: str | None = Field(default=None, max_length=64)
    dlp_action: str = Field(default="redact", max_length=16)
    timeout: float = 30.0
    strip_headers: list[str] = Field(default_factory=list, max_length=32)
    approval_timeout: float = 120.0
    user_token_issuers: list[str] = Field(default_factory=list, max_length=16)
    push_urls: list[str] = Field(default_factory=list, max_length=32)


class CreateRoute(RouteSpec):
    name: str = Field(max_length=63)


class RouteView(BaseModel):
    name: str
    protocol: str
    upstream: str
    audience: str | None
    credential: dict[str, Any]
    dlp_profile: str | None
    dlp_action: str
    timeout: float
    strip_headers: list[str]
    approval_timeout: float
    user_token_issuers: list[str]
    push_urls: list[str]
    source: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, route: Route) -> RouteView:
        return cls.model_validate(route.to_json())


def _route(name: str, spec: RouteSpec, services: ServerServices) -> Route:
    data = spec.model_dump()
    data["name"] = name
    return route_from_mapping(data, at=services.clock.now())


@router.post("", response_model=RouteView, status_code=201, summary="Create a route")
def create_route(body: CreateRoute, services: Services, admin: Admin) -> RouteView:
    route = _routes(services).create(_route(body.name, body, services), actor=admin.name)
    return RouteView.of(route)


@router.get("", response_model=list[RouteView],
            summary="List routes (from configuration and the API)")
def list_routes(services: Services, admin: Admin) -> list[RouteView]:
    return [RouteView.of(r) for r in _routes(services).list()]


@router.get("/{name}", response_model=RouteView, summary="Show a route")
def show_route(name: str, services: Services, admin: Admin) -> RouteView:
    return RouteView.of(_routes(services).get(name))


@router.put("/{name}", response_model=RouteView, summary="Replace a route")
def replace_route(name: str, body: RouteSpec, services: Services, admin: Admin) -> RouteView:
    route = _routes(services).update(_route(name, body, services), actor=admin.name)
    return RouteView.of(route)


@router.delete("/{name}", status_code=204, response_class=Response, summary="Delete a route")
def delete_route(name: str, services: Services, admin: Admin) -> Response:
    _routes(services).delete(name, actor=admin.name)
    return Response(status_code=204)


class ApprovalView(BaseModel):
    id: str
    state: str
    agent: str
    instance: str
    user: str | None
    action: str
    resource: str
    route: str
    reason: str
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str

    @classmethod
    def of(cls, a: Approval) -> ApprovalView:
        return cls(id=a.id, state=a.state.value, agent=a.agent, instance=a.instance,
                   user=a.user, action=a.action, resource=a.resource, route=a.route,
                   reason=a.reason, requested_at=a.requested_at, expires_at=a.expires_at,
                   decided_by=a.decided_by, decided_at=a.decided_at,
                   decision_reason=a.decision_reason)


class Decide(BaseModel):
    approver: str = Field(min_length=1, max_length=255)
    reason: str = Field(default="", max_length=2048)


@approvals_router.get("", response_model=list[ApprovalView],
                      summary="List approvals, newest first")
def list_approvals(services: Services, admin: Admin,
                   state: Annotated[ApprovalState | None, Query()] = None
                   ) -> list[ApprovalView]:
    return [ApprovalView.of(a) for a in _approvals(services).list(state=state)]


@approvals_router.get("/{approval_id}", response_model=ApprovalView, summary="Show an approval")
def show_approval(approval_id: str, services: Services, admin: Admin) -> ApprovalView:
    return ApprovalView.of(_approvals(services).get(approval_id))


@approvals_router.post("/{approval_id}/approve", response_model=ApprovalView,
                       summary="Approve a held call (approver: an active person with the "
                       "approver role, not the requesting user)")
def approve(approval_id: str, body: Decide, services: Services, admin: Admin) -> ApprovalView:
    return ApprovalView.of(_approvals(services).approve(approval_id, approver=body.approver,
                                                        reason=body.reason,
                                                        via=admin.token_id))


@approvals_router.post("/{approval_id}/deny", response_model=ApprovalView,
                       summary="Deny a held call")
def deny(approval_id: str, body: Decide, services: Services, admin: Admin) -> ApprovalView:
    return ApprovalView.of(_approvals(services).deny(approval_id, approver=body.approver,
                                                     reason=body.reason,
                                                     via=admin.token_id))
