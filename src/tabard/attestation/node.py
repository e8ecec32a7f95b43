"""Server-side node attestation: the attestor plugin interface and the join-token attestor.

A node proves what it is with evidence an attestor understands; the attestor answers with
an :class:`AttestedNode` (its selectors, and for attestors whose evidence names the same
host again, an ``attestation_key``), and the registry creates or finds the node record. New
attestors (x509pop, cloud instance identity documents) implement :class:`NodeAttestor` and
are registered by name in :class:`NodeAttestors`; the node names the attestor it uses in
its ``attest`` request (``docs/design/node-api.md``).

Join tokens are one-time bearer secrets an admin hands to a host. tabard stores only their
SHA-256 (the token holds 256 random bits, so there is nothing to brute-force) and consumes a
token with one conditional write, so of two concurrent attestations with the same token
exactly one wins, on every backend.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

from tabard.clock import Clock
from tabard.errors import Conflict, Invalid, Unauthenticated

__all__ = [
    "JOIN_TOKEN_ATTESTOR",
    "JOIN_TOKEN_PREFIX",
    "AttestationError",
    "AttestedNode",
    "ConsumeOutcome",
    "ConsumeResult",
    "InvalidJoinTokenError",
    "IssuedJoinToken",
    "JoinTokenAttestor",
    "JoinTokenRecord",
    "JoinTokenStore",
    "JoinTokens",
    "NodeAttestor",
    "NodeAttestors",
    "UnknownAttestorError",
    "join_token_digest",
]

JOIN_TOKEN_ATTESTOR: Final = "join_token"
JOIN_TOKEN_PREFIX: Final = "tabard_join_"
MAX_TOKEN_LENGTH = 256
ConsumeOutcome = Literal["consumed", "unknown", "used", "expired"]


class AttestationError(Unauthenticated):
    """Evidence that does not prove the node's claim."""

    code = "attestation_failed"


class InvalidJoinTokenError(AttestationError):
    """A join token that is unknown, used or expired; ``reason`` says which."""

    code = "invalid_join_token"

    def __init__(self, reason: Literal["unknown", "used", "expired"]) -> None:
        text = {"unknown": "the join token is unknown",
                "used": "the join token was already used",
                "expired": "the join token has expired"}[reason]
        super().__init__(text)
        self.reason = reason


class UnknownAttestorError(Invalid):
    code = "unknown_attestor"


@dataclass(frozen=True, slots=True)
class AttestedNode:
    """What an attestor vouches for. ``selectors`` are ``type:value`` strings (the registry
    parses them); ``attestation_key``, when set, is a stable name of the host in the
    attestor's namespace so that attesting again finds the same node."""

    attestor: str
    selectors: tuple[str, ...]
    attestation_key: str | None = None


class NodeAttestor(Protocol):
    """A node attestation plugin, known by ``name`` (the ``attestor`` field of the request)."""

    @property
    def name(self) -> str: ...

    def attest(self, payload: Mapping[str, Any]) -> AttestedNode:
        """Verify the evidence in ``payload``; raise :class:`AttestationError` if it fails."""
        ...


class NodeAttestors:
    """The attestors this server accepts, by name."""

    def __init__(self, attestors: Iterable[NodeAttestor] = ()) -> None:
        self._by_name: dict[str, NodeAttestor] = {}
        for attestor in attestors:
            self.register(attestor)

    def register(self, attestor: NodeAttestor) -> None:
        if attestor.name in self._by_name:
            raise Conflict(f"a node attestor named {attestor.name!r} is registered already")
        self._by_name[attestor.name] = attestor

    def get(self, name: str) -> NodeAttestor:
        attestor = self._by_name.get(name)
        if attestor is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise UnknownAttestorError(f"unknown node attestor {name!r} (this server accepts: "
                                       f"{known})")
        return attestor

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_name))

    def attest(self, name: str, payload: Mapping[str, Any]) -> AttestedNode:
        """Run the named attestor; its answer must carry its own name."""
        attestor = self.get(name)
        result = attestor.attest(payload)
        if result.attestor != attestor.name:
            raise AttestationError(f"attestor {name!r} answered as {result.attestor!r}")
        return result


# --- join tokens -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinTokenRecord:
    """A join token as stored: its digest, never the token."""

    id: str
    digest: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True, repr=False)
class IssuedJoinToken:
    """A new token: ``token`` exists only here, to be shown once."""

    record: JoinTokenRecord
    token: str

    def __repr__(self) -> str:
        return f"IssuedJoinToken(id={self.record.id!r})"


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    outcome: ConsumeOutcome
    record: JoinTokenRecord | None = None


class JoinTokenStore(Protocol):
    """Durable join tokens; thread-safe and safe across server replicas."""

    def add(self, record: JoinTokenRecord) -> None: ...

    def consume(self, digest: str, at: datetime) -> ConsumeResult:
        """Mark the token with ``digest`` used at ``at`` if it is unused and unexpired, in one
        atomic step. ``consumed`` carries the record; otherwise the outcome says why not."""
        ...


def join_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class JoinTokens:
    """Issues join tokens: 256 random bits, shown once, stored as a digest."""

    def __init__(self, store: JoinTokenStore, clock: Clock, *,
                 default_ttl: timedelta = timedelta(minutes=10),
                 max_ttl: timedelta = timedelta(days=30)) -> None:
        self._store = store
        self._clock = clock
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl

    def generate(self, ttl: timedelta | None = None) -> IssuedJoinToken:
        lifetime = self._default_ttl if ttl is None else ttl
        if lifetime <= timedelta(0) or lifetime > self._max_ttl:
            raise Invalid(f"join token ttl must be positive and at most "
                          f"{int(self._max_ttl.total_seconds())}s")
        token = JOIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock.now()
        record = JoinTokenRecord(id=uuid.uuid4().hex, digest=join_token_digest(token),
                                 created_at=now, expires_at=now + lifetime)
        self._store.add(record)
        return IssuedJoinToken(record, token)


class JoinTokenAttestor:
    """The ``join_token`` attestor: the payload's ``join_token`` must be valid and unused.

    Each successful attestation is a new node (a token is used once), so there is no
    ``attestation_key``; the node's selector ``join_token:<token id>`` records which token
    admitted it.
    """

    def __init__(self, store: JoinTokenStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    @property
    def name(self) -> str:
        return JOIN_TOKEN_ATTESTOR

    def attest(self, payload: Mapping[str, Any]) -> AttestedNode:
        token = payload.get("join_token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidJoinTokenError("unknown")
        result = self._store.consume(join_token_digest(token), self._clock.now())
        if result.outcome != "consumed" or result.record is None:
            reason = "unknown" if result.outcome == "consumed" else result.outcome
            raise InvalidJoinTokenError(reason)
        return AttestedNode(JOIN_TOKEN_ATTESTOR, (f"join_token:{result.record.id}",))
