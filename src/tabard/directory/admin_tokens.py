"""Admin API tokens: random bearer secrets of which tabard keeps only a SHA-256 digest.

A token is 32 random bytes (256 bits), so a fast unsalted hash is enough to make the stored
digest useless to an attacker (there is nothing to brute-force); lookups go by digest and the
final comparison is constant-time. The plaintext exists once, in the return value of
:meth:`AdminTokenService.create`, and is never stored, logged or returned again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tabard.clock import Clock
from tabard.errors import Invalid, NotFound, Unauthenticated

__all__ = [
    "TOKEN_PREFIX",
    "AdminPrincipal",
    "AdminTokenRecord",
    "AdminTokenService",
    "AdminTokenStore",
    "IssuedAdminToken",
]

TOKEN_PREFIX = "tabard_admin_"


@dataclass(frozen=True, slots=True)
class AdminTokenRecord:
    id: str
    name: str
    digest: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    """Who is calling the admin API: the token's id and name (never the token)."""

    token_id: str
    name: str

    @property
    def actor(self) -> str:
        return f"admin:{self.name}"


@dataclass(frozen=True, slots=True, repr=False)
class IssuedAdminToken:
    record: AdminTokenRecord
    token: str

    def __repr__(self) -> str:
        return f"IssuedAdminToken(id={self.record.id!r}, name={self.record.name!r})"


class AdminTokenStore(Protocol):
    def add(self, record: AdminTokenRecord) -> None: ...

    def find_by_digest(self, digest: str) -> AdminTokenRecord | None: ...

    def list(self) -> list[AdminTokenRecord]: ...

    def mark_used(self, token_id: str, at: datetime) -> None: ...

    def revoke(self, token_id: str, at: datetime) -> bool: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AdminTokenService:
    def __init__(self, store: AdminTokenStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def create(self, name: str) -> IssuedAdminToken:
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise Invalid("token name must be 1-64 letters, digits, '-' or '_'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = AdminTokenRecord(
            id=str(uuid.uuid4()), name=name, digest=_digest(token), created_at=self._clock.now()
        )
        self._store.add(record)
        return IssuedAdminToken(record, token)

    def has_active_tokens(self) -> bool:
        return any(r.revoked_at is None for r in self._store.list())

    def authenticate(self, token: str | None) -> AdminPrincipal:
        """The principal of a presented token; :class:`Unauthenticated` for anything else."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            raise Unauthenticated("a valid admin token is required")
        digest = _digest(token)
        record = self._store.find_by_digest(digest)
        if (
            record is None
            or not hmac.compare_digest(record.digest, digest)
            or record.revoked_at is not None
        ):
            raise Unauthenticated("a valid admin token is required")
        self._store.mark_used(record.id, self._clock.now())
        return AdminPrincipal(record.id, record.name)

    def list(self) -> list[AdminTokenRecord]:
        return self._store.list()

    def revoke(self, token_id: str) -> None:
        if not self._store.revoke(token_id, self._clock.now()):
            raise NotFound(f"no admin token with id {token_id!r}")
