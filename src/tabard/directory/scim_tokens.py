"""SCIM bearer tokens: the credential an identity provider provisions users with.

They work like admin tokens (random 256-bit secrets, shown once, stored as a SHA-256 digest,
compared in constant time) but are a separate kind with their own prefix and table: a SCIM
token opens ``/scim/v2`` only, and an admin token never opens ``/scim/v2``.
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
    "SCIM_TOKEN_PREFIX",
    "IssuedScimToken",
    "ScimClient",
    "ScimTokenRecord",
    "ScimTokenService",
    "ScimTokenStore",
]

SCIM_TOKEN_PREFIX = "tabard_scim_"


@dataclass(frozen=True, slots=True)
class ScimTokenRecord:
    id: str
    name: str
    digest: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScimClient:
    """Who is provisioning: the token's id and name (never the token)."""

    token_id: str
    name: str

    @property
    def actor(self) -> str:
        return f"scim:{self.name}"


@dataclass(frozen=True, slots=True, repr=False)
class IssuedScimToken:
    record: ScimTokenRecord
    token: str

    def __repr__(self) -> str:
        return f"IssuedScimToken(id={self.record.id!r}, name={self.record.name!r})"


class ScimTokenStore(Protocol):
    def add(self, record: ScimTokenRecord) -> None: ...

    def find_by_digest(self, digest: str) -> ScimTokenRecord | None: ...

    def list(self) -> list[ScimTokenRecord]: ...

    def mark_used(self, token_id: str, at: datetime) -> None: ...

    def revoke(self, token_id: str, at: datetime) -> bool: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ScimTokenService:
    def __init__(self, store: ScimTokenStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def create(self, name: str) -> IssuedScimToken:
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise Invalid("token name must be 1-64 letters, digits, '-' or '_'")
        token = SCIM_TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = ScimTokenRecord(
            id=str(uuid.uuid4()), name=name, digest=_digest(token), created_at=self._clock.now()
        )
        self._store.add(record)
        return IssuedScimToken(record, token)

    def authenticate(self, token: str | None) -> ScimClient:
        """The client behind a presented token; :class:`Unauthenticated` for anything else,
        admin tokens included."""
        if not token or not token.startswith(SCIM_TOKEN_PREFIX) or len(token) > 256:
            raise Unauthenticated("a valid SCIM token is required")
        digest = _digest(token)
        record = self._store.find_by_digest(digest)
        if (
            record is None
            or not hmac.compare_digest(record.digest, digest)
            or record.revoked_at is not None
        ):
            raise Unauthenticated("a valid SCIM token is required")
        self._store.mark_used(record.id, self._clock.now())
        return ScimClient(record.id, record.name)

    def list(self) -> list[ScimTokenRecord]:
        return self._store.list()

    def revoke(self, token_id: str) -> None:
        if not self._store.revoke(token_id, self._clock.now()):
            raise NotFound(f"no SCIM token with id {token_id!r}")
