"""SQL implementation of :class:`tabard.attestation.JoinTokenStore`.

A token is consumed by one conditional ``UPDATE`` (unused and unexpired → used): the row
lock (PostgreSQL) or the write lock (SQLite) lets exactly one of two concurrent attempts
change the row; the other then finds it used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from tabard.attestation import ConsumeResult, JoinTokenRecord
from tabard.store.db import Database
from tabard.store.tables import join_tokens

__all__ = ["SqlJoinTokenStore"]


def _record(row: Any) -> JoinTokenRecord:
    return JoinTokenRecord(id=row.id, digest=row.digest, created_at=row.created_at,
                           expires_at=row.expires_at, used_at=row.used_at)


class SqlJoinTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, record: JoinTokenRecord) -> None:
        with self._db.begin() as c:
            c.execute(insert(join_tokens).values(
                id=record.id, digest=record.digest, created_at=record.created_at,
                expires_at=record.expires_at, used_at=record.used_at,
            ))

    def consume(self, digest: str, at: datetime) -> ConsumeResult:
        t = join_tokens
        with self._db.begin() as c:
            row = c.execute(
                update(t).where(t.c.digest == digest, t.c.used_at.is_(None), t.c.expires_at > at)
                .values(used_at=at).returning(*t.c)
            ).first()
            if row is not None:
                return ConsumeResult("consumed", _record(row))
            row = c.execute(select(t).where(t.c.digest == digest)).first()
        if row is None:
            return ConsumeResult("unknown")
        record = _record(row)
        return ConsumeResult("used" if record.used_at is not None else "expired", record)
