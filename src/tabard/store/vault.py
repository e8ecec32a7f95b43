"""SQL implementations of the vault's ports: :class:`tabard.vault.SecretStore` and
:class:`tabard.vault.LeaseStore`.

Only envelopes are stored (ciphertext, nonces, wrapped data key, KEK id); destroying a
version sets every envelope column to NULL in the same row, so no ciphertext outlives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tabard.store.db import Database
from tabard.store.tables import vault_leases, vault_secret_versions, vault_secrets
from tabard.vault import (
    Envelope,
    Lease,
    LeaseQuery,
    ProviderKind,
    SecretExistsError,
    SecretMeta,
    SecretVersion,
    SecretVersionConflictError,
)

__all__ = ["SqlLeaseStore", "SqlSecretStore"]

_S, _V, _L = vault_secrets, vault_secret_versions, vault_leases
_META_COLUMNS = (_V.c.name, _V.c.version, _V.c.created_at, _V.c.expires_at, _V.c.destroyed_at)


def _meta(row: Any) -> SecretMeta:
    return SecretMeta(name=row.name, description=row.description,
                      current_version=row.current_version, created_at=row.created_at,
                      updated_at=row.updated_at, deleted_at=row.deleted_at)


def _version(row: Any, *, with_envelope: bool) -> SecretVersion:
    envelope = None
    if with_envelope and row.ciphertext is not None:
        envelope = Envelope(kek_id=row.kek_id, nonce=bytes(row.nonce),
                            ciphertext=bytes(row.ciphertext), key_nonce=bytes(row.key_nonce),
                            wrapped_key=bytes(row.wrapped_key), algorithm=row.algorithm)
    return SecretVersion(name=row.name, version=row.version, created_at=row.created_at,
                         expires_at=row.expires_at, destroyed_at=row.destroyed_at,
                         envelope=envelope)


def _version_values(version: SecretVersion) -> dict[str, Any]:
    e = version.envelope
    if e is None:
        raise ValueError("a new secret version needs an envelope")
    return {"name": version.name, "version": version.version,
            "created_at": version.created_at, "expires_at": version.expires_at,
            "algorithm": e.algorithm, "kek_id": e.kek_id, "nonce": e.nonce,
            "ciphertext": e.ciphertext, "key_nonce": e.key_nonce,
            "wrapped_key": e.wrapped_key}


class SqlSecretStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str) -> SecretMeta | None:
        with self._db.read() as c:
            row = c.execute(select(_S).where(_S.c.name == name)).first()
        return _meta(row) if row else None

    def create(self, meta: SecretMeta, version: SecretVersion) -> None:
        try:
            with self._db.begin() as c:
                c.execute(insert(_S).values(
                    name=meta.name, description=meta.description,
                    current_version=meta.current_version, created_at=meta.created_at,
                    updated_at=meta.updated_at, deleted_at=None))
                c.execute(insert(_V).values(**_version_values(version)))
        except IntegrityError:
            raise SecretExistsError(f"secret {meta.name!r} exists; rotate it instead") from None

    def add_version(self, meta: SecretMeta, version: SecretVersion, *, expected_current: int,
                    previous_expires_at: datetime | None) -> None:
        try:
            with self._db.begin() as c:
                moved = c.execute(
                    update(_S)
                    .where(_S.c.name == meta.name, _S.c.current_version == expected_current)
                    .values(current_version=version.version, description=meta.description,
                            updated_at=meta.updated_at, created_at=meta.created_at,
                            deleted_at=meta.deleted_at)
                ).rowcount
                if moved != 1:
                    raise SecretVersionConflictError(
                        f"secret {meta.name!r} changed meanwhile; try again")
                c.execute(update(_V)
                          .where(_V.c.name == meta.name, _V.c.version == expected_current,
                                 _V.c.destroyed_at.is_(None))
                          .values(expires_at=previous_expires_at))
                c.execute(insert(_V).values(**_version_values(version)))
        except IntegrityError:
            raise SecretVersionConflictError(
                f"secret {meta.name!r} changed meanwhile; try again") from None

    def version(self, name: str, version: int) -> SecretVersion | None:
        with self._db.read() as c:
            row = c.execute(select(_V).where(_V.c.name == name, _V.c.version == version)).first()
        return _version(row, with_envelope=True) if row else None

    def versions(self, name: str) -> Sequence[SecretVersion]:
        with self._db.read() as c:
            rows = c.execute(select(*_META_COLUMNS).where(_V.c.name == name)
                             .order_by(_V.c.version.desc())).all()
        return [_version(r, with_envelope=False) for r in rows]

    def list(self) -> Sequence[SecretMeta]:
        with self._db.read() as c:
            rows = c.execute(select(_S).where(_S.c.deleted_at.is_(None))
                             .order_by(_S.c.name)).all()
        return [_meta(r) for r in rows]

    def destroy(self, name: str, versions: Sequence[int] | None, at: datetime) -> int:
        condition = and_(_V.c.name == name, _V.c.destroyed_at.is_(None))
        if versions is not None:
            condition = and_(condition, _V.c.version.in_(list(versions)))
        with self._db.begin() as c:
            return int(c.execute(update(_V).where(condition).values(
                destroyed_at=at, algorithm=None, kek_id=None, nonce=None, ciphertext=None,
                key_nonce=None, wrapped_key=None)).rowcount)

    def mark_deleted(self, name: str, at: datetime) -> bool:
        with self._db.begin() as c:
            return bool(c.execute(update(_S)
                                  .where(_S.c.name == name, _S.c.deleted_at.is_(None))
                                  .values(deleted_at=at, updated_at=at)).rowcount)

    def expired_versions(self, at: datetime) -> Sequence[tuple[str, int]]:
        with self._db.read() as c:
            rows = c.execute(select(_V.c.name, _V.c.version)
                             .where(_V.c.expires_at <= at, _V.c.destroyed_at.is_(None))
                             .order_by(_V.c.name, _V.c.version)).all()
        return [(r.name, r.version) for r in rows]


def _lease(row: Any) -> Lease:
    return Lease(id=row.id, provider=ProviderKind(row.provider), route=row.route,
                 agent=row.agent, agent_instance=row.agent_instance, user=row.user_name,
                 issued_at=row.issued_at, expires_at=row.expires_at,
                 secret_name=row.secret_name, secret_version=row.secret_version,
                 revoked_at=row.revoked_at)


class SqlLeaseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, lease: Lease) -> None:
        self.add_many([lease])

    def add_many(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        with self._db.begin() as c:
            c.execute(insert(_L), [dict(
                id=lease.id, provider=lease.provider.value, route=lease.route,
                agent=lease.agent, agent_instance=lease.agent_instance, user_name=lease.user,
                secret_name=lease.secret_name, secret_version=lease.secret_version,
                issued_at=lease.issued_at, expires_at=lease.expires_at,
                revoked_at=lease.revoked_at) for lease in leases])

    def get(self, lease_id: str) -> Lease | None:
        with self._db.read() as c:
            row = c.execute(select(_L).where(_L.c.id == lease_id)).first()
        return _lease(row) if row else None

    def list(self, query: LeaseQuery) -> Sequence[Lease]:
        statement = select(_L)
        if query.agent is not None:
            statement = statement.where(_L.c.agent == query.agent)
        if query.agent_instance is not None:
            statement = statement.where(_L.c.agent_instance == query.agent_instance)
        if query.secret_name is not None:
            statement = statement.where(_L.c.secret_name == query.secret_name)
        if query.route is not None:
            statement = statement.where(_L.c.route == query.route)
        if query.active_at is not None:
            statement = statement.where(
                _L.c.revoked_at.is_(None),
                or_(_L.c.expires_at.is_(None), _L.c.expires_at > query.active_at))
        statement = statement.order_by(_L.c.issued_at.desc(), _L.c.id).limit(query.limit)
        with self._db.read() as c:
            rows = c.execute(statement).all()
        return [_lease(r) for r in rows]

    def revoke(self, lease_id: str, at: datetime) -> bool:
        with self._db.begin() as c:
            return bool(c.execute(update(_L)
                                  .where(_L.c.id == lease_id, _L.c.revoked_at.is_(None))
                                  .values(revoked_at=at)).rowcount)

    def revoke_matching(self, *, agent: str | None, agent_instance: str | None,
                        at: datetime) -> int:
        if (agent is None) == (agent_instance is None):
            raise ValueError("revoke by exactly one of agent and agent_instance")
        column = _L.c.agent if agent is not None else _L.c.agent_instance
        with self._db.begin() as c:
            return int(c.execute(update(_L)
                                 .where(column == (agent or agent_instance),
                                        _L.c.revoked_at.is_(None))
                                 .values(revoked_at=at)).rowcount)
