"""SQL implementations of the registry's ports: entries, nodes and agent instances.

Upserts use each dialect's ``INSERT ... ON CONFLICT`` (SQLite ≥ 3.35 and PostgreSQL both
have it, with ``RETURNING``), so a revision bump and an instance registration are single
statements that serialise correctly across server replicas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import ReturningInsert

from tabard.registry import (
    AgentInstance,
    DuplicateEntryError,
    Entry,
    EntryNotFoundError,
    IdTemplate,
    InstanceQuery,
    NodeRecord,
    Registration,
    Selector,
    parse_selectors,
)
from tabard.spiffe import SpiffeId, TrustDomain
from tabard.store.db import Database
from tabard.store.tables import (
    agent_instances,
    entry_revisions,
    nodes,
    registration_entries,
)

__all__ = ["SqlEntryStore", "SqlInstanceStore", "SqlNodeStore"]

_Entries = list[Entry]


def _insert_or_ignore(db: Database, table: Table, conflict: Sequence[Column[Any]],
                      returning: Column[Any]) -> ReturningInsert[tuple[Any]]:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING returning``; the values are
    given at execution."""
    if db.dialect == "postgresql":
        return (postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)
                .returning(returning))
    return (sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
            .returning(returning))


def _bump_revision(db: Database, c: Connection, parent_id: str) -> int:
    """Increment (or start at 1) the parent's revision; returns the new value."""
    t = entry_revisions
    bump = {"revision": t.c.revision + 1}
    stmt: ReturningInsert[tuple[Any]]
    if db.dialect == "postgresql":
        stmt = (postgresql.insert(t).values(parent_id=parent_id, revision=1)
                .on_conflict_do_update(index_elements=[t.c.parent_id], set_=bump)
                .returning(t.c.revision))
    else:
        stmt = (sqlite.insert(t).values(parent_id=parent_id, revision=1)
                .on_conflict_do_update(index_elements=[t.c.parent_id], set_=bump)
                .returning(t.c.revision))
    return int(c.execute(stmt).scalar_one())


def _selectors(raw: Iterable[str]) -> tuple[Selector, ...]:
    return parse_selectors(raw)


# --- entries ---------------------------------------------------------------------------------


def _identity_digest(entry: Entry) -> str:
    """The duplicate rule as one key: same SPIFFE ID, parent and selector set."""
    material = "\n".join([entry.spiffe_id.text, str(entry.parent_id),
                          *(str(s) for s in entry.selectors)])
    return hashlib.sha256(material.encode()).hexdigest()


def _entry(row: Any) -> Entry:
    return Entry(
        id=row.id, spiffe_id=IdTemplate(row.spiffe_id), parent_id=SpiffeId.parse(row.parent_id),
        selectors=_selectors(row.selectors), x509_svid_ttl=row.x509_svid_ttl,
        jwt_svid_ttl=row.jwt_svid_ttl, dns_names=tuple(row.dns_names),
        federates_with=tuple(TrustDomain(td) for td in row.federates_with), hint=row.hint,
        revision=row.revision, created_at=row.created_at, updated_at=row.updated_at,
    )


def _entry_values(entry: Entry) -> dict[str, Any]:
    return {
        "spiffe_id": entry.spiffe_id.text,
        "parent_id": str(entry.parent_id),
        "selectors": [str(s) for s in entry.selectors],
        "identity_digest": _identity_digest(entry),
        "x509_svid_ttl": entry.x509_svid_ttl,
        "jwt_svid_ttl": entry.jwt_svid_ttl,
        "dns_names": list(entry.dns_names),
        "federates_with": [td.name for td in entry.federates_with],
        "hint": entry.hint,
        "revision": entry.revision,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }


_GET_ENTRY = select(registration_entries).where(registration_entries.c.id == bindparam("b_id"))
_GET_ENTRIES = select(registration_entries).where(
    registration_entries.c.id.in_(bindparam("b_ids", expanding=True)))


class SqlEntryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _bump(self, c: Connection, parent_id: str) -> int:
        return _bump_revision(self._db, c, parent_id)

    def add(self, entry: Entry) -> Entry:
        try:
            with self._db.begin() as c:
                stored = entry.with_revision(self._bump(c, str(entry.parent_id)))
                c.execute(insert(registration_entries).values(id=stored.id,
                                                              **_entry_values(stored)))
        except IntegrityError:
            raise DuplicateEntryError(_duplicate_message(entry)) from None
        return stored

    def get(self, entry_id: str) -> Entry | None:
        with self._db.read() as c:
            row = c.execute(_GET_ENTRY, {"b_id": entry_id}).first()
        return _entry(row) if row else None

    def get_many(self, entry_ids: Iterable[str]) -> dict[str, Entry]:
        ids = list(dict.fromkeys(entry_ids))
        if not ids:
            return {}
        with self._db.read() as c:
            rows = c.execute(_GET_ENTRIES, {"b_ids": ids}).all()
        return {row.id: _entry(row) for row in rows}

    def list(self, *, parent_id: SpiffeId | None = None,
             spiffe_id: str | None = None) -> list[Entry]:
        query = select(registration_entries)
        if parent_id is not None:
            query = query.where(registration_entries.c.parent_id == str(parent_id))
        if spiffe_id is not None:
            query = query.where(registration_entries.c.spiffe_id == spiffe_id)
        query = query.order_by(registration_entries.c.created_at, registration_entries.c.id)
        with self._db.read() as c:
            rows = c.execute(query).all()
        return [_entry(r) for r in rows]

    def update(self, entry: Entry) -> Entry:
        try:
            with self._db.begin() as c:
                old_parent = c.execute(
                    select(registration_entries.c.parent_id)
                    .where(registration_entries.c.id == entry.id).with_for_update()
                ).scalar()
                if old_parent is None:
                    raise EntryNotFoundError(f"no entry with id {entry.id!r}")
                new_parent = str(entry.parent_id)
                if old_parent != new_parent:
                    self._bump(c, old_parent)
                stored = entry.with_revision(self._bump(c, new_parent))
                values = _entry_values(stored)
                del values["created_at"]
                c.execute(update(registration_entries)
                          .where(registration_entries.c.id == entry.id).values(**values))
        except IntegrityError:
            raise DuplicateEntryError(_duplicate_message(entry)) from None
        return stored

    def delete(self, entry_id: str) -> Entry | None:
        with self._db.begin() as c:
            row = c.execute(
                delete(registration_entries).where(registration_entries.c.id == entry_id)
                .returning(*registration_entries.c)
            ).first()
            if row is None:
                return None
            self._bump(c, row.parent_id)
        return _entry(row)

    def for_parent(self, parent_id: SpiffeId) -> tuple[int, _Entries]:
        parent = str(parent_id)
        with self._db.connect() as c:
            revision = c.execute(select(entry_revisions.c.revision)
                                 .where(entry_revisions.c.parent_id == parent)).scalar()
            rows = c.execute(
                select(registration_entries).where(registration_entries.c.parent_id == parent)
                .order_by(registration_entries.c.created_at, registration_entries.c.id)
            ).all()
        return int(revision or 0), [_entry(r) for r in rows]


def _duplicate_message(entry: Entry) -> str:
    return (f"an entry with SPIFFE ID {entry.spiffe_id}, parent {entry.parent_id} and the same "
            "selectors exists already")


# --- nodes -------------------------------------------------------------------------------------


def _node(row: Any) -> NodeRecord:
    return NodeRecord(
        id=row.id, spiffe_id=SpiffeId.parse(row.spiffe_id), attestor=row.attestor,
        selectors=_selectors(row.selectors), attested_at=row.attested_at,
        svid_expires_at=row.svid_expires_at, attestation_key=row.attestation_key,
        banned_at=row.banned_at,
    )


class SqlNodeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, node: NodeRecord) -> None:
        with self._db.begin() as c:
            c.execute(insert(nodes).values(
                id=node.id, spiffe_id=str(node.spiffe_id), attestor=node.attestor,
                attestation_key=node.attestation_key,
                selectors=[str(s) for s in node.selectors], attested_at=node.attested_at,
                svid_expires_at=node.svid_expires_at, banned_at=node.banned_at,
            ))

    def get(self, node_id: str) -> NodeRecord | None:
        with self._db.read() as c:
            row = c.execute(select(nodes).where(nodes.c.id == node_id)).first()
        return _node(row) if row else None

    def find_by_attestation_key(self, attestor: str, key: str) -> NodeRecord | None:
        with self._db.read() as c:
            row = c.execute(select(nodes).where(nodes.c.attestor == attestor,
                                                nodes.c.attestation_key == key)).first()
        return _node(row) if row else None

    def list(self) -> list[NodeRecord]:
        with self._db.read() as c:
            rows = c.execute(select(nodes).order_by(nodes.c.attested_at, nodes.c.id)).all()
        return [_node(r) for r in rows]

    def update(self, node: NodeRecord) -> None:
        with self._db.begin() as c:
            c.execute(update(nodes).where(nodes.c.id == node.id).values(
                selectors=[str(s) for s in node.selectors], attested_at=node.attested_at,
                svid_expires_at=node.svid_expires_at,
            ))

    def ban(self, node_id: str, at: datetime) -> NodeRecord | None:
        with self._db.begin() as c:
            c.execute(update(nodes).where(nodes.c.id == node_id, nodes.c.banned_at.is_(None))
                      .values(banned_at=at))
            row = c.execute(select(nodes).where(nodes.c.id == node_id)).first()
        return _node(row) if row else None


# --- instances ---------------------------------------------------------------------------------


def _instance(row: Any) -> AgentInstance:
    return AgentInstance(
        id=row.id, node_id=row.node_id, entry_id=row.entry_id,
        spiffe_id=SpiffeId.parse(row.spiffe_id), agent=row.agent, pid=row.pid,
        start_time=row.start_time, uid=row.uid, gid=row.gid, exe_path=row.exe_path,
        exe_sha256=row.exe_sha256, selectors=_selectors(row.selectors),
        parent_instance_id=row.parent_instance_id, first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at, retired_at=row.retired_at,
    )


_I = agent_instances
# Registration runs for every new process, so its statements are built once: SQLAlchemy then
# reuses their cache keys and compiled forms instead of rebuilding them per call.
_PARENT_NODE = select(_I.c.node_id).where(_I.c.id == bindparam("b_id"))
_RETIRE_REUSED_PID = update(_I).where(
    _I.c.node_id == bindparam("b_node"), _I.c.pid == bindparam("b_pid"),
    _I.c.start_time != bindparam("b_start"), _I.c.retired_at.is_(None),
).values(retired_at=bindparam("b_at"))
_REFRESH = update(_I).where(
    _I.c.node_id == bindparam("b_node"), _I.c.pid == bindparam("b_pid"),
    _I.c.start_time == bindparam("b_start"), _I.c.entry_id == bindparam("b_entry"),
).values(last_seen_at=bindparam("b_at")).returning(*_I.c)
_GET_INSTANCE = select(_I).where(_I.c.id == bindparam("b_id"))
_BY_SPIFFE_ID = select(_I).where(_I.c.spiffe_id == bindparam("b_spiffe_id"))


class SqlInstanceStore:
    """Instances in one table, never deleted. A registration is one transaction of two to
    three statements on indexes."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = _insert_or_ignore(
            db, _I, [_I.c.node_id, _I.c.pid, _I.c.start_time, _I.c.entry_id], _I.c.id)

    def register(self, candidate: AgentInstance) -> Registration:
        with self._db.begin() as c:
            parent = candidate.parent_instance_id
            if parent is not None:
                owner = c.execute(_PARENT_NODE, {"b_id": parent}).scalar()
                if owner != candidate.node_id:
                    parent = None
            inserted = c.execute(self._insert, {
                "id": candidate.id, "node_id": candidate.node_id,
                "entry_id": candidate.entry_id, "spiffe_id": str(candidate.spiffe_id),
                "agent": candidate.agent, "pid": candidate.pid,
                "start_time": candidate.start_time, "uid": candidate.uid, "gid": candidate.gid,
                "exe_path": candidate.exe_path, "exe_sha256": candidate.exe_sha256,
                "selectors": [str(s) for s in candidate.selectors],
                "parent_instance_id": parent, "first_seen_at": candidate.first_seen_at,
                "last_seen_at": candidate.last_seen_at, "retired_at": None,
            }).scalar()
            key = {"b_node": candidate.node_id, "b_pid": candidate.pid,
                   "b_start": candidate.start_time}
            if inserted is not None:
                c.execute(_RETIRE_REUSED_PID, {**key, "b_at": candidate.first_seen_at})
                return Registration(replace(candidate, parent_instance_id=parent), True)
            row = c.execute(_REFRESH, {**key, "b_entry": candidate.entry_id,
                                       "b_at": candidate.last_seen_at}).one()
        return Registration(_instance(row), False)

    def get(self, instance_id: str) -> AgentInstance | None:
        with self._db.read() as c:
            row = c.execute(_GET_INSTANCE, {"b_id": instance_id}).first()
        return _instance(row) if row else None

    def get_by_spiffe_id(self, spiffe_id: SpiffeId) -> AgentInstance | None:
        with self._db.read() as c:
            row = c.execute(_BY_SPIFFE_ID, {"b_spiffe_id": str(spiffe_id)}).first()
        return _instance(row) if row else None

    def touch(self, node_id: str, instance_ids: Sequence[str], at: datetime) -> int:
        if not instance_ids:
            return 0
        t = agent_instances
        touched = 0
        with self._db.begin() as c:
            for start in range(0, len(instance_ids), 500):
                chunk = list(instance_ids[start:start + 500])
                result = c.execute(update(t).where(t.c.node_id == node_id, t.c.id.in_(chunk))
                                   .values(last_seen_at=at))
                touched += result.rowcount
        return touched

    def list(self, query: InstanceQuery) -> list[AgentInstance]:
        t = agent_instances
        stmt = select(t)
        if query.agent is not None:
            stmt = stmt.where(t.c.agent == query.agent)
        if query.node_id is not None:
            stmt = stmt.where(t.c.node_id == query.node_id)
        if query.entry_id is not None:
            stmt = stmt.where(t.c.entry_id == query.entry_id)
        stmt = stmt.order_by(t.c.id.desc()).limit(query.limit)
        with self._db.read() as c:
            rows = c.execute(stmt).all()
        return [_instance(r) for r in rows]
