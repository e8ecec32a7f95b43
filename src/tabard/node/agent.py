"""The node agent: node identity, entry sync, and the SVID caches behind the Workload API.

Everything runs on one asyncio loop. The agent

* holds the node SVID (attested with a join token once, then restored from the data dir) and
  renews it at half-life (``/node/v1/renew``, with a fresh key each time);
* polls ``/node/v1/sync`` every few seconds; a new revision, bundle or federated bundle wakes
  every Workload API stream (:class:`Changes`);
* caches workload X509-SVIDs per ``(entry, instance)``: the key is generated here and only a
  CSR goes to the server; non-template entries are minted as soon as they are synced (so a
  workload that first asks during a server outage is still served), per-instance ones on
  first request; all are re-minted at half-life, in batches, for as long as the entry exists
  and (for instances) the process lives;
* caches JWT-SVIDs per ``(entry, instance, audience)`` until half-life;
* registers per-instance identities (``/node/v1/instances``) with the parent instance found
  by walking the caller's process tree, and reports last-seen times in batches.

While the server is unreachable, cached SVIDs are served until they expire, and every loop
retries with exponential backoff with full jitter; the first successful sync resets it.
Times come from the injected :class:`Clock`; only sleeping uses the event loop's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.attestation.unix import ProcessEvidence, process_ancestry, process_start_ticks
from tabard.authority.keymanager.base import PrivateKey
from tabard.clock import Clock
from tabard.errors import Unavailable
from tabard.node.errors import (
    JoinTokenRequiredError,
    NoIdentityError,
    ServerResponseError,
    SuspendedError,
)
from tabard.node.ports import (
    INSTANCE_PLACEHOLDER,
    Entry,
    InstanceRequest,
    JwtSvidRequest,
    NodeCredentials,
    NodeServerClient,
    SyncSnapshot,
    X509SvidRequest,
)
from tabard.node.serverclient import MAX_X509_BATCH
from tabard.node.state import NodeStateStore
from tabard.signals import KillList
from tabard.spiffe import Bundle, BundleSet, SpiffeId, SpiffeIdError, TrustDomain
from tabard.spiffe.jwtsvid import JwtSvid, verify_jwt_svid

__all__ = [
    "AgentTimings",
    "Backoff",
    "Changes",
    "Instance",
    "NodeAgent",
    "X509Credential",
    "X509View",
    "csr_pem",
    "new_key",
]

log = logging.getLogger("tabard.node")
_T = TypeVar("_T")
_SEEN_BATCH = 1000


@dataclass(frozen=True)
class AgentTimings:
    """Intervals in seconds; tests shrink them."""

    sync_interval: float = 5.0
    tick: float = 1.0
    seen_interval: float = 5.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    push_jitter: float = 0.1
    jwt_cache_size: int = 10_000
    signal_heartbeat_timeout: float = 45.0
    signal_resync_interval: float = 300.0


class Backoff:
    """Exponential backoff with full jitter: a uniform delay in ``[0, min(cap, base·2ⁿ)]``."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng or random.SystemRandom()
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self._cap, self._base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Changes:
    """A version counter that streams wait on; :meth:`bump` wakes all of them."""

    def __init__(self) -> None:
        self.version = 0
        self.urgent_version = -1
        self._event = asyncio.Event()

    def bump(self, *, urgent: bool = False) -> None:
        """Wake every waiter; ``urgent`` changes (the kill switch) skip the push jitter."""
        self.version += 1
        if urgent:
            self.urgent_version = self.version
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, since: int) -> int:
        """Return once the version differs from ``since``; returns the new version."""
        while self.version == since:
            await self._event.wait()
        return self.version


def new_key() -> PrivateKey:
    """ECDSA P-256, the issuance profile's key (STANDARDS.md §2.7)."""
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: PrivateKey) -> str:
    """A CSR proving possession of ``key``; the server decides every name in the SVID."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256()
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _uri_san(cert: x509.Certificate) -> str | None:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = sans.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if len(uris) == 1 else None


def _check_issued(
    chain: Sequence[x509.Certificate], key: PrivateKey, spiffe_id: SpiffeId
) -> None:
    if not chain:
        raise ServerResponseError("the server returned an empty certificate chain")
    if chain[0].public_key() != key.public_key():
        raise ServerResponseError("the server certified a key the node did not send")
    if _uri_san(chain[0]) != str(spiffe_id):
        raise ServerResponseError("the certificate does not carry the SPIFFE ID announced")


def _half_life(issued_at: datetime, expires_at: datetime) -> datetime:
    return issued_at + (expires_at - issued_at) / 2


@dataclass(frozen=True)
class Instance:
    """One process's identity under one template entry."""

    instance_id: str
    spiffe_id: SpiffeId
    entry_id: str
    process_key: tuple[int, int]
    parent_instance_id: str | None


@dataclass(frozen=True)
class X509Credential:
    """A workload X509-SVID with its key, as the Workload API hands it out."""

    entry_id: str
    instance_id: str | None
    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    key: PrivateKey = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    shape: tuple[str, tuple[str, ...], int]
    chain_der: bytes = field(repr=False, default=b"")
    key_der: bytes = field(repr=False, default=b"")

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "chain_der",
            b"".join(c.public_bytes(serialization.Encoding.DER) for c in self.chain),
        )
        object.__setattr__(
            self,
            "key_der",
            self.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    @property
    def rotate_at(self) -> datetime:
        return _half_life(self.issued_at, self.expires_at)


@dataclass(frozen=True)
class _JwtToken:
    token: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    spiffe_id: str


@dataclass(frozen=True)
class X509View:
    """What one caller gets from FetchX509SVID: its SVIDs (default first) and bundles."""

    svids: tuple[tuple[Entry, X509Credential], ...]
    bundle: Bundle
    federated: tuple[Bundle, ...]


_XKey = tuple[str, str | None]


class NodeAgent:
    """The node's state and background loops; the Workload API servicer calls into it."""

    def __init__(
        self,
        client: NodeServerClient,
        *,
        clock: Clock,
        state: NodeStateStore | None = None,
        join_token: str | None = None,
        timings: AgentTimings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._state = state
        self._join_token = join_token
        self.timings = timings or AgentTimings()
        self._rng = rng or random.SystemRandom()
        self.changes = Changes()

        self._credentials: NodeCredentials | None = None
        self._node_key: PrivateKey | None = None
        self._node_issued_at: datetime | None = None
        self.revision: int | None = None
        self._entries: tuple[Entry, ...] = ()
        self._entries_by_id: dict[str, Entry] = {}
        self._bundle: Bundle | None = None
        self._federated: dict[TrustDomain, Bundle] = {}

        self._x509: dict[_XKey, X509Credential] = {}
        self._x509_inflight: dict[_XKey, asyncio.Future[None]] = {}
        self._instances: dict[tuple[str, int, int], Instance] = {}
        self._by_process: dict[tuple[int, int], list[Instance]] = {}
        self._instance_inflight: dict[tuple[str, int, int], asyncio.Future[Instance]] = {}
        self._jwt: OrderedDict[tuple[str, str | None, tuple[str, ...]], _JwtToken] = OrderedDict()
        self._seen: set[str] = set()

        self._backoff = Backoff(self.timings.backoff_base, self.timings.backoff_cap, self._rng)
        self._server_down = False
        self._retry_at = 0.0
        self._wake_sync = asyncio.Event()
        self._wake_tick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_demand_sync = float("-inf")
        self._sync_lock = asyncio.Lock()
        self.kill_list: KillList | None = None

    # --- identity --------------------------------------------------------------------------

    @property
    def node_spiffe_id(self) -> SpiffeId:
        if self._credentials is None:
            raise RuntimeError("the node agent has not started")
        return self._credentials.spiffe_id

    @property
    def trust_domain(self) -> TrustDomain:
        return self.node_spiffe_id.trust_domain

    @property
    def bundle(self) -> Bundle:
        if self._bundle is None:
            raise RuntimeError("the node agent has not started")
        return self._bundle

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._entries

    @property
    def server_reachable(self) -> bool:
        return not self._server_down

    async def start(self) -> None:
        """Establish the node identity, sync once (if the server answers) and start the loops."""
        stored = self._state.load() if self._state is not None else None
        now = self._clock.now()
        if stored is not None and stored.credentials.expires_at > now:
            self._adopt(stored.credentials, stored.key, stored.issued_at)
            log.info("node identity restored: %s", stored.credentials.spiffe_id)
        else:
            if not self._join_token:
                raise JoinTokenRequiredError(
                    "this node has no valid node SVID in its data dir; start it with "
                    "--join-token (tabard token generate)"
                )
            key = new_key()
            request = csr_pem(key)
            token = self._join_token
            credentials = await self._retry_unavailable(
                lambda: self._client.attest(token, request)
            )
            self._accept_node_svid(credentials, key)
            log.info("node attested: %s", credentials.spiffe_id)
        with contextlib.suppress(Unavailable):
            await self.sync_once()
        loop = asyncio.get_running_loop()
        for body in (self._sync_loop, self._tick_loop, self._renew_loop, self._seen_loop):
            self._tasks.append(loop.create_task(body()))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self._flush_seen()

    def _adopt(self, credentials: NodeCredentials, key: PrivateKey, issued_at: datetime) -> None:
        self._credentials = credentials
        self._node_key = key
        self._node_issued_at = issued_at
        if self._bundle is None:
            self._bundle = credentials.bundle
        self._client.use_credentials(credentials.chain, key, self._bundle)

    def _accept_node_svid(self, credentials: NodeCredentials, key: PrivateKey) -> None:
        _check_issued(credentials.chain, key, credentials.spiffe_id)
        if credentials.spiffe_id.segments[:1] != ("node",):
            raise ServerResponseError(f"{credentials.spiffe_id} is not a node SPIFFE ID")
        if self._credentials is not None and credentials.spiffe_id != self.node_spiffe_id:
            raise ServerResponseError("renewal changed the node's SPIFFE ID")
        issued_at = self._clock.now()
        self._bundle = credentials.bundle
        if self._state is not None:
            self._state.save(credentials, key, issued_at)
        self._adopt(credentials, key, issued_at)

    async def _retry_unavailable(self, call: Callable[[], Awaitable[_T]]) -> _T:
        backoff = Backoff(self.timings.backoff_base, self.timings.backoff_cap, self._rng)
        while True:
            try:
                return await call()
            except Unavailable as exc:
                delay = backoff.next()
                log.warning("server unavailable (%s); retrying in %.1fs", exc.code, delay)
                await asyncio.sleep(delay)

    async def renew_node_svid(self) -> None:
        key = new_key()
        credentials = await self._client.renew(csr_pem(key))
        self._accept_node_svid(credentials, key)
        log.info("node SVID renewed, expires %s", credentials.expires_at.isoformat())

    # --- sync ------------------------------------------------------------------------------

    async def sync_once(self) -> None:
        """One ``sync`` round trip; raises Unavailable (and records it) when it fails."""
        try:
            snapshot = await self._client.sync()
        except Unavailable:
            self._note_failure()
            raise
        recovered = self._server_down
        self._note_success()
        self.apply_snapshot(snapshot)
        if recovered:
            log.info("server reachable again; resynced at revision %s", snapshot.revision)
            self._wake_tick.set()

    def _note_failure(self) -> None:
        loop = asyncio.get_running_loop()
        self._server_down = True
        self._retry_at = loop.time() + self._backoff.next()

    def _note_success(self) -> None:
        self._server_down = False
        self._retry_at = 0.0
        self._backoff.reset()

    def apply_snapshot(self, snapshot: SyncSnapshot) -> None:
        changed = False
        if snapshot.revision != self.revision:
            self.revision = snapshot.revision
            old = self._entries_by_id
            self._entries = tuple(sorted(snapshot.entries, key=lambda e: (e.created_at, e.id)))
            self._entries_by_id = {e.id: e for e in self._entries}
            for entry_id, entry in old.items():
                new = self._entries_by_id.get(entry_id)
                if new is None or new.spiffe_id != entry.spiffe_id:
                    self._forget_entry(entry_id)
                elif new.jwt_svid_ttl != entry.jwt_svid_ttl:
                    self._forget_jwts(entry_id)
            changed = True
        if self._bundle is None or snapshot.bundle.to_jwks() != self._bundle.to_jwks():
            self._bundle = snapshot.bundle
            if self._state is not None:
                self._state.save_bundle(snapshot.bundle)
            if self._credentials is not None and self._node_key is not None:
                self._client.use_credentials(
                    self._credentials.chain, self._node_key, snapshot.bundle
                )
            changed = True
        federated = dict(snapshot.federated_bundles)
        if {k: v.to_jwks() for k, v in federated.items()} != {
            k: v.to_jwks() for k, v in self._federated.items()
        }:
            self._federated = federated
            changed = True
        if changed:
            self.changes.bump()
            self._wake_tick.set()

    def _forget_entry(self, entry_id: str) -> None:
        for key in [k for k in self._x509 if k[0] == entry_id]:
            del self._x509[key]
        for ikey in [k for k in self._instances if k[0] == entry_id]:
            self._drop_instance(self._instances[ikey])
        self._forget_jwts(entry_id)

    def _forget_jwts(self, entry_id: str) -> None:
        for jkey in [k for k in self._jwt if k[0] == entry_id]:
            del self._jwt[jkey]

    def _drop_instance(self, instance: Instance) -> None:
        self._instances.pop((instance.entry_id, *instance.process_key), None)
        held = self._by_process.get(instance.process_key, [])
        if instance in held:
            held.remove(instance)
        if not held:
            self._by_process.pop(instance.process_key, None)
        self._x509.pop((instance.entry_id, instance.instance_id), None)
        for jkey in [k for k in self._jwt if k[1] == instance.instance_id]:
            del self._jwt[jkey]

    # --- loops -----------------------------------------------------------------------------

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep ``seconds`` or until ``wake`` is set (``asyncio.wait`` never eats a cancel)."""
        if wake is None:
            await asyncio.sleep(seconds)
            return
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=max(0.0, seconds))
        finally:
            waiter.cancel()
        wake.clear()

    def _delay_until_retry(self) -> float:
        return max(0.0, self._retry_at - asyncio.get_running_loop().time())

    async def _sync_loop(self) -> None:
        while True:
            delay = self._delay_until_retry() if self._server_down else self.timings.sync_interval
            await self._sleep(delay, self._wake_sync)
            try:
                await self.sync_once()
            except Unavailable as exc:
                log.warning("sync failed (%s); serving cached SVIDs", exc.code)
            except Exception:
                log.exception("sync failed")
                self._note_failure()

    async def _tick_loop(self) -> None:
        while True:
            await self._sleep(self.timings.tick, self._wake_tick)
            try:
                self.collect_garbage()
                if not self._server_down or self._delay_until_retry() == 0:
                    await self.rotate_due()
            except Unavailable as exc:
                log.warning("SVID rotation deferred (%s)", exc.code)
            except Exception:
                log.exception("SVID rotation failed")

    async def _renew_loop(self) -> None:
        while True:
            assert self._credentials is not None and self._node_issued_at is not None
            due = _half_life(self._node_issued_at, self._credentials.expires_at)
            wait = (due - self._clock.now()).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, self.timings.tick * 10))
                continue
            if self._credentials.expires_at <= self._clock.now():
                log.error(
                    "the node SVID has expired; restart the node with a new --join-token"
                )
                await asyncio.sleep(self.timings.backoff_cap)
                continue
            try:
                await self.renew_node_svid()
                self._note_success()
            except Unavailable as exc:
                self._note_failure()
                log.warning("node SVID renewal failed (%s)", exc.code)
                await asyncio.sleep(max(self._delay_until_retry(), self.timings.tick))
            except Exception:
                log.exception("node SVID renewal failed")
                await asyncio.sleep(self.timings.backoff_cap)

    async def _seen_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timings.seen_interval)
            with contextlib.suppress(Unavailable):
                await self._flush_seen()

    async def _flush_seen(self) -> None:
        if not self._seen:
            return
        ids = sorted(self._seen)
        self._seen.clear()
        try:
            for start in range(0, len(ids), _SEEN_BATCH):
                await self._client.report_seen(ids[start : start + _SEEN_BATCH])
        except Unavailable:
            self._seen.update(ids)
            raise

    # --- caches ----------------------------------------------------------------------------

    def collect_garbage(self) -> None:
        """Drop instances whose process is gone and SVIDs that expired or lost their entry."""
        now = self._clock.now()
        for process_key in list(self._by_process):
            if process_start_ticks(process_key[0]) != process_key[1]:
                for instance in list(self._by_process.get(process_key, ())):
                    self._drop_instance(instance)
        for key, cred in list(self._x509.items()):
            if cred.expires_at <= now or key[0] not in self._entries_by_id:
                del self._x509[key]
        for jkey, tok in list(self._jwt.items()):
            if tok.expires_at <= now:
                del self._jwt[jkey]

    def _due(self, now: datetime) -> list[tuple[Entry, Instance | None]]:
        due: list[tuple[Entry, Instance | None]] = []
        for entry in self._entries:
            if not entry.is_template and self._needs_mint(entry, None, now):
                due.append((entry, None))
        for instance in list(self._instances.values()):
            owner = self._entries_by_id.get(instance.entry_id)
            if owner is not None and self._needs_mint(owner, instance, now):
                due.append((owner, instance))
        if self.kill_list is not None and len(self.kill_list):  # no SVIDs for the suspended
            due = [(e, i) for e, i in due
                   if self._suspension(i.spiffe_id if i else e.spiffe_id) is None]
        return due

    def _needs_mint(self, entry: Entry, instance: Instance | None, now: datetime) -> bool:
        key = (entry.id, instance.instance_id if instance else None)
        if key in self._x509_inflight:
            return False
        cred = self._x509.get(key)
        return cred is None or cred.shape != entry.svid_shape or now >= cred.rotate_at

    async def rotate_due(self) -> int:
        """Mint every SVID that is missing, stale or past half-life; returns how many."""
        due = self._due(self._clock.now())
        minted = 0
        for start in range(0, len(due), MAX_X509_BATCH):
            minted += await self._mint_batch(due[start : start + MAX_X509_BATCH])
        return minted

    async def _mint_batch(self, items: Sequence[tuple[Entry, Instance | None]]) -> int:
        loop = asyncio.get_running_loop()
        work: list[tuple[Entry, Instance | None, PrivateKey, _XKey]] = []
        for entry, instance in items:
            key = (entry.id, instance.instance_id if instance else None)
            if key in self._x509_inflight:
                continue
            self._x509_inflight[key] = loop.create_future()
            work.append((entry, instance, new_key(), key))
        if not work:
            return 0
        error: BaseException | None = None
        stored = 0
        try:
            requests = [
                X509SvidRequest(entry.id, instance.instance_id if instance else None, csr_pem(k))
                for entry, instance, k, _ in work
            ]
            issued = await self._client.mint_x509_svids(requests)
            by_key = {(i.entry_id, i.instance_id): i for i in issued}
            now = self._clock.now()
            for entry, instance, private_key, key in work:
                svid = by_key.get(key)
                if svid is None:
                    continue
                expected = instance.spiffe_id if instance else _plain_id(entry)
                if svid.spiffe_id != expected:
                    raise ServerResponseError(
                        f"asked an SVID for {expected}, the server issued {svid.spiffe_id}"
                    )
                _check_issued(svid.chain, private_key, svid.spiffe_id)
                if self._entries_by_id.get(entry.id) is not entry:
                    continue  # the entry changed while the request was in flight
                self._x509[key] = X509Credential(
                    entry_id=entry.id,
                    instance_id=key[1],
                    spiffe_id=svid.spiffe_id,
                    chain=svid.chain,
                    key=private_key,
                    issued_at=now,
                    expires_at=svid.expires_at,
                    shape=entry.svid_shape,
                )
                stored += 1
            if self._server_down:
                self._note_success()
        except Unavailable as exc:
            self._note_failure()
            error = exc
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            for _, _, _, key in work:
                future = self._x509_inflight.pop(key)
                if error is not None:
                    future.set_exception(error)
                    future.exception()  # retrieved: nobody may be waiting
                else:
                    future.set_result(None)
            if stored:
                self.changes.bump()
        return stored

    async def _x509_for(self, entry: Entry, instance: Instance | None) -> X509Credential:
        key = (entry.id, instance.instance_id if instance else None)
        cred = self._x509.get(key)
        now = self._clock.now()
        if cred is not None and cred.shape == entry.svid_shape and now < cred.expires_at:
            return cred
        try:
            inflight = self._x509_inflight.get(key)
            if inflight is not None:
                await asyncio.shield(inflight)
            else:
                await self._mint_batch([(entry, instance)])
        except Unavailable:
            if cred is not None and now < cred.expires_at:
                return cred
            raise
        fresh = self._x509.get(key)
        if fresh is None:
            raise ServerResponseError(f"the server issued no SVID for entry {entry.id}")
        return fresh

    def matching_entries(self, evidence: ProcessEvidence) -> list[Entry]:
        selectors = frozenset(evidence.selectors())
        return [e for e in self._entries if e.matches(selectors)]

    def _parent_instance(self, evidence: ProcessEvidence, entry: Entry) -> str | None:
        for process_key in process_ancestry(evidence.pid):
            held = self._by_process.get(process_key)
            if held:
                same = [i for i in held if i.entry_id == entry.id]
                return (same or held)[0].instance_id
        return None

    async def _instance_for(self, entry: Entry, evidence: ProcessEvidence) -> Instance:
        key = (entry.id, *evidence.process_key)
        instance = self._instances.get(key)
        if instance is not None:
            return instance
        inflight = self._instance_inflight.get(key)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        self._instance_inflight[key] = future
        try:
            parent = self._parent_instance(evidence, entry)
            request = InstanceRequest(entry.id, evidence, parent)
            grant = await self._client.register_instance(request)
            expected = entry.spiffe_id.replace(INSTANCE_PLACEHOLDER, grant.instance_id)
            if str(grant.spiffe_id) != expected:
                raise ServerResponseError(
                    f"instance {grant.instance_id} resolved to {grant.spiffe_id}, not {expected}"
                )
            instance = Instance(
                grant.instance_id, grant.spiffe_id, entry.id, evidence.process_key, parent
            )
            if self._entries_by_id.get(entry.id) is entry:
                self._instances[key] = instance
                self._by_process.setdefault(evidence.process_key, []).append(instance)
            future.set_result(instance)
            return instance
        except BaseException as exc:
            if isinstance(exc, Unavailable):
                self._note_failure()
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._instance_inflight[key]

    async def _sync_before_denying(self) -> bool:
        """Sync now when a caller matches nothing, at most once a second.

        An entry created a moment ago then works at once instead of after the next poll;
        callers that match nothing can cause at most one such sync a second between them.
        """
        if self._server_down:
            return False
        async with self._sync_lock:
            now = asyncio.get_running_loop().time()
            if now - self._last_demand_sync < 1.0:
                return True
            self._last_demand_sync = now
            try:
                await self.sync_once()
            except Unavailable:
                return False
        return True

    # --- kill switch ---------------------------------------------------------------------

    def use_kill_list(self, kill_list: KillList) -> None:
        """Enforce the kill switch from ``kill_list`` (kept current by a signal follower,
        which calls :meth:`kill_list_changed` after every change)."""
        self.kill_list = kill_list

    def kill_list_changed(self, *_: object) -> None:
        """Every Workload API stream re-evaluates its caller now: a suspended one ends with
        PermissionDenied, a resumed one is served again."""
        self.changes.bump(urgent=True)

    def _suspension(self, spiffe_id: SpiffeId | str) -> str | None:
        kill = self.kill_list
        if kill is None or not len(kill):
            return None
        node = str(self._credentials.spiffe_id) if self._credentials is not None else None
        found = kill.for_workload(str(spiffe_id), node)
        if found is None or found.suspension is None:
            return None
        s = found.suspension
        return f"{s.target} is suspended by the kill switch" + (
            f" ({s.reason})" if s.reason else "")

    def _enforce(
        self, identities: list[tuple[Entry, Instance | None]]
    ) -> list[tuple[Entry, Instance | None]]:
        """Drop the identities the kill switch suspends; refuse when none is left."""
        if self.kill_list is None or not identities:
            return identities
        kept: list[tuple[Entry, Instance | None]] = []
        reason = ""
        for entry, instance in identities:
            why = self._suspension(instance.spiffe_id if instance else entry.spiffe_id)
            if why is None:
                kept.append((entry, instance))
            else:
                reason = why
        if not kept:
            raise SuspendedError(reason)
        return kept

    def instances_of(self, process_key: tuple[int, int]) -> list[Instance]:
        return list(self._by_process.get(process_key, ()))

    async def _identities(
        self, evidence: ProcessEvidence
    ) -> list[tuple[Entry, Instance | None]]:
        entries = self.matching_entries(evidence)
        if not entries and await self._sync_before_denying():
            entries = self.matching_entries(evidence)
        if not entries:
            raise NoIdentityError("no registration entry matches the caller")
        out: list[tuple[Entry, Instance | None]] = []
        failure: Unavailable | None = None
        for entry in entries:
            if not entry.is_template:
                out.append((entry, None))
                continue
            try:
                instance = await self._instance_for(entry, evidence)
            except Unavailable as exc:
                failure = exc
                continue
            self._seen.add(instance.instance_id)
            out.append((entry, instance))
        if not out and failure is not None:
            raise failure
        return self._enforce(out)

    async def x509_view(self, evidence: ProcessEvidence) -> X509View:
        """The caller's X509-SVIDs (minting what is missing) and the bundles to send."""
        identities = await self._identities(evidence)
        results = await asyncio.gather(
            *(self._x509_for(entry, instance) for entry, instance in identities),
            return_exceptions=True,
        )
        svids: list[tuple[Entry, X509Credential]] = []
        hints: set[str] = set()
        failure: BaseException | None = None
        for (entry, _), result in zip(identities, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Unavailable | ServerResponseError):
                    raise result
                failure = result
                continue
            if entry.hint:
                if entry.hint in hints:
                    continue  # hints must be unique within a response; the first one wins
                hints.add(entry.hint)
            svids.append((entry, result))
        if not svids:
            if failure is not None:
                raise failure
            raise NoIdentityError("no SVID can be issued to the caller")
        return X509View(tuple(svids), self.bundle, self._federated_for(e for e, _ in svids))

    def _federated_for(self, entries: Iterable[Entry]) -> tuple[Bundle, ...]:
        wanted: dict[TrustDomain, None] = {}
        for entry in entries:
            for td in entry.federates_with:
                wanted[td] = None
        return tuple(self._federated[td] for td in wanted if td in self._federated)

    def bundles_for(self, evidence: ProcessEvidence) -> tuple[Bundle, tuple[Bundle, ...]]:
        """The caller's own trust domain bundle and the federated ones its entries name."""
        entries = self.matching_entries(evidence)
        if not entries:
            raise NoIdentityError("no registration entry matches the caller")
        return self.bundle, self._federated_for(entries)

    async def jwt_svids(
        self, evidence: ProcessEvidence, audience: Sequence[str], spiffe_id: str = ""
    ) -> list[tuple[SpiffeId, str, str]]:
        """``(spiffe_id, token, hint)`` per identity of the caller (or only ``spiffe_id``)."""
        wanted: SpiffeId | None = None
        if spiffe_id:
            try:
                wanted = SpiffeId.parse(spiffe_id)
            except SpiffeIdError as exc:
                raise NoIdentityError(f"not entitled to {spiffe_id[:200]!r}") from exc
        aud = tuple(dict.fromkeys(audience))
        out: list[tuple[SpiffeId, str, str]] = []
        failure: Unavailable | None = None
        for entry, instance in await self._identities(evidence):
            resolved = instance.spiffe_id if instance else _plain_id(entry)
            if wanted is not None and resolved != wanted:
                continue
            try:
                token = await self._jwt_for(entry, instance, aud, resolved)
            except Unavailable as exc:
                failure = exc
                continue
            out.append((resolved, token, entry.hint))
        if not out:
            if failure is not None:
                raise failure
            raise NoIdentityError(f"the caller is not entitled to {spiffe_id[:200]!r}")
        return out

    async def _jwt_for(
        self, entry: Entry, instance: Instance | None, audience: tuple[str, ...], sid: SpiffeId
    ) -> str:
        key = (entry.id, instance.instance_id if instance else None, audience)
        now = self._clock.now()
        cached = self._jwt.get(key)
        fresh = cached is not None and cached.spiffe_id == str(sid)
        if fresh and cached is not None and now < _half_life(cached.issued_at, cached.expires_at):
            self._jwt.move_to_end(key)
            return cached.token
        try:
            issued = await self._client.mint_jwt_svid(
                JwtSvidRequest(entry.id, key[1], audience, None)
            )
        except Unavailable:
            self._note_failure()
            if cached is not None and now < cached.expires_at:
                return cached.token
            raise
        if issued.spiffe_id != sid:
            raise ServerResponseError(f"asked a JWT-SVID for {sid}, got {issued.spiffe_id}")
        self._jwt[key] = _JwtToken(issued.token, now, issued.expires_at, str(sid))
        self._jwt.move_to_end(key)
        while len(self._jwt) > self.timings.jwt_cache_size:
            self._jwt.popitem(last=False)
        return issued.token

    def validate_jwt(self, evidence: ProcessEvidence, token: str, audience: str) -> JwtSvid:
        """Validate with the bundles the caller may use (STANDARDS.md §5.5 ValidateJWTSVID)."""
        own, federated = self.bundles_for(evidence)
        return verify_jwt_svid(
            token, BundleSet((own, *federated)), audience, now=self._clock.timestamp()
        )

    # --- introspection for tests and the CLI -----------------------------------------------

    def cached_x509(self) -> dict[_XKey, X509Credential]:
        return dict(self._x509)


def _plain_id(entry: Entry) -> SpiffeId:
    return SpiffeId.parse(entry.spiffe_id)
