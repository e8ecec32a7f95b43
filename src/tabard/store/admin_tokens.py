"""SQL implementation of :class:`tabard.directory.bearer_tokens.TokenStore`.

One class serves every kind of bearer token; each kind keeps its own table (admin tokens,
SCIM tokens), so a token of one kind can never be found as another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update

from tabard.directory.bearer_tokens import TokenRecord
from tabard.store.db import Database
from tabard.store.tables import admin_tokens, scim_tokens

__all__ = ["SqlAdminTokenStore", "SqlBearerTokenStore", "SqlScimTokenStore"]


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id, name=row.name, digest=row.digest, created_at=row.created_at,
        last_used_at=row.last_used_at, revoked_at=row.revoked_at,
    )


class SqlBearerTokenStore:
    def __init__(self, db: Database, table: Table) -> None:
        self._db = db
        self._t = table

    def add(self, record: TokenRecord) -> None:
        with self._db.begin() as c:
            c.execute(insert(self._t).values(
                id=record.id, name=record.name, digest=record.digest,
                created_at=record.created_at))

    def find_by_digest(self, digest: str) -> TokenRecord | None:
        with self._db.connect() as c:
            row = c.execute(select(self._t).where(self._t.c.digest == digest)).first()
        return _record(row) if row else None

    def list(self) -> list[TokenRecord]:
        with self._db.connect() as c:
            rows = c.execute(select(self._t).order_by(self._t.c.created_at)).all()
        return [_record(r) for r in rows]

    def mark_used(self, token_id: str, at: datetime) -> None:
        with self._db.begin() as c:
            c.execute(update(self._t).where(self._t.c.id == token_id).values(last_used_at=at))

    def revoke(self, token_id: str, at: datetime) -> bool:
        with self._db.begin() as c:
            result = c.execute(
                update(self._t)
                .where(self._t.c.id == token_id, self._t.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return result.rowcount > 0


class SqlAdminTokenStore(SqlBearerTokenStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db, admin_tokens)


class SqlScimTokenStore(SqlBearerTokenStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db, scim_tokens)
