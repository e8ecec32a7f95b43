"""In-memory routes and approvals with the behaviour of the real services (the gateway's
ports): versions grow on change, unknown routes are NotFound, pending approvals past their
deadline read as expired, decisions are recorded with the approver."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from tabard.clock import Clock
from tabard.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSpec:
    kind: str = "none"
    secret: str | None = None
    header: str = "Authorization"
    scheme: str | None = "Bearer"
    token_url: str | None = None
    scopes: Mapping[str, str] = field(default_factory=dict)
    audience: str | None = None
    client_id_secret: str | None = None


class RouteProtocol(StrEnum):
    MCP = "mcp"
    A2A = "a2a"
    HTTP = "http"


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    name: str
    protocol: RouteProtocol
    upstream: str
    audience: str | None = None
    credential: CredentialSpec = CredentialSpec()
    dlp_profile: str | None = None
    dlp_action: str = "redact"
    timeout: float = 30.0
    strip_headers: tuple[str, ...] = ()
    approval_timeout: float = 120.0


class InMemoryRoutes:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._version = 0
        self._lock = threading.Lock()

    def put(self, route: Route) -> None:
        with self._lock:
            self._routes[route.name] = route
            self._version += 1

    def delete(self, name: str) -> None:
        with self._lock:
            if self._routes.pop(name, None) is None:
                raise NotFound(f"no route {name!r}")
            self._version += 1

    def get(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise NotFound(f"no route named {name!r}")
        return route

    def list(self) -> list[Route]:
        return sorted(self._routes.values(), key=lambda r: r.name)

    def version(self) -> int:
        return self._version


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    id: str
    state: ApprovalState
    agent: str
    instance: str
    user: str | None
    action: str
    resource: str
    route: str
    reason: str
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None


class InMemoryApprovals:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._items: dict[str, Approval] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def request(self, *, agent: str, instance: str, user: str | None, action: str,
                resource: str, route: str, reason: str, timeout: timedelta) -> Approval:
        now = self._clock.now()
        approval = Approval(id=f"apr-{next(self._ids)}", state=ApprovalState.PENDING,
                            agent=agent, instance=instance, user=user, action=action,
                            resource=resource, route=route, reason=reason, requested_at=now,
                            expires_at=now + timeout)
        with self._lock:
            self._items[approval.id] = approval
        return approval

    def get(self, approval_id: str) -> Approval:
        approval = self._items.get(approval_id)
        if approval is None:
            raise NotFound(f"no approval {approval_id!r}")
        if approval.state is ApprovalState.PENDING and self._clock.now() >= approval.expires_at:
            return replace(approval, state=ApprovalState.EXPIRED)
        return approval

    def pending(self) -> list[Approval]:
        return [a for a in map(self.get, list(self._items)) if a.state is ApprovalState.PENDING]

    def decide(self, approval_id: str, *, approver: str, approve: bool) -> Approval:
        with self._lock:
            approval = self.get(approval_id)
            if approval.state is not ApprovalState.PENDING:
                raise Conflict(f"approval {approval_id} is {approval.state}")
            if approver == approval.user:
                raise Conflict("the requesting user cannot approve their own call")
            decided = replace(approval, decided_by=approver, decided_at=self._clock.now(),
                              state=ApprovalState.APPROVED if approve else ApprovalState.DENIED)
            self._items[approval_id] = decided
            return decided
