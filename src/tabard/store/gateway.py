"""SQL implementations of :class:`tabard.registry.RouteStore` and
:class:`tabard.policy.ApprovalStore`.

Every route write bumps the single row of ``gateway_route_version`` in its own transaction,
so :meth:`SqlRouteStore.version` moves whenever the table does, whichever replica wrote.
An approval is decided by one conditional ``UPDATE`` (still pending, not expired), so two
approvers racing on two replicas get one decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tabard.policy import Approval, ApprovalState
from tabard.registry import CredentialSpec, Route, RouteExistsError, RouteProtocol
from tabard.store.db import Database
from tabard.store.tables import approvals, gateway_route_version, gateway_routes

__all__ = ["SqlApprovalStore", "SqlRouteStore"]

_R, _VER, _A = gateway_routes, gateway_route_version, approvals


def _route_values(route: Route) -> dict[str, Any]:
    return {"name": route.name, "protocol": route.protocol.value, "upstream": route.upstream,
            "audience": route.audience, "credential": route.credential.to_json(),
            "dlp_profile": route.dlp_profile, "dlp_action": route.dlp_action,
            "timeout": route.timeout, "strip_headers": list(route.strip_headers),
            "approval_timeout": route.approval_timeout, "created_at": route.created_at,
            "updated_at": route.updated_at,
            "user_token_issuers": list(route.user_token_issuers),
            "push_urls": list(route.push_urls)}


def _route(row: Any) -> Route:
    cred = dict(row.credential)
    spec = CredentialSpec(kind=cred.get("kind", "none"), secret=cred.get("secret"),
                          header=cred.get("header", "Authorization"),
                          scheme=cred.get("scheme"), token_url=cred.get("token_url"),
                          scopes=dict(cred.get("scopes") or {}), audience=cred.get("audience"),
                          client_id_secret=cred.get("client_id_secret"))
    return Route(name=row.name, protocol=RouteProtocol(row.protocol), upstream=row.upstream,
                 audience=row.audience, credential=spec, dlp_profile=row.dlp_profile,
                 dlp_action=row.dlp_action, timeout=float(row.timeout),
                 strip_headers=tuple(row.strip_headers),
                 approval_timeout=float(row.approval_timeout), created_at=row.created_at,
                 updated_at=row.updated_at, source="api",
                 user_token_issuers=tuple(row.user_token_issuers or ()),
                 push_urls=tuple(row.push_urls or ()))


def _bump(c: Connection) -> None:
    if c.execute(update(_VER).where(_VER.c.id == 1)
                 .values(version=_VER.c.version + 1)).rowcount == 0:
        c.execute(insert(_VER).values(id=1, version=1))


class SqlRouteStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str) -> Route | None:
        with self._db.read() as c:
            row = c.execute(select(_R).where(_R.c.name == name)).first()
        return _route(row) if row else None

    def list(self) -> Sequence[Route]:
        with self._db.read() as c:
            rows = c.execute(select(_R).order_by(_R.c.name)).all()
        return [_route(r) for r in rows]

    def add(self, route: Route) -> None:
        try:
            with self._db.begin() as c:
                c.execute(insert(_R).values(**_route_values(route)))
                _bump(c)
        except IntegrityError:
            raise RouteExistsError(f"route {route.name!r} exists") from None

    def replace(self, route: Route) -> bool:
        values = _route_values(route)
        values.pop("created_at")
        with self._db.begin() as c:
            done = c.execute(update(_R).where(_R.c.name == route.name).values(**values))
            if done.rowcount != 1:
                return False
            _bump(c)
            return True

    def remove(self, name: str) -> bool:
        with self._db.begin() as c:
            if c.execute(delete(_R).where(_R.c.name == name)).rowcount != 1:
                return False
            _bump(c)
            return True

    def version(self) -> int:
        with self._db.read() as c:
            value = c.execute(select(_VER.c.version).where(_VER.c.id == 1)).scalar()
        return int(value or 0)


def _approval(row: Any) -> Approval:
    return Approval(id=row.id, state=ApprovalState(row.state), agent=row.agent,
                    instance=row.instance, user=row.user_name, action=row.action,
                    resource=row.resource, route=row.route, reason=row.reason,
                    requested_at=row.requested_at, expires_at=row.expires_at,
                    decided_by=row.decided_by, decided_at=row.decided_at,
                    decision_reason=row.decision_reason)


class SqlApprovalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, approval: Approval) -> None:
        with self._db.begin() as c:
            c.execute(insert(_A).values(
                id=approval.id, state=approval.state.value, agent=approval.agent,
                instance=approval.instance, user_name=approval.user, action=approval.action,
                resource=approval.resource, route=approval.route, reason=approval.reason,
                requested_at=approval.requested_at, expires_at=approval.expires_at,
                decided_by=approval.decided_by, decided_at=approval.decided_at,
                decision_reason=approval.decision_reason))

    def get(self, approval_id: str) -> Approval | None:
        with self._db.read() as c:
            row = c.execute(select(_A).where(_A.c.id == approval_id)).first()
        return _approval(row) if row else None

    def list(self, *, limit: int = 1000) -> Sequence[Approval]:
        with self._db.read() as c:
            rows = c.execute(select(_A).order_by(_A.c.requested_at.desc(), _A.c.id)
                             .limit(limit)).all()
        return [_approval(r) for r in rows]

    def decide(self, approval_id: str, *, state: ApprovalState, decided_by: str,
               decided_at: datetime, reason: str) -> bool:
        with self._db.begin() as c:
            return bool(c.execute(
                update(_A).where(_A.c.id == approval_id,
                                 _A.c.state == ApprovalState.PENDING.value,
                                 _A.c.expires_at > decided_at)
                .values(state=state.value, decided_by=decided_by, decided_at=decided_at,
                        decision_reason=reason)).rowcount == 1)
