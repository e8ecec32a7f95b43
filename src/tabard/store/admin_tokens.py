"""SQL implementation of :class:`tabard.directory.AdminTokenStore`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from tabard.directory import AdminTokenRecord
from tabard.store.db import Database
from tabard.store.tables import admin_tokens

__all__ = ["SqlAdminTokenStore"]


def _record(row: Any) -> AdminTokenRecord:
    return AdminTokenRecord(
        id=row.id, name=row.name, digest=row.digest, created_at=row.created_at,
        last_used_at=row.last_used_at, revoked_at=row.revoked_at,
    )


class SqlAdminTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, record: AdminTokenRecord) -> None:
        with self._db.begin() as c:
            c.execute(
                insert(admin_tokens).values(
                    id=record.id, name=record.name, digest=record.digest,
                    created_at=record.created_at,
                )
            )

    def find_by_digest(self, digest: str) -> AdminTokenRecord | None:
        with self._db.connect() as c:
            row = c.execute(select(admin_tokens).where(admin_tokens.c.digest == digest)).first()
        return _record(row) if row else None

    def list(self) -> list[AdminTokenRecord]:
        with self._db.connect() as c:
            rows = c.execute(select(admin_tokens).order_by(admin_tokens.c.created_at)).all()
        return [_record(r) for r in rows]

    def mark_used(self, token_id: str, at: datetime) -> None:
        with self._db.begin() as c:
            c.execute(
                update(admin_tokens).where(admin_tokens.c.id == token_id).values(last_used_at=at)
            )

    def revoke(self, token_id: str, at: datetime) -> bool:
        with self._db.begin() as c:
            result = c.execute(
                update(admin_tokens)
                .where(admin_tokens.c.id == token_id, admin_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return result.rowcount > 0
