"""Leases: the record of every credential a provider hands out (never the credential).

The kill switch and retirement revoke all leases of an agent or an agent instance in one
call (:meth:`Leases.revoke_agent`, :meth:`Leases.revoke_instance`); the gateway asks
:meth:`Leases.is_active` before it reuses a credential.

Write-behind (``write_behind`` set; the gateway's process): :meth:`Leases.record` returns
the lease at once and puts it on a bounded queue; one thread writes what the queue holds in
batches, one transaction per batch, each batch at most ``write_behind`` after its first
lease (plus its transaction). The request's audit record, written on the request path,
names the lease id: it is the durable record of the call. Nothing is dropped: when the queue
is full, ``record`` inserts synchronously, and a batch that cannot be written is retried
(the queue then fills and requests insert, or fail, synchronously). Every read and every
revocation of this object first waits for the queue to drain (:meth:`Leases.flush`), so a
revocation in this process reaches leases recorded just before it; :meth:`Leases.close`
drains and stops the thread. A revocation made by *another* process over the same database
misses a lease of this process still queued then: such a lease (at most ``write_behind``
plus one transaction old when the revocation ran) is written unrevoked and stays active
until its own expiry (60 s for static credentials); the request that took it was decided
before the revocation.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from tabard.clock import Clock
from tabard.errors import Invalid
from tabard.vault.errors import LeaseNotFoundError
from tabard.vault.model import Lease, LeaseQuery, ProviderKind
from tabard.vault.ports import LeaseStore

__all__ = ["MAX_LEASE_PAGE", "Leases", "new_lease_id"]

MAX_LEASE_PAGE = 10_000
_BATCH_ATTEMPTS = 5
_LIMITS = {"route": 255, "agent": 63, "agent_instance": 2048, "user": 255, "secret_name": 128}
"""The longest value each lease field holds (the store's columns)."""
log = logging.getLogger("tabard.vault")


def new_lease_id() -> str:
    """A random lease id (128 bits, hex): also used as the ``jti`` of minted tokens."""
    return uuid.uuid4().hex


class Leases:
    """Lease records over a :class:`LeaseStore`; ``write_behind`` (module docstring) queues
    new leases (at most ``queue_size``) for a writer thread instead of inserting each one in
    its own transaction."""

    def __init__(self, store: LeaseStore, clock: Clock, *,
                 write_behind: timedelta | None = None, queue_size: int = 10_000,
                 batch_size: int = 500) -> None:
        self._store, self._clock = store, clock
        self._interval = write_behind.total_seconds() if write_behind else None
        # None is a flush's nudge: write what was collected now, without waiting
        self._queue: queue.Queue[Lease | None] = queue.Queue(maxsize=max(1, queue_size))
        self._batch_size = max(1, batch_size)
        self._pending = 0  # queued or being written
        self._drained = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closed = False
        self._start_lock = threading.Lock()
        self.overflowed = 0  # leases inserted synchronously because the queue was full

    # --- write-behind ---------------------------------------------------------------------

    def _enqueue(self, lease: Lease) -> bool:
        if self._closed:
            return False
        if self._writer is None:
            with self._start_lock:
                if self._writer is None and not self._closed:
                    self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                    name="tabard-lease-writer")
                    self._writer.start()
        with self._drained:
            self._pending += 1
        try:
            self._queue.put_nowait(lease)
        except queue.Full:
            self._done(1)
            self.overflowed += 1
            return False
        return True

    def _done(self, count: int) -> None:
        with self._drained:
            self._pending -= count
            if self._pending <= 0:
                self._drained.notify_all()

    def _write_loop(self) -> None:
        interval = self._interval or 0.0
        while True:
            first = self._queue.get()
            if first is None:
                continue
            batch = [first]
            deadline = time.monotonic() + interval
            while len(batch) < self._batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = (self._queue.get(timeout=remaining) if remaining > 0
                            else self._queue.get_nowait())
                except queue.Empty:
                    break
                if item is None:
                    break
                batch.append(item)
            self._write(batch)
            self._done(len(batch))

    def _write(self, batch: list[Lease]) -> None:
        """One transaction for the batch, retried a few times (the database may be briefly
        away); then lease by lease, so one lease the store refuses does not hold back the
        others. A lease that still cannot be written is logged with its id (the audit
        record of its call names it too)."""
        delay = 0.05
        for attempt in range(_BATCH_ATTEMPTS):
            try:
                self._store.add_many(batch)
                return
            except Exception:
                log.exception("could not write %d leases (attempt %d of %d)", len(batch),
                              attempt + 1, _BATCH_ATTEMPTS)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        for lease in batch:
            try:
                self._store.add(lease)
            except Exception:
                log.exception("lease %s cannot be written; it is not recorded", lease.id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every lease recorded so far is in the store; False on ``timeout``."""
        end = time.monotonic() + timeout
        if self._pending > 0:
            # the writer stops collecting and writes (a full queue: it writes full batches)
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
        with self._drained:
            while self._pending > 0:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    log.warning("%d leases are still waiting to be written", self._pending)
                    return False
                self._drained.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued; later leases are inserted synchronously."""
        self._closed = True
        return self.flush(timeout)

    @property
    def write_behind(self) -> bool:
        return self._interval is not None

    @property
    def queued(self) -> int:
        """Leases recorded but not yet in the store."""
        return self._pending

    def record(self, *, provider: ProviderKind, route: str, agent: str | None,
               agent_instance: str | None, user: str | None, expires_at: datetime | None,
               secret_name: str | None = None, secret_version: int | None = None,
               lease_id: str | None = None, issued_at: datetime | None = None) -> Lease:
        fields = {"route": route, "agent": agent, "agent_instance": agent_instance,
                  "user": user, "secret_name": secret_name}
        for name, value in fields.items():
            if value is not None and len(value) > _LIMITS[name]:
                raise Invalid(f"a lease's {name} is longer than {_LIMITS[name]} characters")
        lease = Lease(
            id=lease_id or new_lease_id(), provider=provider, route=route, agent=agent,
            agent_instance=agent_instance, user=user,
            issued_at=issued_at or self._clock.now(), expires_at=expires_at,
            secret_name=secret_name, secret_version=secret_version,
        )
        if self._interval is None or not self._enqueue(lease):
            self._store.add(lease)
        return lease

    def can_queue(self) -> bool:
        """Whether :meth:`record` would queue a lease now rather than insert it (and wait on
        the database)."""
        return self._interval is not None and not self._closed and not self._queue.full()

    def get(self, lease_id: str) -> Lease:
        self.flush()
        lease = self._store.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError(f"no lease {lease_id!r}")
        return lease

    def is_active(self, lease_id: str) -> bool:
        self.flush()
        lease = self._store.get(lease_id)
        return lease is not None and lease.active(self._clock.now())

    def list(self, query: LeaseQuery) -> Sequence[Lease]:
        if not 1 <= query.limit <= MAX_LEASE_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_LEASE_PAGE}")
        self.flush()
        return self._store.list(query)

    def revoke(self, lease_id: str) -> Lease:
        """Revoke one lease (idempotent: revoking a revoked lease changes nothing)."""
        lease = self.get(lease_id)
        if lease.revoked_at is None:
            self._store.revoke(lease_id, self._clock.now())
            log.info("lease revoked", extra={"lease": lease_id})
        return self.get(lease_id)

    def _flush_for_revocation(self) -> None:
        if not self.flush():
            log.error("%d leases still waiting to be written are not revoked", self._pending)

    def revoke_agent(self, agent: str) -> int:
        """Revoke every lease of every instance of an agent; returns how many."""
        if not agent:
            raise Invalid("an agent name is required")
        self._flush_for_revocation()
        count = self._store.revoke_matching(agent=agent, agent_instance=None,
                                            at=self._clock.now())
        log.info("agent leases revoked", extra={"agent": agent, "count": count})
        return count

    def revoke_instance(self, agent_instance: str) -> int:
        """Revoke every lease of one agent instance; returns how many."""
        if not agent_instance:
            raise Invalid("an agent instance is required")
        self._flush_for_revocation()
        count = self._store.revoke_matching(agent=None, agent_instance=agent_instance,
                                            at=self._clock.now())
        log.info("instance leases revoked",
                 extra={"agent_instance": agent_instance, "count": count})
        return count
