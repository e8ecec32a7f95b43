"""SQL implementation of the registry's :class:`~tabard.registry.InventoryStore`.

An import batch is one ``INSERT ... ON CONFLICT (source, external_id) DO UPDATE``, so
concurrent imports of one source serialise on the unique key instead of duplicating. On
SQLite SQLAlchemy sends the rows as multi-row ``VALUES``; on PostgreSQL the batch goes as one
array per column through ``unnest``: a short statement the driver need not parse per batch
(a thousand-row ``VALUES`` costs more to split and plan than to run), with times sent as text
because the driver's per-element date conversion is its slowest part.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from tabard.registry import (
    InventoryQuery,
    NhiKind,
    NhiRecord,
    NhiSpec,
    UpsertResult,
)
from tabard.store.db import Database
from tabard.store.tables import inventory_records

__all__ = ["SqlInventoryStore"]

_T = inventory_records
# replaced on conflict: everything the source reports; id and first_seen_at stay
_REPLACED = ("kind", "name", "owner", "created_at", "last_used_at", "expires_at", "privileges",
             "notes", "updated_at")
_GET = select(_T).where(_T.c.id == bindparam("b_id"))


# the columns of _values(), in order; PostgreSQL gets one array of each
_COLUMNS = ("id", "kind", "name", "source", "external_id", "owner", "created_at",
            "last_used_at", "expires_at", "privileges", "notes", "first_seen_at", "updated_at")
_TIMES = frozenset({"created_at", "last_used_at", "expires_at", "first_seen_at", "updated_at"})
_PG_UPSERT = text("""
INSERT INTO inventory_records (id, kind, name, source, external_id, owner, created_at,
                               last_used_at, expires_at, privileges, notes, first_seen_at,
                               updated_at)
SELECT id, kind, name, source, external_id, owner, created_at, last_used_at, expires_at,
       privileges::json, notes, first_seen_at, updated_at
FROM unnest(CAST(:id AS text[]), CAST(:kind AS text[]), CAST(:name AS text[]),
            CAST(:source AS text[]), CAST(:external_id AS text[]), CAST(:owner AS text[]),
            CAST(:created_at AS timestamptz[]), CAST(:last_used_at AS timestamptz[]),
            CAST(:expires_at AS timestamptz[]), CAST(:privileges AS text[]),
            CAST(:notes AS text[]), CAST(:first_seen_at AS timestamptz[]),
            CAST(:updated_at AS timestamptz[]))
  AS batch(id, kind, name, source, external_id, owner, created_at, last_used_at, expires_at,
           privileges, notes, first_seen_at, updated_at)
ON CONFLICT (source, external_id) DO UPDATE SET
  kind = excluded.kind, name = excluded.name, owner = excluded.owner,
  created_at = excluded.created_at, last_used_at = excluded.last_used_at,
  expires_at = excluded.expires_at, privileges = excluded.privileges, notes = excluded.notes,
  updated_at = excluded.updated_at
RETURNING id
""")


def _pg_arrays(records: Sequence[NhiRecord]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
    for record in records:
        for name, value in _values(record).items():
            if name in _TIMES:
                value = None if value is None else value.isoformat()
            elif name == "privileges":
                value = json.dumps(value)
            columns[name].append(value)
    return columns


def _values(record: NhiRecord) -> dict[str, Any]:
    s = record.spec
    return {
        "id": record.id, "kind": s.kind.value, "name": s.name, "source": s.source,
        "external_id": s.external_id, "owner": s.owner, "created_at": s.created_at,
        "last_used_at": s.last_used_at, "expires_at": s.expires_at,
        "privileges": list(s.privileges), "notes": s.notes,
        "first_seen_at": record.first_seen_at, "updated_at": record.updated_at,
    }


def _record(row: Any) -> NhiRecord:
    spec = NhiSpec(
        kind=NhiKind(row.kind), name=row.name, source=row.source, external_id=row.external_id,
        owner=row.owner, created_at=row.created_at, last_used_at=row.last_used_at,
        expires_at=row.expires_at, privileges=tuple(row.privileges), notes=row.notes,
    )
    return NhiRecord(id=row.id, spec=spec, first_seen_at=row.first_seen_at,
                     updated_at=row.updated_at)


class SqlInventoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        dialect: Any = postgresql if db.dialect == "postgresql" else sqlite
        insert = dialect.insert(_T)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[_T.c.source, _T.c.external_id],
            set_={name: insert.excluded[name] for name in _REPLACED},
        ).returning(_T.c.id)

    def upsert_many(self, records: Sequence[NhiRecord]) -> UpsertResult:
        if not records:
            return UpsertResult(0, 0)
        proposed = {r.id for r in records}
        with self._db.begin() as c:
            if self._db.dialect == "postgresql":
                stored = c.execute(_PG_UPSERT, _pg_arrays(records)).scalars().all()
            else:
                stored = c.execute(self._upsert, [_values(r) for r in records]).scalars().all()
        created = sum(1 for record_id in stored if record_id in proposed)
        return UpsertResult(created=created, updated=len(stored) - created)

    def get(self, record_id: str) -> NhiRecord | None:
        with self._db.connect() as c:
            row = c.execute(_GET, {"b_id": record_id}).first()
        return _record(row) if row else None

    def list(self, query: InventoryQuery) -> list[NhiRecord]:
        stmt = select(_T)
        if query.kind is not None:
            stmt = stmt.where(_T.c.kind == query.kind.value)
        if query.owner is not None:
            stmt = stmt.where(_T.c.owner == query.owner)
        if query.source is not None:
            stmt = stmt.where(_T.c.source == query.source)
        if query.after is not None:
            stmt = stmt.where(_T.c.id > query.after)
        stmt = stmt.order_by(_T.c.id).limit(query.limit)
        with self._db.connect() as c:
            rows = c.execute(stmt).all()
        return [_record(r) for r in rows]
