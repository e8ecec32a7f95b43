"""SQL implementations of the agent ports: definitions with their events, pending changes and
retirement steps (one transaction per write), orphan findings, instance activity and residual
use of retired identities.

A definition's write is ``UPDATE ... WHERE name = :name AND version = :read``: the row lock
it takes (PostgreSQL) or the database write lock (SQLite) orders concurrent writers, so the
event numbers taken after it in the same transaction never collide.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from tabard.registry import (
    AgentChangedError,
    AgentDefinition,
    AgentEvent,
    AgentExistsError,
    AgentNotFoundError,
    AgentQuery,
    AgentState,
    ChangeKind,
    ChangeStatus,
    Delegation,
    EventDraft,
    Finding,
    FindingKind,
    IdentityUse,
    ModelRef,
    PendingChange,
    ResidualUse,
    RetirementStep,
    SanitizationHook,
    StepName,
    StepStatus,
    Tier,
)
from tabard.store.db import Database
from tabard.store.tables import (
    agent_changes,
    agent_events,
    agent_findings,
    agent_instances,
    agent_residual_use,
    agent_retirement_steps,
    agents,
)

__all__ = ["SqlAgentActivity", "SqlAgentStore", "SqlFindingStore", "SqlResidualUseStore"]

_CHUNK = 500
_OPEN = "y"


def _chunks(values: Sequence[str]) -> list[list[str]]:
    return [list(values[i:i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


def _upsert(db: Database, table: Table, values: dict[str, Any], keys: Sequence[str],
            c: Connection) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` with every other column."""
    rest = {k: v for k, v in values.items() if k not in keys}
    stmt: Any
    if db.dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=rest)
    else:
        stmt = sqlite.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=rest)
    c.execute(stmt)


# --- definitions -----------------------------------------------------------------------------


def _agent_values(agent: AgentDefinition) -> dict[str, Any]:
    return {
        "owner": agent.owner,
        "purpose": agent.purpose,
        "model_provider": agent.model.provider,
        "model_name": agent.model.name,
        "model_version": agent.model.version,
        "hosting": agent.hosting,
        "tier": agent.tier.value,
        "tools": list(agent.tools),
        "image_digest": agent.image_digest,
        "system_prompt_digest": agent.system_prompt_digest,
        "config": agent.config,
        "checksum": agent.checksum,
        "policy_bindings": dict(agent.policy_bindings),
        "delegation": agent.delegation.value,
        "entry_id": agent.entry_id,
        "sanitization_hooks": [h.as_dict() for h in agent.sanitization_hooks],
        "state": agent.state.value,
        "state_changed_at": agent.state_changed_at,
        "read_only": agent.read_only,
        "inbound_blocked": agent.inbound_blocked,
        "last_attested_by": agent.last_attested_by,
        "last_attested_at": agent.last_attested_at,
        "attestation_due_at": agent.attestation_due_at,
        "transferred_at": agent.transferred_at,
        "seal": agent.seal,
        "sealed_through": agent.sealed_through,
        "sealed_at": agent.sealed_at,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


def _agent(row: Any) -> AgentDefinition:
    return AgentDefinition(
        name=row.name, owner=row.owner, purpose=row.purpose,
        model=ModelRef(row.model_provider, row.model_name, row.model_version),
        hosting=row.hosting, tier=Tier(row.tier), tools=tuple(row.tools),
        image_digest=row.image_digest, system_prompt_digest=row.system_prompt_digest,
        config=row.config, checksum=row.checksum, policy_bindings=dict(row.policy_bindings),
        delegation=Delegation(row.delegation), entry_id=row.entry_id,
        sanitization_hooks=tuple(SanitizationHook(h["kind"], h["target"])
                                 for h in row.sanitization_hooks),
        state=AgentState(row.state), state_changed_at=row.state_changed_at,
        read_only=bool(row.read_only), inbound_blocked=bool(row.inbound_blocked),
        last_attested_by=row.last_attested_by, last_attested_at=row.last_attested_at,
        attestation_due_at=row.attestation_due_at, transferred_at=row.transferred_at,
        seal=row.seal, sealed_through=row.sealed_through, sealed_at=row.sealed_at,
        version=row.version, created_at=row.created_at, updated_at=row.updated_at,
    )


def _event(row: Any) -> AgentEvent:
    return AgentEvent(
        agent=row.agent, seq=row.seq, kind=row.kind, actor=row.actor, reason=row.reason,
        at=row.at, from_state=AgentState(row.from_state) if row.from_state else None,
        to_state=AgentState(row.to_state) if row.to_state else None,
        details=dict(row.details),
    )


def _change_values(change: PendingChange) -> dict[str, Any]:
    return {
        "id": change.id, "agent": change.agent, "kind": change.kind.value,
        "payload": change.payload, "requested_by": change.requested_by,
        "requested_at": change.requested_at, "status": change.status.value,
        "decided_by": change.decided_by, "decided_at": change.decided_at,
        "reason": change.reason,
    }


def _change(row: Any) -> PendingChange:
    return PendingChange(
        id=row.id, agent=row.agent, kind=ChangeKind(row.kind), payload=dict(row.payload),
        requested_by=row.requested_by, requested_at=row.requested_at,
        status=ChangeStatus(row.status), decided_by=row.decided_by, decided_at=row.decided_at,
        reason=row.reason,
    )


def _step_values(step: RetirementStep) -> dict[str, Any]:
    return {
        "agent": step.agent, "step": step.number, "name": step.name.value,
        "status": step.status.value, "attempts": step.attempts,
        "started_at": step.started_at, "completed_at": step.completed_at,
        "result": step.result, "error": step.error,
    }


def _step(row: Any) -> RetirementStep:
    return RetirementStep(
        agent=row.agent, name=StepName(row.name), status=StepStatus(row.status),
        attempts=row.attempts, started_at=row.started_at, completed_at=row.completed_at,
        result=dict(row.result), error=row.error,
    )


# Read on every SVID and instance request (the gate) or page by page (the sweep): built once,
# so SQLAlchemy reuses their compiled forms.
_GET_AGENT = select(agents).where(agents.c.name == bindparam("b_name"))
_STATE = select(agents.c.state).where(agents.c.name == bindparam("b_name"))
_STATES = select(agents.c.name, agents.c.state).where(
    agents.c.name.in_(bindparam("b_names", expanding=True)))
_PAGE = (select(agents)
         .where(agents.c.state.in_(bindparam("b_states", expanding=True)),
                agents.c.name > bindparam("b_after"))
         .order_by(agents.c.name).limit(bindparam("b_limit", type_=Integer)))


class SqlAgentStore:
    """The :class:`~tabard.registry.ports.AgentStore` port."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _append(self, c: Connection, name: str, events: Sequence[EventDraft]) -> None:
        if not events:
            return
        last = c.execute(select(func.max(agent_events.c.seq))
                         .where(agent_events.c.agent == name)).scalar()
        seq = int(last or 0)
        rows = []
        for event in events:
            seq += 1
            rows.append({
                "agent": name, "seq": seq, "kind": event.kind,
                "from_state": event.from_state.value if event.from_state else None,
                "to_state": event.to_state.value if event.to_state else None,
                "actor": event.actor, "reason": event.reason, "at": event.at,
                "details": event.details,
            })
        c.execute(insert(agent_events), rows)

    def add(self, agent: AgentDefinition, events: Sequence[EventDraft]) -> AgentDefinition:
        try:
            with self._db.begin() as c:
                c.execute(insert(agents).values(name=agent.name, version=1,
                                                **_agent_values(agent)))
                self._append(c, agent.name, events)
        except IntegrityError:
            raise AgentExistsError(f"an agent named {agent.name!r} exists already (names "
                                   "are never reused)") from None
        return self.get(agent.name) or agent

    def remove_unused(self, name: str) -> bool:
        with self._db.begin() as c:
            removed = c.execute(delete(agents).where(agents.c.name == name,
                                                     agents.c.version == 1)).rowcount
            if removed:
                c.execute(delete(agent_events).where(agent_events.c.agent == name))
        return bool(removed)

    def get(self, name: str) -> AgentDefinition | None:
        with self._db.read() as c:
            row = c.execute(_GET_AGENT, {"b_name": name}).first()
        return _agent(row) if row else None

    def page(self, states: Collection[AgentState], *, after: str = "",
             limit: int = 1000) -> builtins.list[AgentDefinition]:
        if not states or limit < 1:
            return []
        with self._db.read() as c:
            rows = c.execute(_PAGE, {"b_states": sorted(s.value for s in states),
                                     "b_after": after, "b_limit": limit}).all()
        return [_agent(r) for r in rows]

    def list(self, query: AgentQuery) -> builtins.list[AgentDefinition]:
        stmt = select(agents)
        if query.owner is not None:
            stmt = stmt.where(func.lower(agents.c.owner) == query.owner.lower())
        if query.state is not None:
            stmt = stmt.where(agents.c.state == query.state.value)
        if query.states:
            stmt = stmt.where(agents.c.state.in_([s.value for s in query.states]))
        stmt = stmt.order_by(agents.c.name).limit(query.limit)
        with self._db.read() as c:
            rows = c.execute(stmt).all()
        return [_agent(r) for r in rows]

    def states(self, names: Collection[str]) -> dict[str, AgentState]:
        if not names:
            return {}
        out: dict[str, AgentState] = {}
        with self._db.read() as c:
            if len(names) == 1:  # the gate's usual question: one agent, by primary key
                (name,) = names
                state = c.execute(_STATE, {"b_name": name}).scalar()
                return {name: AgentState(state)} if state is not None else {}
            for chunk in _chunks(sorted(names)):
                for row in c.execute(_STATES, {"b_names": chunk}):
                    out[row.name] = AgentState(row.state)
        return out

    def save(self, agent: AgentDefinition, *, expected_version: int,
             events: Sequence[EventDraft] = (), changes: Sequence[PendingChange] = (),
             step: RetirementStep | None = None) -> AgentDefinition:
        values = _agent_values(agent)
        del values["created_at"]
        with self._db.begin() as c:
            written = c.execute(
                update(agents)
                .where(agents.c.name == agent.name, agents.c.version == expected_version)
                .values(version=expected_version + 1, **values)
            ).rowcount
            if not written:
                exists = c.execute(select(agents.c.version)
                                   .where(agents.c.name == agent.name)).scalar()
                if exists is None:
                    raise AgentNotFoundError(f"no agent named {agent.name!r}")
                raise AgentChangedError(f"agent {agent.name!r} was changed by someone else "
                                        "meanwhile; read it again and retry")
            self._append(c, agent.name, events)
            for change in changes:
                _upsert(self._db, agent_changes, _change_values(change), ["id"], c)
            if step is not None:
                _upsert(self._db, agent_retirement_steps, _step_values(step),
                        ["agent", "step"], c)
            row = c.execute(select(agents).where(agents.c.name == agent.name)).one()
        return _agent(row)

    def events(self, name: str, *, after: int = 0) -> builtins.list[AgentEvent]:
        with self._db.read() as c:
            rows = c.execute(select(agent_events)
                             .where(agent_events.c.agent == name, agent_events.c.seq > after)
                             .order_by(agent_events.c.seq)).all()
        return [_event(r) for r in rows]

    def changes(self, name: str, *, pending_only: bool = False) -> builtins.list[PendingChange]:
        stmt = select(agent_changes).where(agent_changes.c.agent == name)
        if pending_only:
            stmt = stmt.where(agent_changes.c.status == ChangeStatus.PENDING.value)
        with self._db.read() as c:
            rows = c.execute(stmt.order_by(agent_changes.c.requested_at,
                                           agent_changes.c.id)).all()
        return [_change(r) for r in rows]

    def steps(self, name: str) -> builtins.list[RetirementStep]:
        with self._db.read() as c:
            rows = c.execute(select(agent_retirement_steps)
                             .where(agent_retirement_steps.c.agent == name)
                             .order_by(agent_retirement_steps.c.step)).all()
        return [_step(r) for r in rows]

    def save_step(self, step: RetirementStep) -> None:
        with self._db.begin() as c:
            _upsert(self._db, agent_retirement_steps, _step_values(step), ["agent", "step"], c)


# --- findings --------------------------------------------------------------------------------


def _finding(row: Any) -> Finding:
    return Finding(id=row.id, agent=row.agent, kind=FindingKind(row.kind), detail=row.detail,
                   action=row.action, opened_at=row.opened_at, acted_at=row.acted_at,
                   resolved_at=row.resolved_at)


class SqlFindingStore:
    """The :class:`~tabard.registry.ports.FindingStore` port: the unique key
    ``(agent, kind, open_marker)`` allows one open finding per agent and kind (NULL markers
    of resolved findings never collide)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open(self, finding: Finding) -> Finding | None:
        try:
            with self._db.begin() as c:
                c.execute(insert(agent_findings).values(
                    id=finding.id, agent=finding.agent, kind=finding.kind.value,
                    detail=finding.detail, action=finding.action, opened_at=finding.opened_at,
                    acted_at=finding.acted_at, resolved_at=None, open_marker=_OPEN))
        except IntegrityError:
            return None
        return finding

    def resolve(self, agent: str, kinds: Collection[FindingKind],
                at: datetime) -> builtins.list[Finding]:
        if not kinds:
            return []
        t = agent_findings
        with self._db.begin() as c:
            rows = c.execute(
                update(t).where(t.c.agent == agent, t.c.kind.in_([k.value for k in kinds]),
                                t.c.open_marker == _OPEN)
                .values(resolved_at=at, open_marker=None).returning(*t.c)
            ).all()
        return sorted((_finding(r) for r in rows), key=lambda f: (f.opened_at, f.id))

    def mark_acted(self, finding_id: str, at: datetime) -> None:
        with self._db.begin() as c:
            c.execute(update(agent_findings).where(agent_findings.c.id == finding_id,
                                                   agent_findings.c.acted_at.is_(None))
                      .values(acted_at=at))

    def list(self, *, agent: str | None = None,
             open_only: bool = True) -> builtins.list[Finding]:
        t = agent_findings
        stmt = select(t)
        if agent is not None:
            stmt = stmt.where(t.c.agent == agent)
        if open_only:
            stmt = stmt.where(t.c.open_marker == _OPEN)
        with self._db.read() as c:
            rows = c.execute(stmt.order_by(t.c.opened_at, t.c.id)).all()
        return [_finding(r) for r in rows]


# --- instance activity -------------------------------------------------------------------------


class SqlAgentActivity:
    """The :class:`~tabard.registry.ports.AgentActivity` port over ``agent_instances``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def last_seen(self, names: Collection[str]) -> dict[str, datetime]:
        wanted = set(names)
        if not wanted:
            return {}
        t = agent_instances
        stmt = select(t.c.agent, func.max(t.c.last_seen_at).label("seen")).group_by(t.c.agent)
        out: dict[str, datetime] = {}
        with self._db.read() as c:
            if len(wanted) > _CHUNK:  # one pass over every agent beats many IN lists
                rows = c.execute(stmt.where(t.c.agent.is_not(None))).all()
            else:
                rows = c.execute(stmt.where(t.c.agent.in_(sorted(wanted)))).all()
        for row in rows:
            if row.agent in wanted and row.seen is not None:
                out[row.agent] = _utc(row.seen)
        return out

    def retire_instances(self, name: str, at: datetime) -> int:
        t = agent_instances
        with self._db.begin() as c:
            return int(c.execute(update(t).where(t.c.agent == name, t.c.retired_at.is_(None))
                                 .values(retired_at=at)).rowcount)

    def count_instances(self, name: str) -> tuple[int, int]:
        t = agent_instances
        with self._db.read() as c:
            row = c.execute(select(func.count(), func.count(t.c.retired_at))
                            .where(t.c.agent == name)).one()
        return int(row[0]), int(row[1])


def _utc(value: datetime) -> datetime:
    """``max()`` keeps the column type, but be safe with drivers that return naive values."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- residual use --------------------------------------------------------------------------------


def _residual_key(use: IdentityUse) -> str:
    material = "\n".join([use.agent, use.kind, use.node_id, use.spiffe_id])
    return hashlib.sha256(material.encode()).hexdigest()


class SqlResidualUseStore:
    """The :class:`~tabard.registry.ports.ResidualUseStore` port: one row per agent, kind,
    node and SPIFFE ID, counting the attempts (an upsert, so concurrent attempts add up)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, use: IdentityUse, at: datetime) -> None:
        t = agent_residual_use
        values = {"id": _residual_key(use), "agent": use.agent, "kind": use.kind,
                  "node_id": use.node_id, "spiffe_id": use.spiffe_id[:2048],
                  "entry_id": use.entry_id, "first_at": at, "last_at": at, "count": 1}
        bump = {"last_at": at, "count": t.c.count + 1}
        stmt: Any
        if self._db.dialect == "postgresql":
            stmt = postgresql.insert(t).values(**values).on_conflict_do_update(
                index_elements=[t.c.id], set_=bump)
        else:
            stmt = sqlite.insert(t).values(**values).on_conflict_do_update(
                index_elements=[t.c.id], set_=bump)
        with self._db.begin() as c:
            c.execute(stmt)

    def list(self, agent: str | None = None) -> builtins.list[ResidualUse]:
        t = agent_residual_use
        stmt = select(t)
        if agent is not None:
            stmt = stmt.where(t.c.agent == agent)
        with self._db.read() as c:
            rows = c.execute(stmt.order_by(t.c.last_at.desc(), t.c.id)).all()
        return [ResidualUse(agent=r.agent, kind=r.kind, node_id=r.node_id,
                            spiffe_id=r.spiffe_id, entry_id=r.entry_id, first_at=r.first_at,
                            last_at=r.last_at, count=int(r._mapping["count"])) for r in rows]
