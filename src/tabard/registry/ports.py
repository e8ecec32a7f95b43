"""What the registry needs from the outside: storage of its aggregates and an SVID minter.

``tabard.store`` implements the stores in SQL; :class:`tabard.authority.Authority` is the
minter. Only registry values cross these ports. Every store is thread-safe and safe to use
from several server replicas over one database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from tabard.authority import MintedX509Svid, PublicKey
from tabard.registry.entries import Entry
from tabard.registry.instances import AgentInstance, InstanceQuery, Registration
from tabard.registry.nodes import NodeRecord
from tabard.spiffe import Bundle, SpiffeId, TrustDomain

__all__ = ["EntryStore", "InstanceStore", "NodeStore", "SvidMinter"]

_Entries = list[Entry]


class EntryStore(Protocol):
    """Registration entries and the revision counter of each parent.

    Every write bumps the revision of the parent(s) it touches in the same transaction and
    stamps the written entry with it, so a node that saw revision ``r`` has seen every change
    up to ``r``.
    """

    def add(self, entry: Entry) -> Entry:
        """Insert; returns the entry with its revision. An entry with the same SPIFFE ID,
        parent and selector set: :class:`~tabard.registry.errors.DuplicateEntryError`."""
        ...

    def get(self, entry_id: str) -> Entry | None: ...

    def get_many(self, entry_ids: Iterable[str]) -> dict[str, Entry]:
        """The entries that exist among ``entry_ids``, by id."""
        ...

    def list(self, *, parent_id: SpiffeId | None = None,
             spiffe_id: str | None = None) -> list[Entry]:
        """Entries matching every given filter, oldest first."""
        ...

    def update(self, entry: Entry) -> Entry:
        """Replace the stored entry with the same id; bumps the old and the new parent's
        revision. Unknown id: :class:`~tabard.registry.errors.EntryNotFoundError`;
        duplicate: :class:`~tabard.registry.errors.DuplicateEntryError`."""
        ...

    def delete(self, entry_id: str) -> Entry | None:
        """Remove and return the entry (``None`` if unknown); bumps its parent's revision."""
        ...

    def for_parent(self, parent_id: SpiffeId) -> tuple[int, _Entries]:
        """The parent's revision and its entries. The revision is read first, so it never
        claims changes that the returned entries miss."""
        ...


class NodeStore(Protocol):
    def add(self, node: NodeRecord) -> None: ...

    def get(self, node_id: str) -> NodeRecord | None: ...

    def find_by_attestation_key(self, attestor: str, key: str) -> NodeRecord | None: ...

    def list(self) -> list[NodeRecord]:
        """Every node, oldest attestation first."""
        ...

    def update(self, node: NodeRecord) -> None:
        """Store a new attestation or SVID of a node: its selectors, ``attested_at`` and
        ``svid_expires_at`` (never ``banned_at``)."""
        ...

    def ban(self, node_id: str, at: datetime) -> NodeRecord | None:
        """Mark the node banned (keeping the first ban time); ``None`` if unknown."""
        ...


class InstanceStore(Protocol):
    """Agent instances; rows are never deleted."""

    def register(self, candidate: AgentInstance) -> Registration:
        """In one transaction: find the instance with the candidate's
        ``(node_id, entry_id, pid, start_time)`` and refresh its ``last_seen_at``, or insert
        the candidate; drop ``parent_instance_id`` unless it names an instance of the same
        node; and retire the node's instances with the same pid but another start time (that
        process has exited: pids are only reused after exit)."""
        ...

    def get(self, instance_id: str) -> AgentInstance | None: ...

    def touch(self, node_id: str, instance_ids: Sequence[str], at: datetime) -> int:
        """Set ``last_seen_at`` of those of ``instance_ids`` that belong to ``node_id``;
        returns how many."""
        ...

    def list(self, query: InstanceQuery) -> list[AgentInstance]:
        """Newest first, filtered by ``query``."""
        ...


class SvidMinter(Protocol):
    """The part of the authority the registry mints with."""

    @property
    def trust_domain(self) -> TrustDomain: ...

    def mint_x509_svid(
        self,
        spiffe_id: SpiffeId,
        public_key: PublicKey | None = None,
        ttl: timedelta | None = None,
        dns_names: Sequence[str] = (),
    ) -> MintedX509Svid: ...

    def mint_jwt_svid(
        self,
        spiffe_id: SpiffeId,
        audience: str | Sequence[str],
        ttl: timedelta | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str: ...

    def bundle(self) -> Bundle: ...
