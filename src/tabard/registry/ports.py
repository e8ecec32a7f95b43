"""What the registry needs from the outside: storage of its aggregates, an SVID minter, the
owner directory and the runner of sanitisation hooks.

``tabard.store`` implements the stores in SQL; :class:`tabard.authority.Authority` is the
minter; ``tabard.app`` fills :class:`OwnerDirectory` from ``tabard.directory``
(``docs/design/agents-and-directory.md``). Only registry values cross these ports. Every
store is thread-safe and safe to use from several server replicas over one database.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from tabard.authority import MintedX509Svid, PublicKey
from tabard.registry.agents import (
    AgentDefinition,
    AgentEvent,
    AgentQuery,
    AgentState,
    EventDraft,
    Finding,
    FindingKind,
    HookOutcome,
    IdentityUse,
    PendingChange,
    ResidualUse,
    RetirementStep,
    SanitizationHook,
)
from tabard.registry.entries import Entry
from tabard.registry.instances import AgentInstance, InstanceQuery, Registration
from tabard.registry.nodes import NodeRecord
from tabard.spiffe import Bundle, SpiffeId, TrustDomain

__all__ = [
    "AgentActivity",
    "AgentStore",
    "DirectoryPerson",
    "EntryStore",
    "FindingStore",
    "HookRunner",
    "IdentityGate",
    "InstanceStore",
    "NodeStore",
    "OwnerDirectory",
    "ResidualUseStore",
    "SvidMinter",
]

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

    def get_by_spiffe_id(self, spiffe_id: SpiffeId) -> AgentInstance | None:
        """The instance that holds ``spiffe_id`` (each instance's is unique: it ends in the
        instance's ULID); ``None`` if none does."""
        ...

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


# --- agents ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryPerson:
    """A directory user as the registry sees it (``docs/design/agents-and-directory.md``)."""

    user_name: str
    active: bool
    is_person: bool
    roles: frozenset[str]


class OwnerDirectory(Protocol):
    """The humans agents answer to; filled by ``tabard.directory``."""

    def find_person(self, user_name: str) -> DirectoryPerson | None:
        """The user named ``user_name`` (SCIM ``userName``, case-insensitive); ``None`` for
        an unknown name or a group."""
        ...


class AgentStore(Protocol):
    """Agent definitions with their events, pending changes and retirement steps: one
    aggregate, written together in one transaction.

    Every write of a definition is conditional on the version read (optimistic
    concurrency) and numbers the events it appends ``max(seq) + 1, ...``.
    """

    def add(self, agent: AgentDefinition, events: Sequence[EventDraft]) -> AgentDefinition:
        """Insert (version 1) with its first events. A taken name, even of a retired agent:
        :class:`~tabard.registry.agent_errors.AgentExistsError`."""
        ...

    def remove_unused(self, name: str) -> bool:
        """Delete an agent still at version 1 with its events (undoes an :meth:`add` whose
        registration failed afterwards); False if it changed or is gone."""
        ...

    def get(self, name: str) -> AgentDefinition | None: ...

    def list(self, query: AgentQuery) -> builtins.list[AgentDefinition]:
        """Agents matching every filter, by name (at most ``query.limit``)."""
        ...

    def page(self, states: Collection[AgentState], *, after: str = "",
             limit: int = 1000) -> builtins.list[AgentDefinition]:
        """Up to ``limit`` agents in one of ``states`` whose name sorts after ``after``, by
        name: a keyset page, so a caller passing the last name it got walks every agent
        however many there are."""
        ...

    def states(self, names: Collection[str]) -> dict[str, AgentState]:
        """The state of those of ``names`` that are registered agents."""
        ...

    def save(self, agent: AgentDefinition, *, expected_version: int,
             events: Sequence[EventDraft] = (), changes: Sequence[PendingChange] = (),
             step: RetirementStep | None = None) -> AgentDefinition:
        """Write ``agent`` as version ``expected_version + 1`` if the stored one is at
        ``expected_version``, with the events appended, the changes inserted or updated (by
        id) and the retirement step written, all in one transaction. Another version:
        :class:`~tabard.registry.agent_errors.AgentChangedError`."""
        ...

    def events(self, name: str, *, after: int = 0) -> builtins.list[AgentEvent]:
        """Events with ``seq > after``, in order."""
        ...

    def changes(self, name: str, *, pending_only: bool = False) -> builtins.list[PendingChange]:
        """Changes, oldest first."""
        ...

    def steps(self, name: str) -> builtins.list[RetirementStep]:
        """The agent's retirement steps in order (none before retirement starts)."""
        ...

    def save_step(self, step: RetirementStep) -> None:
        """Insert or replace one retirement step."""
        ...


class FindingStore(Protocol):
    """Orphan findings; at most one open finding per agent and kind."""

    def open(self, finding: Finding) -> Finding | None:
        """Store ``finding`` unless one of its agent and kind is open; returns it if stored."""
        ...

    def resolve(self, agent: str, kinds: Collection[FindingKind],
                at: datetime) -> builtins.list[Finding]:
        """Close the open findings of ``agent`` of those kinds; returns them, closed."""
        ...

    def mark_acted(self, finding_id: str, at: datetime) -> None: ...

    def list(self, *, agent: str | None = None, open_only: bool = True) -> builtins.list[Finding]:
        """Findings, oldest first."""
        ...


class AgentActivity(Protocol):
    """What the agents' instances show: when they were last seen, and retiring them."""

    def last_seen(self, names: Collection[str]) -> dict[str, datetime]:
        """The latest ``last_seen_at`` of each agent's instances (agents without any are
        absent)."""
        ...

    def retire_instances(self, name: str, at: datetime) -> int:
        """Mark the agent's instances that are not yet retired as retired at ``at``;
        returns how many."""
        ...

    def count_instances(self, name: str) -> tuple[int, int]:
        """(all, retired) instances of the agent."""
        ...


class ResidualUseStore(Protocol):
    """Refused attempts to use identities of retiring or retired agents."""

    def record(self, use: IdentityUse, at: datetime) -> None:
        """Count the attempt (first/last time and a counter per agent, kind, node, ID)."""
        ...

    def list(self, agent: str | None = None) -> builtins.list[ResidualUse]:
        """The latest first."""
        ...


class IdentityGate(Protocol):
    """Decides, on the node API path, whether an agent's identities may be issued."""

    def refused(self, uses: Sequence[IdentityUse]) -> dict[str, AgentState]:
        """The agents among ``uses`` that may not get identities now, with their state;
        attempts on retiring or retired agents are recorded as residual use."""
        ...


class HookRunner(Protocol):
    """Runs memory-sanitisation hooks (command files of the hooks directory, webhooks)."""

    def check(self, hook: SanitizationHook) -> None:
        """Refuse (:class:`~tabard.registry.agent_errors.InvalidAgentError`) a hook that
        cannot run here, e.g. a command that is not in the hooks directory."""
        ...

    def run(self, hook: SanitizationHook, agent: AgentDefinition) -> HookOutcome:
        """Run the hook for ``agent`` and wait (bounded by the runner's timeout)."""
        ...
