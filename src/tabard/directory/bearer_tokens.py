"""Bearer tokens of which tabard keeps only a SHA-256 digest (admin API, SCIM, ...).

A token is a kind prefix plus 32 random bytes (256 bits), so a fast unsalted hash is enough
to make the stored digest useless to an attacker (there is nothing to brute-force); lookups
go by digest and the final comparison is constant-time. The plaintext exists once, in the
return value of :meth:`BearerTokenService.create`, and is never stored, logged or returned
again. Each kind has its own prefix and table, so a token of one kind never opens another.
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

__all__ = ["BearerTokenService", "IssuedToken", "TokenPrincipal", "TokenRecord", "TokenStore"]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    name: str
    digest: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TokenPrincipal:
    """Who presented a token: its id, name and kind (never the token)."""

    token_id: str
    name: str
    kind: str = "admin"

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True, repr=False)
class IssuedToken:
    record: TokenRecord
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.record.id!r}, name={self.record.name!r})"


class TokenStore(Protocol):
    def add(self, record: TokenRecord) -> None: ...

    def find_by_digest(self, digest: str) -> TokenRecord | None: ...

    def list(self) -> list[TokenRecord]: ...

    def mark_used(self, token_id: str, at: datetime) -> None: ...

    def revoke(self, token_id: str, at: datetime) -> bool: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BearerTokenService:
    """Tokens of one kind (``prefix`` such as ``tabard_admin_``; ``label`` for messages)."""

    def __init__(self, store: TokenStore, clock: Clock, *, prefix: str, kind: str,
                 label: str) -> None:
        self._store = store
        self._clock = clock
        self._prefix = prefix
        self._kind = kind
        self._label = label

    def create(self, name: str) -> IssuedToken:
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise Invalid("token name must be 1-64 letters, digits, '-' or '_'")
        token = self._prefix + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=str(uuid.uuid4()), name=name, digest=_digest(token), created_at=self._clock.now()
        )
        self._store.add(record)
        return IssuedToken(record, token)

    def has_active_tokens(self) -> bool:
        return any(r.revoked_at is None for r in self._store.list())

    def authenticate(self, token: str | None) -> TokenPrincipal:
        """The principal of a presented token; :class:`Unauthenticated` for anything else,
        tokens of other kinds included."""
        if not token or not token.startswith(self._prefix) or len(token) > 256:
            raise Unauthenticated(f"a valid {self._label} token is required")
        digest = _digest(token)
        record = self._store.find_by_digest(digest)
        if (
            record is None
            or not hmac.compare_digest(record.digest, digest)
            or record.revoked_at is not None
        ):
            raise Unauthenticated(f"a valid {self._label} token is required")
        self._store.mark_used(record.id, self._clock.now())
        return TokenPrincipal(record.id, record.name, self._kind)

    def list(self) -> list[TokenRecord]:
        return self._store.list()

    def revoke(self, token_id: str) -> None:
        if not self._store.revoke(token_id, self._clock.now()):
            raise NotFound(f"no {self._label} token with id {token_id!r}")
