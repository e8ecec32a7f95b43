"""In-memory routes and approvals with the behaviour of the real services (the gateway's
ports): versions grow on change, unknown routes are NotFound, pending approvals past their
deadline read as expired, decisions are recorded with the approver."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tabard.clock import Clock
from tabard.errors import Conflict, NotFound
from tabard.policy.approvals import Approval, ApprovalState
from tabard.registry.routes import CredentialSpec, Route, RouteProtocol

__all__ = ["Approval", "ApprovalState", "CredentialSpec", "InMemoryApprovals", "InMemoryRoutes",
           "Route", "RouteProtocol", "route"]


_CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def route(**fields: Any) -> Route:
    """A route as the routes service holds it (its timestamps filled in)."""
    return Route(**{"created_at": _CREATED, "updated_at": _CREATED, **fields})


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
                            expires_at=now + timeout, decided_by=None, decided_at=None)
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
