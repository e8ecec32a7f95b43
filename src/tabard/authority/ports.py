"""The persistence port of the authority: signing-key records and the bundle sequence.

The authority declares what it needs here; ``tabard.store`` implements it in SQL and
``tests/fakes/authority_store.py`` in memory. Only domain values cross the port.

Key states (one record per signing key; ``kind`` is ``x509`` or ``jwt``):

    prepared ──> active ──> old ──> retired
        └───────────────────────────────┘

* ``prepared``: published in the bundle, not signing yet (keys are published before they sign).
* ``active``: signs; at most one per kind.
* ``old``: no longer signs, still published so the SVIDs it signed keep validating.
* ``retired``: gone from the bundle; its SVIDs stop validating and its private key is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Literal, Protocol, get_args

from tabard.authority.keymanager.base import KeyType
from tabard.errors import Invalid

__all__ = [
    "KINDS",
    "STATES",
    "AuthorityKeyRecord",
    "AuthorityKind",
    "AuthorityState",
    "AuthorityStore",
]

AuthorityKind = Literal["x509", "jwt"]
AuthorityState = Literal["prepared", "active", "old", "retired"]
KINDS: Final[tuple[AuthorityKind, ...]] = get_args(AuthorityKind)
STATES: Final[tuple[AuthorityState, ...]] = get_args(AuthorityState)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorityKeyRecord:
    """One signing key of the trust domain and where it is in its life.

    ``key_id`` names the key in the key manager; for ``jwt`` keys it is also the ``kid``.
    ``certificate_pem`` (x509 only) is the CA certificate. ``upstream_chain_pem`` (x509 with
    an upstream CA only) holds the certificates from the CA certificate's issuer up to and
    including the trust anchor, in order: the last one is what the bundle publishes, the
    others are sent after each leaf. ``public_key_pem`` is the SubjectPublicKeyInfo PEM.
    All times are timezone-aware UTC.
    """

    id: str
    kind: AuthorityKind
    state: AuthorityState
    key_id: str
    key_type: KeyType
    public_key_pem: bytes
    created_at: datetime
    not_after: datetime
    activated_at: datetime | None = None
    certificate_pem: bytes | None = None
    upstream_chain_pem: bytes | None = None
    retired_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise Invalid(f"authority kind must be one of {', '.join(KINDS)}")
        if self.state not in STATES:
            raise Invalid(f"authority state must be one of {', '.join(STATES)}")
        object.__setattr__(self, "key_type", KeyType(self.key_type))
        if self.kind == "x509" and not self.certificate_pem:
            raise Invalid("an x509 authority record needs its CA certificate")
        for when in (self.created_at, self.not_after, self.activated_at, self.retired_at):
            if when is not None and when.utcoffset() is None:
                raise Invalid("authority record times must be timezone-aware")

    @property
    def published(self) -> bool:
        """Whether the key belongs in the bundle."""
        return self.state != "retired"

    def with_state(self, state: AuthorityState, at: datetime) -> AuthorityKeyRecord:
        """The record after a transition at ``at`` (stores use this to stay consistent)."""
        if state == "active":
            return replace(self, state=state, activated_at=at)
        if state == "retired":
            return replace(self, state=state, retired_at=at)
        return replace(self, state=state)


class AuthorityStore(Protocol):
    """Durable signing-key records and the bundle sequence number; thread-safe."""

    def list_keys(self) -> list[AuthorityKeyRecord]:
        """Every record, retired ones included, oldest first."""
        ...

    def add_key(self, record: AuthorityKeyRecord) -> None:
        """Insert ``record``; :class:`~tabard.errors.Conflict` if its ``id`` exists."""
        ...

    def set_state(
        self,
        record_id: str,
        state: AuthorityState,
        at: datetime,
        *,
        expected: AuthorityState | None = None,
    ) -> AuthorityKeyRecord:
        """Move a record to ``state`` at ``at`` (see :meth:`AuthorityKeyRecord.with_state`).

        With ``expected``, the change happens only if the record is still in that state
        (compare-and-set across server replicas), else
        :class:`~tabard.authority.errors.AuthorityStateError`. Unknown ``record_id``:
        :class:`~tabard.authority.errors.AuthorityNotFoundError`. Returns the new record.
        """
        ...

    def bump_bundle_sequence(self) -> int:
        """Atomically increment the bundle sequence and return the new value."""
        ...

    def bundle_sequence(self) -> int:
        """The current bundle sequence (0 before the first bump)."""
        ...
