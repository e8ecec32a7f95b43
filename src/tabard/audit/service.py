"""The audit log service: durable appends with group commit, checkpoints, verification,
export, trace and proofs.

Appending
    :meth:`AuditLog.append` (and :meth:`~AuditLog.append_many`, :meth:`~AuditLog.append_async`)
    returns only once the record is committed: callers that must not act without a record
    (fail closed) call it *before* acting and let :class:`~tabard.audit.errors.
    AuditUnavailableError` refuse the operation. Events are encoded in the caller's thread;
    one writer thread takes everything queued, numbers and chains it and stores it in one
    transaction (group commit), so concurrent callers share a commit and its fsync. When
    appends are under way that are not queued yet (callers still encoding, or just woken by
    the previous commit and coming back), the writer waits for them up to :data:`LINGER`
    (1 ms, less than a commit costs) before committing. A failed transaction fails every
    caller in it and leaves nothing behind; the next batch tries again, so the log serves
    again as soon as the store does.

Checkpoints
    :meth:`AuditLog.checkpoint` re-checks the records appended since the previous checkpoint
    (numbers, hashes, chain) and only then signs the new tree head: a checkpoint never vouches
    for a broken log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime

from tabard.audit.checkpoint import AuditSigner, Checkpoint, verify_checkpoint
from tabard.audit.errors import (
    AuditUnavailableError,
    CheckpointError,
    CheckpointNotFoundError,
    InvalidProofRequestError,
)
from tabard.audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
)
from tabard.audit.ports import AuditStore, ChainHead, NewRecord, StoredCheckpoint
from tabard.audit.record import (
    GENESIS,
    AuditEvent,
    AuditRecord,
    PreparedEvent,
    prepare,
)
from tabard.audit.verify import Problem, VerifyReport, verify_pages
from tabard.clock import Clock
from tabard.errors import TabardError
from tabard.spiffe import BundleSource

__all__ = ["AuditLog", "ConsistencyProof", "InclusionProof"]

log = logging.getLogger("tabard.audit")

_LEAF = hashlib.sha256(b"\x00")

MAX_BATCH = 4096
"""Most records one transaction takes."""

LINGER = 0.001
"""Longest the writer waits (seconds, per batch) for appends under way to be queued before
it commits without them (group commit)."""

DEFER = 0.05
"""Longest a deferred append (:meth:`AuditLog.append_deferred`) waits (seconds) for another
append to share its commit with."""


class _Deferred(Future["list[AuditRecord]"]):
    """The future of a deferred append: nobody waits on it before the next commit."""


@dataclass(frozen=True, slots=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root_hash: bytes


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: tuple[bytes, ...]


class _Waiter:
    """What a blocking :meth:`AuditLog.append` waits on: the part of a
    :class:`~concurrent.futures.Future` the writer uses, on one bare lock (a ``Future`` wakes
    its caller through a ``Condition``, several times the work on both sides; with many
    concurrent appenders that work competes with the writer for the interpreter lock)."""

    __slots__ = ("_done", "_error", "_result")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self._result: list[AuditRecord] = []
        self._error: BaseException | None = None

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, result: list[AuditRecord]) -> None:
        self._result = result
        self._done.release()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._done.release()

    def result(self, timeout: float) -> list[AuditRecord]:
        if not self._done.acquire(timeout=timeout):
            raise FutureTimeout
        if self._error is not None:
            raise self._error
        return self._result


class _AsyncWaiter:
    """What :meth:`AuditLog.append_async` waits on: an asyncio future of the caller's loop.
    The writer hands a whole batch's results to each loop in one ``call_soon_threadsafe``
    (:func:`_deliver`) rather than waking the loop once per record."""

    __slots__ = ("deadline", "future", "loop", "outcome")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self.loop = loop
        self.deadline = deadline
        self.future: asyncio.Future[list[AuditRecord]] = loop.create_future()
        self.outcome: list[AuditRecord] | BaseException = []

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, result: list[AuditRecord]) -> None:
        self.outcome = result

    def set_exception(self, error: BaseException) -> None:
        self.outcome = error


class _Watch:
    """The appends one event loop awaits and the one timer that fails those past their
    deadline (a timer per append, as ``asyncio.timeout`` makes, costs the loop more than the
    rest of the append's own work)."""

    __slots__ = ("handle", "waiters")

    def __init__(self) -> None:
        self.waiters: set[_AsyncWaiter] = set()
        self.handle: asyncio.TimerHandle | None = None


def _deliver(waiters: list[_AsyncWaiter]) -> None:
    """In the event loop: resolve the futures of one batch."""
    for w in waiters:
        if w.future.done():  # the caller gave up (timeout, cancelled)
            continue
        if isinstance(w.outcome, BaseException):
            w.future.set_exception(w.outcome)
        else:
            w.future.set_result(w.outcome)


_Job = tuple[list[PreparedEvent], "Future[list[AuditRecord]] | _Waiter | _AsyncWaiter"]

_IDLE, _LINGER, _BUSY = "idle", "linger", "busy"
"""What the writer is doing: waiting for appends, waiting for more before it commits, or
committing (callers wake it only when that changes something)."""


class AuditLog:
    """One append-only, hash-chained, checkpointed log (module docstring).

    ``signer`` signs checkpoints (none: checkpoints cannot be made here); ``bundles`` gives
    the trust bundle checkpoints are verified with.
    """

    def __init__(self, store: AuditStore, clock: Clock, *, trust_domain: str,
                 signer: AuditSigner | None = None,
                 bundles: Callable[[], BundleSource] | None = None,
                 timeout: float = 10.0, max_batch: int = MAX_BATCH,
                 defer: float = DEFER) -> None:
        self._store = store
        self._clock = clock
        self._td = trust_domain
        self._signer = signer
        self._bundles = bundles
        self._timeout = timeout
        self._max_batch = max_batch
        self._defer = defer
        self._cond = threading.Condition(threading.Lock())
        """Guards what follows; the writer waits on it."""
        self._pending: list[_Job] = []
        self._pending_records = 0
        self._urgent = 0
        """Queued jobs someone waits on (all but the deferred ones)."""
        self._deferred_until: float | None = None
        """When the oldest queued deferred job must be committed, with or without company."""
        self._writer_state = _IDLE
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._closed = False
        self._watches: dict[asyncio.AbstractEventLoop, _Watch] = {}
        """Per event loop: the appends it awaits and their timeout timer."""
        self._appending = 0
        """Appends under way (encoding, queued or waiting): the writer waits a moment for
        the ones not queued yet (group commit)."""

    # --- appending ----------------------------------------------------------------------

    def append(self, event: AuditEvent) -> AuditRecord:
        """Record ``event`` durably and return the stored record (see the module docstring).
        Cannot be written: :class:`~tabard.audit.errors.AuditUnavailableError`."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Record several events, consecutively, in one transaction."""
        waiter = _Waiter()
        with self._cond:
            self._appending += 1
        try:
            self._enqueue(events, waiter)
            return waiter.result(self._timeout)
        except FutureTimeout:
            raise self._timed_out() from None
        finally:
            with self._cond:
                self._appending -= 1

    async def append_async(self, event: AuditEvent) -> AuditRecord:
        """:meth:`append` for coroutines: waits without blocking the event loop."""
        loop = asyncio.get_running_loop()
        waiter = _AsyncWaiter(loop, time.monotonic() + self._timeout)
        watch = self._watches.get(loop)
        if watch is None:
            watch = self._watches[loop] = _Watch()
        watch.waiters.add(waiter)
        if watch.handle is None:
            watch.handle = loop.call_later(self._timeout / 4, self._expire, loop, watch)
        with self._cond:
            self._appending += 1
        try:
            self._enqueue([event], waiter)
            records = await waiter.future
        finally:
            watch.waiters.discard(waiter)
            if not watch.waiters:  # nothing left to watch: no timer, nothing kept
                self._unwatch(loop, watch)
            with self._cond:
                self._appending -= 1
        return records[0]

    def _unwatch(self, loop: asyncio.AbstractEventLoop, watch: _Watch) -> None:
        if watch.handle is not None:
            watch.handle.cancel()
            watch.handle = None
        if self._watches.get(loop) is watch:
            del self._watches[loop]

    def _expire(self, loop: asyncio.AbstractEventLoop, watch: _Watch) -> None:
        """In the event loop, every quarter of the timeout while it awaits appends: fail
        those past their deadline (so a caller waits between 1 and 1.25 timeouts)."""
        now = time.monotonic()
        for w in [w for w in watch.waiters if w.deadline <= now]:
            watch.waiters.discard(w)
            if not w.future.done():
                w.future.set_exception(self._timed_out())
        watch.handle = None
        if watch.waiters:
            watch.handle = loop.call_later(self._timeout / 4, self._expire, loop, watch)
        else:
            self._unwatch(loop, watch)

    def append_deferred(self, event: AuditEvent) -> Future[list[AuditRecord]]:
        """Queue ``event`` to share the next commit another append pays for, or to be
        committed alone :data:`DEFER` seconds after (for a record nobody waits on, such as
        the outcome of a call whose intent is already in the log). The future resolves once
        it is committed, or fails as :meth:`append` would."""
        future = _Deferred()
        self._enqueue([event], future)
        return future

    def submit(self, events: Sequence[AuditEvent]) -> Future[list[AuditRecord]]:
        """Queue events for the writer; the future resolves once they are committed."""
        future: Future[list[AuditRecord]] = Future()
        self._enqueue(events, future)
        return future

    def _enqueue(self, events: Sequence[AuditEvent],
                 waiter: Future[list[AuditRecord]] | _Waiter | _AsyncWaiter) -> None:
        if self._closed:
            raise AuditUnavailableError("the audit log is closed")
        now = self._clock.now()
        prepared = [prepare(e, now) for e in events]
        if self._writer is None:
            self._ensure_writer()
        with self._cond:
            if self._stopping:
                raise AuditUnavailableError("the audit log is closed")
            pending = self._pending
            pending.append((prepared, waiter))
            self._pending_records += len(prepared)
            state = self._writer_state
            if isinstance(waiter, _Deferred):
                if self._deferred_until is None:
                    self._deferred_until = time.monotonic() + self._defer
                    if state is _IDLE:  # it waits for its deadline from now on
                        self._cond.notify()
                return
            self._urgent += 1
            # wake the writer only when it has something to do: it is idle, or it lingers
            # and everyone under way is now queued (one wake-up per batch, not per append)
            if state is _IDLE or (state is _LINGER and (
                    self._urgent >= self._appending
                    or self._pending_records >= self._max_batch)):
                self._cond.notify()

    def _timed_out(self) -> AuditUnavailableError:
        return AuditUnavailableError(f"the audit log did not confirm the write within "
                                     f"{self._timeout:g}s")

    def _ensure_writer(self) -> None:
        if self._writer is not None:
            return
        with self._start_lock:
            if self._writer is None:
                thread = threading.Thread(target=self._write_loop, name="tabard-audit-writer",
                                          daemon=True)
                thread.start()
                self._writer = thread

    def _write_loop(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._commit(jobs)

    def _next_batch(self) -> list[_Job] | None:
        """Wait for appends and take a batch (``None``: stopped and nothing left). When
        appends are under way that are not queued yet (callers still encoding, or just woken
        by the last commit and coming back), wait for them up to :data:`LINGER` rather than
        pay a commit (an fsync) for a fraction of them."""
        cond = self._cond
        with cond:
            self._writer_state = _IDLE
            # deferred jobs alone wait for an append to share a commit with, or their deadline
            while not self._urgent and not self._stopping:
                if self._deferred_until is None:
                    cond.wait()
                    continue
                left = self._deferred_until - time.monotonic()
                if left <= 0 or self._pending_records >= self._max_batch:
                    break
                cond.wait(left)
            if not self._pending:
                return None
            if self._urgent < self._appending and not self._stopping:
                self._writer_state = _LINGER
                deadline = time.monotonic() + LINGER
                while (self._urgent < self._appending
                       and self._pending_records < self._max_batch):
                    left = deadline - time.monotonic()
                    if left <= 0 or not cond.wait(left):
                        break
            self._writer_state = _BUSY
            jobs: list[_Job] = []
            count = 0
            for job in self._pending:
                if jobs and count + len(job[0]) > self._max_batch:
                    break
                jobs.append(job)
                count += len(job[0])
            del self._pending[:len(jobs)]
            self._pending_records -= count
            self._urgent -= sum(1 for _, f in jobs if not isinstance(f, _Deferred))
            if not any(isinstance(f, _Deferred) for _, f in self._pending):
                self._deferred_until = None
            return jobs

    def _commit(self, jobs: list[_Job]) -> None:
        live = [(events, f) for events, f in jobs if f.set_running_or_notify_cancel()]
        if not live:
            return

        def build(head: ChainHead | None) -> list[NewRecord]:
            # runs under the store's write lock: only the chaining, inlined (encode_entry
            # and leaf_hash, see record.py and merkle.py)
            seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
            out: list[NewRecord] = []
            add = out.append
            leaf = _LEAF.copy
            for events, _ in live:
                for p in events:
                    seq += 1
                    entry = b"".join((b"\x01", prev, seq.to_bytes(8, "big"), p.body))
                    h = leaf()
                    h.update(entry)
                    prev = h.digest()
                    add(NewRecord(AuditRecord(seq, p.time, p.kind, entry, prev), p.subjects))
            return out

        try:
            stored = self._store.append(build)
        except Exception as exc:
            reason = exc.message if isinstance(exc, TabardError) else exc.__class__.__name__
            log.error("audit write failed, %d records refused: %s", sum(len(e) for e, _ in live),
                      reason)
            for _, f in live:
                f.set_exception(AuditUnavailableError(
                    f"the audit log cannot be written ({reason}); the operation is refused"))
        else:
            i = 0
            for events, f in live:
                f.set_result([r.record for r in stored[i:i + len(events)]])
                i += len(events)
        loops: dict[asyncio.AbstractEventLoop, list[_AsyncWaiter]] = {}
        for _, f in live:
            if isinstance(f, _AsyncWaiter):
                loops.setdefault(f.loop, []).append(f)
        for loop, waiters in loops.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
                loop.call_soon_threadsafe(_deliver, waiters)

    def close(self) -> None:
        """Let queued records finish, then stop the writer."""
        self._closed = True
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._writer is not None:
            self._writer.join(timeout=self._timeout)
        self._store.close()

    # --- reading ------------------------------------------------------------------------

    def head(self) -> ChainHead | None:
        return self._store.head()

    def records(self, *, after: int = 0, limit: int = 100, kind: str | None = None,
                since: datetime | None = None, until: datetime | None = None
                ) -> list[AuditRecord]:
        return self._store.records(after=after, limit=min(max(limit, 1), 10_000), kind=kind,
                                   since=since, until=until)

    def export(self, *, since: datetime | None = None, until: datetime | None = None,
               page: int = 5000) -> Iterator[AuditRecord]:
        """Every record from ``since`` to ``until``, in order, streamed in pages."""
        after = 0
        while True:
            batch = self._store.records(after=after, limit=page, since=since, until=until)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].seq

    def trace(self, *, agent: str | None = None, instance: str | None = None,
              user: str | None = None, after: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Everything recorded about an agent, an instance or a user, delegation chains
        included (a record counts when its chain mentions them), in order."""
        subjects = [f"{k}:{v}" for k, v in (("agent", agent), ("instance", instance),
                                             ("user", user)) if v]
        if not subjects:
            raise InvalidProofRequestError("trace needs an agent, an instance or a user")
        found = self._store.find(subjects, after=after, limit=min(max(limit, 1), 10_000))
        # the index is a lookup aid outside the hash chain: keep what the records say
        wanted = set(subjects)
        return [r for r in found
                if r.intact() and wanted & r.event().who.subjects()]

    # --- checkpoints --------------------------------------------------------------------

    def _verified(self, stored: StoredCheckpoint, bundles: BundleSource | None
                  ) -> Checkpoint:
        source = bundles or (self._bundles() if self._bundles else None)
        if source is None:
            raise CheckpointError("no trust bundle to verify checkpoints with")
        cp = verify_checkpoint(stored.document, source)
        if cp.tree_size != stored.tree_size or cp.root_hash != stored.root_hash:
            raise CheckpointError(f"checkpoint {stored.tree_size}: the stored columns differ "
                                  f"from what it signs")
        return cp

    def checkpoint(self) -> Checkpoint:
        """Sign the current tree head (after checking the records since the previous
        checkpoint); if nothing was appended since, the latest checkpoint."""
        if self._signer is None:
            raise CheckpointError("this process cannot sign checkpoints (no audit key)")
        with self._checkpoint_lock:
            latest = self._store.checkpoint()
            rng, prev = CompactRange(), GENESIS
            if latest is not None:
                cp = self._verified(latest, None)
                rng = CompactRange(latest.tree_size, latest.frontier)
                if rng.root() != cp.root_hash:
                    raise CheckpointError(f"the stored frontier of checkpoint "
                                          f"{latest.tree_size} does not fold to its root")
                prev = cp.head_hash
            head = self._store.head()
            if head is None or head.seq == rng.size:
                if latest is None:
                    raise CheckpointError("the audit log is empty: nothing to checkpoint")
                return self._verified(latest, None)
            grown = rng.copy()

            def folded(pages: Iterator[list[tuple[int, bytes, bytes]]]
                       ) -> Iterator[list[tuple[int, bytes, bytes]]]:
                # the tree grows with each page once it has been checked (one read, not two)
                for page in pages:
                    yield page
                    grown.extend([h for _, _, h in page])

            report = verify_pages(folded(self._store.pages(after=rng.size, until=head.seq)),
                                  (), start=rng, prev=prev)
            if not report.ok:
                assert report.problem is not None
                raise CheckpointError(f"refusing to checkpoint a broken log: "
                                      f"{report.problem.message}")
            if grown.size != head.seq:
                raise CheckpointError(f"the log holds {grown.size} records, not {head.seq}")
            rng = grown
            cp = self._signer.sign(self._td, rng.size, rng.root(), head.hash)
            self._store.add_checkpoint(StoredCheckpoint(cp.tree_size, cp.root_hash, cp.time,
                                                        cp.document, rng.roots))
            log.info("audit checkpoint at %d records", cp.tree_size)
            return cp

    def checkpoint_if_grown(self) -> Checkpoint | None:
        """For the periodic task: a checkpoint when records were appended since the last."""
        head = self._store.head()
        latest = self._store.checkpoint()
        if head is None or (latest is not None and latest.tree_size >= head.seq):
            return None
        return self.checkpoint()

    def checkpoints(self) -> list[StoredCheckpoint]:
        return self._store.checkpoints()

    def get_checkpoint(self, tree_size: int | None = None) -> StoredCheckpoint:
        cp = self._store.checkpoint(tree_size)
        if cp is None:
            raise CheckpointNotFoundError("no checkpoint yet" if tree_size is None
                                          else f"no checkpoint of {tree_size} records")
        return cp

    # --- verification -------------------------------------------------------------------

    def verify(self, *, from_checkpoint: bool = False,
               bundles: BundleSource | None = None) -> VerifyReport:
        """Check the whole log (or, ``from_checkpoint``, what follows the latest verified
        checkpoint) against its chain and every signed checkpoint; the first problem is
        named. Checkpoints are verified with ``bundles`` (default: this server's); without
        any bundle, their signatures are checked against their own certificate only and a
        note says so."""
        notes: list[str] = []
        source = bundles or (self._bundles() if self._bundles else None)
        verified: list[Checkpoint] = []
        stored = self._store.checkpoints()
        for s in stored:
            try:
                cp = _unverified(s) if source is None else self._verified(s, source)
            except CheckpointError as exc:
                return VerifyReport(False, 0, 1, 0, 0, Problem(
                    s.tree_size, "bad_checkpoint",
                    f"checkpoint {s.tree_size} does not verify: {exc.message}"))
            verified.append(cp)
        if source is None and stored:
            notes.append("no trust bundle: checkpoint signatures were not checked, only the "
                         "tree heads they hold (give a bundle to check them)")
        start, prev = CompactRange(), GENESIS
        if from_checkpoint and stored:
            last_stored, last = stored[-1], verified[-1]
            start = CompactRange(last_stored.tree_size, last_stored.frontier)
            if start.root() != last.root_hash:
                return VerifyReport(False, 0, 1, 0, 0, Problem(
                    last.tree_size, "bad_checkpoint",
                    f"checkpoint {last.tree_size}: its stored frontier does not fold to "
                    f"the signed root"))
            prev = last.head_hash
            notes.append(f"started from checkpoint {last.tree_size} "
                         f"(signed {last.time.isoformat()})")
            verified = []
            # the record the checkpoint ends on must still be the one it signed
            tail = list(self._store.scan(after=last.tree_size - 1, until=last.tree_size))
            if not tail or tail[0][0] != last.tree_size or tail[0][2] != last.head_hash:
                return VerifyReport(False, 0, last.tree_size, 0, 0, Problem(
                    last.tree_size, "checkpoint_mismatch",
                    f"record {last.tree_size} is not the one checkpoint {last.tree_size} "
                    f"signed"))
        return verify_pages(self._store.pages(after=start.size), verified, start=start,
                            prev=prev, notes=notes)

    # --- proofs -------------------------------------------------------------------------

    def _leaves(self, size: int) -> list[bytes]:
        leaves = [h for _, _, h in self._store.scan(until=size)]
        if len(leaves) != size:
            raise InvalidProofRequestError(f"the log holds {len(leaves)} records, not {size}")
        return leaves

    def _tree_size(self, tree_size: int | None) -> int:
        if tree_size is not None:
            return tree_size
        latest = self._store.checkpoint()
        if latest is None:
            raise CheckpointNotFoundError("no checkpoint yet: give a tree size")
        return latest.tree_size

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """The RFC 9162 inclusion proof of record ``seq`` in the tree of ``tree_size``
        records (default: the latest checkpoint's)."""
        size = self._tree_size(tree_size)
        if not 1 <= seq <= size:
            raise InvalidProofRequestError(f"record {seq} is not in a tree of {size}")
        leaves = self._leaves(size)
        rng = CompactRange()
        rng.extend(leaves)
        return InclusionProof(seq, size, leaves[seq - 1],
                              tuple(inclusion_proof(leaves, seq - 1, size)), rng.root())

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """The RFC 9162 consistency proof from the tree of ``first`` records to the one of
        ``second`` (default: the latest checkpoint's)."""
        size = self._tree_size(second)
        if not 0 <= first <= size:
            raise InvalidProofRequestError(f"no consistency proof from {first} to {size}")
        leaves = self._leaves(size)
        a, b = CompactRange(), CompactRange()
        a.extend(leaves[:first])
        b.extend(leaves)
        return ConsistencyProof(first, size, a.root(), b.root(),
                                tuple(consistency_proof(leaves, first, size)))


def _unverified(stored: StoredCheckpoint) -> Checkpoint:
    """What a stored checkpoint says, its signature unchecked (no bundle to check it with)."""
    import json

    import jwt

    from tabard.audit.record import parse_time

    try:
        body = json.loads(jwt.api_jws.decode(stored.document,
                                             options={"verify_signature": False}))
        return Checkpoint(str(body["trust_domain"]), int(body["tree_size"]),
                          bytes.fromhex(body["root_hash"]), bytes.fromhex(body["head_hash"]),
                          parse_time(body["time"]), stored.document)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise CheckpointError("malformed checkpoint") from None
