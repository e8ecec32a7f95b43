"""SQL implementation of :class:`tabard.authority.AuthorityStore`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tabard.authority import (
    AuthorityKeyRecord,
    AuthorityNotFoundError,
    AuthorityState,
    AuthorityStateError,
    KeyType,
)
from tabard.errors import Conflict
from tabard.store.db import Database
from tabard.store.tables import authority_keys, bundle_state

__all__ = ["SqlAuthorityStore"]


def _record(row: Any) -> AuthorityKeyRecord:
    return AuthorityKeyRecord(
        id=row.id, kind=row.kind, state=row.state, key_id=row.key_id,
        key_type=KeyType(row.key_type), created_at=row.created_at,
        activated_at=row.activated_at, not_after=row.not_after,
        certificate_pem=row.certificate_pem, upstream_chain_pem=row.upstream_chain_pem,
        public_key_pem=row.public_key_pem, retired_at=row.retired_at,
    )


class SqlAuthorityStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def list_keys(self) -> list[AuthorityKeyRecord]:
        with self._db.connect() as c:
            rows = c.execute(select(authority_keys).order_by(authority_keys.c.created_at)).all()
        return [_record(r) for r in rows]

    def add_key(self, record: AuthorityKeyRecord) -> None:
        try:
            self._insert(record)
        except IntegrityError:
            raise Conflict(f"authority {record.id} exists") from None

    def _insert(self, record: AuthorityKeyRecord) -> None:
        with self._db.begin() as c:
            c.execute(
                insert(authority_keys).values(
                    id=record.id, kind=record.kind, state=record.state, key_id=record.key_id,
                    key_type=KeyType(record.key_type).value, created_at=record.created_at,
                    activated_at=record.activated_at, not_after=record.not_after,
                    retired_at=record.retired_at, certificate_pem=record.certificate_pem,
                    upstream_chain_pem=record.upstream_chain_pem,
                    public_key_pem=record.public_key_pem,
                )
            )

    def set_state(
        self,
        record_id: str,
        state: AuthorityState,
        at: datetime,
        *,
        expected: AuthorityState | None = None,
    ) -> AuthorityKeyRecord:
        with self._db.begin() as c:
            row = c.execute(
                select(authority_keys).where(authority_keys.c.id == record_id)
            ).first()
            if row is None:
                raise AuthorityNotFoundError(f"no authority {record_id}")
            updated = _record(row).with_state(state, at)
            condition = [authority_keys.c.id == record_id]
            if expected is not None:
                condition.append(authority_keys.c.state == expected)
            result = c.execute(
                update(authority_keys).where(*condition).values(
                    state=updated.state, activated_at=updated.activated_at,
                    retired_at=updated.retired_at,
                )
            )
            if result.rowcount != 1:
                raise AuthorityStateError(
                    f"authority {record_id} is {row.state}, expected {expected}"
                )
        return updated

    def bundle_sequence(self) -> int:
        with self._db.connect() as c:
            value = c.execute(select(bundle_state.c.sequence)
                              .where(bundle_state.c.id == 1)).scalar()
        return int(value or 0)

    def bump_bundle_sequence(self) -> int:
        with self._db.begin() as c:
            updated = c.execute(
                update(bundle_state).where(bundle_state.c.id == 1)
                .values(sequence=bundle_state.c.sequence + 1)
                .returning(bundle_state.c.sequence)
            ).scalar_one()
        return int(updated)
