"""The registry's use cases: what the admin API and the node API call.

* :class:`EntryService` — create, read, update, delete registration entries; a node's view.
* :class:`NodeService` — attest a node (through a :class:`~tabard.attestation.NodeAttestors`
  plugin), renew its SVID, authenticate node API calls, ban.
* :class:`InstanceService` — register agent instances, record last-seen, list them.
* :class:`EntrySvidService` — mint the X509- and JWT-SVIDs of a node's entries, with the
  entry's TTLs and DNS names, resolving instance templates.

Each refuses what is not the calling node's own with
:class:`~tabard.registry.errors.NotYourEntryError` (node-api.md). Given an
:class:`~tabard.registry.ports.IdentityGate`, the instance and SVID services also refuse the
entries of agents whose definition is not active (ARCHITECTURE §5): an instance registration
or a JWT-SVID with :class:`~tabard.registry.agent_errors.AgentNotActiveError` (or
``AgentRetiredError``), and an X509-SVID batch by leaving those requests out of the answer,
so that one suspended agent does not stop the rotation of a node's other SVIDs.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tabard.attestation import NodeAttestors
from tabard.authority import MintedX509Svid, PublicKey
from tabard.clock import Clock
from tabard.errors import Invalid
from tabard.registry.agent_errors import AgentNotActiveError, AgentRetiredError
from tabard.registry.agents import AgentState, IdentityUse, agent_of
from tabard.registry.entries import (
    INSTANCE_PLACEHOLDER,
    Entry,
    EntryLimits,
    EntryPatch,
    EntrySpec,
    ValidEntry,
    validate_spec,
)
from tabard.registry.errors import (
    EntryNotFoundError,
    InstanceNotFoundError,
    InvalidEntryError,
    NodeBannedError,
    NodeNotFoundError,
    NodeUnauthenticatedError,
    NotATemplateError,
    NotYourEntryError,
    SelectorMismatchError,
)
from tabard.registry.instances import (
    AgentInstance,
    InstanceQuery,
    InstanceReport,
    Registration,
    new_ulid,
)
from tabard.registry.nodes import (
    NodePrincipal,
    NodeRecord,
    node_id_from_spiffe_id,
    node_spiffe_id,
)
from tabard.registry.ports import (
    EntryStore,
    IdentityGate,
    InstanceStore,
    NodeStore,
    SvidMinter,
)
from tabard.registry.selectors import parse_selectors
from tabard.spiffe import Bundle, SpiffeId, SpiffeIdError, TrustDomain

__all__ = [
    "MAX_AUDIENCES",
    "MAX_SVID_REQUESTS",
    "EntryService",
    "EntrySvidService",
    "InstanceService",
    "IssuedJwtSvid",
    "IssuedX509Svid",
    "NodeService",
    "NodeSvid",
    "X509SvidRequest",
]

MAX_SVID_REQUESTS = 500
MAX_AUDIENCES = 16
MAX_SEEN_IDS = 10_000
_Entries = list[Entry]


class EntryService:
    """Registration entries of one trust domain, validated against the authority's limits."""

    def __init__(self, store: EntryStore, trust_domain: TrustDomain, clock: Clock,
                 limits: EntryLimits | None = None) -> None:
        self._store = store
        self._td = trust_domain
        self._clock = clock
        self._limits = limits or EntryLimits()

    @property
    def limits(self) -> EntryLimits:
        return self._limits

    def create(self, spec: EntrySpec) -> Entry:
        valid = validate_spec(spec, self._td, self._limits)
        now = self._clock.now()
        return self._store.add(_entry(str(uuid.uuid4()), valid, now, now))

    def get(self, entry_id: str) -> Entry:
        entry = self._store.get(entry_id) if _is_uuid(entry_id) else None
        if entry is None:
            raise EntryNotFoundError(f"no entry with id {entry_id!r}")
        return entry

    def list(self, *, parent_id: str | None = None, spiffe_id: str | None = None) -> list[Entry]:
        parent = None
        if parent_id is not None:
            try:
                parent = SpiffeId.parse(parent_id)
            except SpiffeIdError as exc:
                raise InvalidEntryError(f"parent_id: {exc}") from None
        return self._store.list(parent_id=parent, spiffe_id=spiffe_id)

    def update(self, entry_id: str, patch: EntryPatch) -> Entry:
        current = self.get(entry_id)
        valid = validate_spec(patch.apply(current), self._td, self._limits)
        return self._store.update(_entry(current.id, valid, current.created_at,
                                         self._clock.now()))

    def delete(self, entry_id: str) -> Entry:
        entry = self._store.delete(entry_id) if _is_uuid(entry_id) else None
        if entry is None:
            raise EntryNotFoundError(f"no entry with id {entry_id!r}")
        return entry

    def for_node(self, node: NodePrincipal) -> tuple[int, _Entries]:
        """The node's revision and the entries it may serve (those it is the parent of)."""
        return self._store.for_parent(node.spiffe_id)


def _entry(entry_id: str, valid: ValidEntry, created_at: datetime, updated_at: datetime) -> Entry:
    return Entry(
        id=entry_id, spiffe_id=valid.spiffe_id, parent_id=valid.parent_id,
        selectors=valid.selectors, x509_svid_ttl=valid.x509_svid_ttl,
        jwt_svid_ttl=valid.jwt_svid_ttl, dns_names=valid.dns_names,
        federates_with=valid.federates_with, hint=valid.hint,
        created_at=created_at, updated_at=updated_at,
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


# --- nodes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSvid:
    """The answer to an attestation or renewal: the node, its new SVID and the bundle."""

    node: NodeRecord
    svid: MintedX509Svid
    bundle: Bundle


class NodeService:
    """Node attestation, renewal, authentication and banning."""

    def __init__(self, store: NodeStore, attestors: NodeAttestors, minter: SvidMinter,
                 clock: Clock, *, svid_ttl: timedelta = timedelta(hours=1)) -> None:
        if svid_ttl <= timedelta(0):
            raise Invalid("node_svid_ttl must be positive")
        self._store = store
        self._attestors = attestors
        self._minter = minter
        self._clock = clock
        self._svid_ttl = svid_ttl
        self._td = minter.trust_domain

    @property
    def attestors(self) -> NodeAttestors:
        return self._attestors

    def attest(self, attestor: str, payload: Mapping[str, Any],
               public_key: PublicKey) -> NodeSvid:
        """Verify the evidence with the named attestor, create (or, for attestors with an
        attestation key, find) the node, and mint its SVID for ``public_key``."""
        attested = self._attestors.attest(attestor, payload)
        selectors = parse_selectors(attested.selectors)
        now = self._clock.now()
        existing = (self._store.find_by_attestation_key(attested.attestor,
                                                        attested.attestation_key)
                    if attested.attestation_key is not None else None)
        if existing is not None:
            if existing.banned:
                raise NodeBannedError(f"node {existing.id} is banned")
            svid = self._mint(existing.spiffe_id, public_key)
            node = replace(existing, selectors=selectors, attested_at=now,
                           svid_expires_at=svid.expires_at)
            self._store.update(node)
        else:
            node_id = uuid.uuid4().hex
            spiffe_id = node_spiffe_id(self._td, node_id)
            svid = self._mint(spiffe_id, public_key)
            node = NodeRecord(id=node_id, spiffe_id=spiffe_id, attestor=attested.attestor,
                              selectors=selectors, attested_at=now,
                              svid_expires_at=svid.expires_at,
                              attestation_key=attested.attestation_key)
            self._store.add(node)
        return NodeSvid(node, svid, self._minter.bundle())

    def renew(self, principal: NodePrincipal, public_key: PublicKey) -> NodeSvid:
        node = self._known(principal.node_id)
        svid = self._mint(node.spiffe_id, public_key)
        node = replace(node, svid_expires_at=svid.expires_at)
        self._store.update(node)
        return NodeSvid(node, svid, self._minter.bundle())

    def authenticate(self, spiffe_id: SpiffeId) -> NodePrincipal:
        """The principal of a verified node SVID's ID: a known node that is not banned."""
        node_id = node_id_from_spiffe_id(spiffe_id, self._td)
        node = self._store.get(node_id) if node_id is not None else None
        if node is None or node.banned:
            raise NodeUnauthenticatedError("the client certificate is not the SVID of a known, "
                                           "active node")
        return NodePrincipal(node.id, node.spiffe_id)

    def get(self, node_id: str) -> NodeRecord:
        node = self._store.get(node_id)
        if node is None:
            raise NodeNotFoundError(f"no node with id {node_id!r}")
        return node

    def list(self) -> list[NodeRecord]:
        return self._store.list()

    def ban(self, node_id: str) -> NodeRecord:
        """Ban the node: its SVID stops working at once and it cannot renew."""
        node = self._store.ban(node_id, self._clock.now())
        if node is None:
            raise NodeNotFoundError(f"no node with id {node_id!r}")
        return node

    def _known(self, node_id: str) -> NodeRecord:
        node = self._store.get(node_id)
        if node is None or node.banned:
            raise NodeUnauthenticatedError("the node is unknown or banned")
        return node

    def _mint(self, spiffe_id: SpiffeId, public_key: PublicKey) -> MintedX509Svid:
        return self._minter.mint_x509_svid(spiffe_id, public_key=public_key,
                                           ttl=self._svid_ttl)


def _owned_entry(entries: EntryStore, node: NodePrincipal, entry_id: str) -> Entry:
    entry = entries.get(entry_id) if _is_uuid(entry_id) else None
    if entry is None or entry.parent_id != node.spiffe_id:
        raise NotYourEntryError(f"entry {entry_id!r} is not an entry of this node")
    return entry


def _use(node: NodePrincipal, entry: Entry, kind: str, spiffe_id: str) -> IdentityUse | None:
    agent = agent_of(entry.spiffe_id)
    if agent is None:
        return None
    return IdentityUse(agent=agent, kind=kind, node_id=node.node_id, entry_id=entry.id,
                       spiffe_id=spiffe_id)


def _refuse(agent: str, state: AgentState) -> None:
    if state.leaving:
        raise AgentRetiredError(f"agent {agent!r} is {state.value}: its identities are no "
                                "longer issued (the attempt is recorded)")
    raise AgentNotActiveError(f"agent {agent!r} is {state.value}: SVIDs are issued only "
                              "while its definition is active")


def _admit(gate: IdentityGate | None, use: IdentityUse | None) -> None:
    if gate is None or use is None:
        return
    refused = gate.refused([use])
    if use.agent in refused:
        _refuse(use.agent, refused[use.agent])


# --- instances -----------------------------------------------------------------------------


class InstanceService:
    """Agent instances: one ID per process of an instance-template entry."""

    def __init__(self, store: InstanceStore, entries: EntryStore, clock: Clock,
                 gate: IdentityGate | None = None) -> None:
        self._store = store
        self._entries = entries
        self._clock = clock
        self._gate = gate

    def register(self, node: NodePrincipal, report: InstanceReport) -> Registration:
        """The instance of the reported process: the same one for the same process, a new
        one otherwise. The entry must be the node's, a template, and the process must show
        all of the entry's selectors."""
        entry = _owned_entry(self._entries, node, report.entry_id)
        if not entry.is_template:
            raise NotATemplateError(f"entry {entry.id} has no {{instance}} in its SPIFFE ID")
        if not set(entry.selectors) <= set(report.selectors):
            raise SelectorMismatchError(
                f"the process does not show every selector of entry {entry.id}"
            )
        _admit(self._gate, _use(node, entry, "instance_registration", entry.spiffe_id.text))
        now = self._clock.now()
        instance_id = new_ulid(now)
        candidate = AgentInstance(
            id=instance_id, node_id=node.node_id, entry_id=entry.id,
            spiffe_id=entry.spiffe_id.resolve(instance_id), agent=entry.agent_name,
            pid=report.pid, start_time=report.start_time, uid=report.uid, gid=report.gid,
            exe_path=report.exe_path, exe_sha256=report.exe_sha256,
            selectors=report.selectors, parent_instance_id=report.parent_instance_id,
            first_seen_at=now, last_seen_at=now,
        )
        return self._store.register(candidate)

    def seen(self, node: NodePrincipal, instance_ids: Sequence[str]) -> int:
        if len(instance_ids) > MAX_SEEN_IDS:
            raise Invalid(f"at most {MAX_SEEN_IDS} instance ids per call")
        unique = list(dict.fromkeys(instance_ids))
        if not unique:
            return 0
        return self._store.touch(node.node_id, unique, self._clock.now())

    def get(self, instance_id: str) -> AgentInstance:
        instance = self._store.get(instance_id)
        if instance is None:
            raise InstanceNotFoundError(f"no instance with id {instance_id!r}")
        return instance

    def find(self, spiffe_id: SpiffeId | str) -> AgentInstance | None:
        """The instance holding ``spiffe_id`` (``None`` if no instance does); a string that is
        not a SPIFFE ID is refused (:class:`~tabard.spiffe.SpiffeIdError`)."""
        parsed = spiffe_id if isinstance(spiffe_id, SpiffeId) else SpiffeId.parse(spiffe_id)
        return self._store.get_by_spiffe_id(parsed)

    def list(self, query: InstanceQuery | None = None) -> list[AgentInstance]:
        return self._store.list(query or InstanceQuery())


# --- SVIDs of entries ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class X509SvidRequest:
    entry_id: str
    instance_id: str | None
    public_key: PublicKey


@dataclass(frozen=True, slots=True)
class IssuedX509Svid:
    entry_id: str
    instance_id: str | None
    svid: MintedX509Svid


@dataclass(frozen=True, slots=True)
class IssuedJwtSvid:
    spiffe_id: SpiffeId
    token: str
    expires_at: datetime


class EntrySvidService:
    """Mints SVIDs of a node's entries: plain entries as they are, templates only for an
    instance of that entry on that node. TTLs and DNS names come from the entry."""

    def __init__(self, entries: EntryStore, instances: InstanceStore, minter: SvidMinter,
                 clock: Clock, gate: IdentityGate | None = None) -> None:
        self._entries = entries
        self._instances = instances
        self._minter = minter
        self._clock = clock
        self._gate = gate

    def _resolve(self, node: NodePrincipal, entry: Entry, instance_id: str | None,
                 cache: dict[str, AgentInstance]) -> SpiffeId:
        if not entry.is_template:
            if instance_id is not None:
                raise NotATemplateError(f"entry {entry.id} is not an instance template; "
                                        "instance_id must be null")
            return entry.spiffe_id.spiffe_id()
        if instance_id is None:
            raise NotYourEntryError(f"entry {entry.id} is an instance template: an SVID needs "
                                    "an instance")
        instance = cache.get(instance_id) or self._instances.get(instance_id)
        if (instance is None or instance.node_id != node.node_id
                or instance.entry_id != entry.id or instance.retired_at is not None):
            raise NotYourEntryError(f"instance {instance_id!r} is not an instance of entry "
                                    f"{entry.id} on this node")
        cache[instance_id] = instance
        return entry.spiffe_id.resolve(instance.id)

    def x509(self, node: NodePrincipal,
             requests: Sequence[X509SvidRequest]) -> list[IssuedX509Svid]:
        """Mint every request, or none: a request that is not the node's refuses the batch.
        Requests for agents that may not get identities now are left out of the answer."""
        if len(requests) > MAX_SVID_REQUESTS:
            raise Invalid(f"at most {MAX_SVID_REQUESTS} SVID requests per call")
        entries = self._entries.get_many({r.entry_id for r in requests if _is_uuid(r.entry_id)})
        owned: list[tuple[X509SvidRequest, Entry]] = []
        for request in requests:
            entry = entries.get(request.entry_id)
            if entry is None or entry.parent_id != node.spiffe_id:
                raise NotYourEntryError(f"entry {request.entry_id!r} is not an entry of this "
                                        "node")
            owned.append((request, entry))
        if self._gate is not None:
            # before resolving: a retired agent's instances are retired too, and its attempts
            # must be recorded as residual use rather than refused as someone else's
            uses = [u for request, entry in owned if (u := _use(
                node, entry, "x509_svid", _requested_id(entry, request.instance_id))) is not None]
            refused = self._gate.refused(uses) if uses else {}
            if refused:
                owned = [(r, e) for r, e in owned if agent_of(e.spiffe_id) not in refused]
        instances: dict[str, AgentInstance] = {}
        planned = [(request, entry, self._resolve(node, entry, request.instance_id, instances))
                   for request, entry in owned]
        issued = [
            IssuedX509Svid(request.entry_id, request.instance_id, self._minter.mint_x509_svid(
                spiffe_id, public_key=request.public_key,
                ttl=timedelta(seconds=entry.x509_svid_ttl), dns_names=entry.dns_names))
            for request, entry, spiffe_id in planned
        ]
        if instances:
            self._instances.touch(node.node_id, list(instances), self._clock.now())
        return issued

    def jwt(self, node: NodePrincipal, entry_id: str, instance_id: str | None,
            audience: Sequence[str], ttl_seconds: int | None = None) -> IssuedJwtSvid:
        if isinstance(audience, str) or not 1 <= len(audience) <= MAX_AUDIENCES:
            raise Invalid(f"audience must be a list of 1 to {MAX_AUDIENCES} values")
        if any(not isinstance(a, str) or not a or len(a) > 2048 for a in audience):
            raise Invalid("audience: each value must be 1-2048 characters")
        if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or ttl_seconds <= 0):
            raise Invalid("ttl_seconds must be a positive number of seconds")
        entry = _owned_entry(self._entries, node, entry_id)
        _admit(self._gate, _use(node, entry, "jwt_svid", _requested_id(entry, instance_id)))
        instances: dict[str, AgentInstance] = {}
        spiffe_id = self._resolve(node, entry, instance_id, instances)
        seconds = entry.jwt_svid_ttl if ttl_seconds is None else min(ttl_seconds,
                                                                     entry.jwt_svid_ttl)
        token = self._minter.mint_jwt_svid(spiffe_id, list(audience),
                                           ttl=timedelta(seconds=seconds))
        if instances:
            self._instances.touch(node.node_id, list(instances), self._clock.now())
        return IssuedJwtSvid(spiffe_id, token, _expiry(token))


def _requested_id(entry: Entry, instance_id: str | None) -> str:
    """The SPIFFE ID a request asks for, as text, for the residual-use record (an instance
    id that is not one path segment is recorded as the template)."""
    text = entry.spiffe_id.text
    if entry.is_template and instance_id and "/" not in instance_id and len(instance_id) <= 64:
        return text.replace(INSTANCE_PLACEHOLDER, instance_id)
    return text


def _expiry(token: str) -> datetime:
    """``exp`` of a token this process just signed (so it is well-formed)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise RuntimeError("minted JWT-SVID has no readable exp claim") from exc
