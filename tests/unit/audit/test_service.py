"""The log's writer, against an in-memory store: concurrent appends share commits and get
consecutive numbers, a lone append is committed at once, and an append the store cannot
confirm in time fails with ``AuditUnavailableError`` (coroutines: without a timer each)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from tabard.audit import AuditEvent, AuditLog, AuditUnavailableError, ChainHead, NewRecord, What
from tabard.clock import FakeClock


class MemoryStore:
    """Just what appending needs: a head, the batches, an optional delay or block."""

    def __init__(self, delay: float = 0.0) -> None:
        self.head: ChainHead | None = None
        self.batches: list[int] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def append(self, build: Callable[[ChainHead | None], Sequence[NewRecord]]
               ) -> Sequence[NewRecord]:
        self.gate.wait()
        time.sleep(self.delay)
        new = build(self.head)
        self.head = ChainHead(new[-1].record.seq, new[-1].record.hash)
        self.batches.append(len(new))
        return new

    def close(self) -> None:
        pass


def event(i: int) -> AuditEvent:
    return AuditEvent(kind="admin_action", actor="ops", what=What(operation=f"op-{i}"))


def test_concurrent_coroutines_share_commits_and_number_consecutively() -> None:
    store = MemoryStore(delay=0.005)
    log = AuditLog(store, FakeClock(), trust_domain="example.org")  # type: ignore[arg-type]

    async def main() -> list[int]:
        records = await asyncio.gather(*(log.append_async(event(i)) for i in range(64)))
        return sorted(r.seq for r in records)

    try:
        assert asyncio.run(main()) == list(range(1, 65))
        assert len(store.batches) < 64 and sum(store.batches) == 64
        assert log._watches == {}  # nothing kept once no append is awaited
    finally:
        log.close()


def test_concurrent_threads_share_commits_and_a_lone_append_is_its_own_batch() -> None:
    store = MemoryStore(delay=0.005)
    log = AuditLog(store, FakeClock(), trust_domain="example.org")  # type: ignore[arg-type]
    try:
        threads = [threading.Thread(target=lambda k=k: [log.append(event(k * 10 + i))
                                                         for i in range(8)]) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(store.batches) == 64 and len(store.batches) < 64
        store.batches.clear()
        assert log.append(event(99)).seq == 65 and store.batches == [1]
    finally:
        log.close()


def test_an_append_the_store_cannot_confirm_in_time_is_refused() -> None:
    store = MemoryStore()
    store.gate.clear()
    log = AuditLog(store, FakeClock(), trust_domain="example.org",  # type: ignore[arg-type]
                   timeout=0.2)
    try:
        start = time.monotonic()
        with pytest.raises(AuditUnavailableError, match="did not confirm"):
            asyncio.run(log.append_async(event(1)))
        assert 0.2 <= time.monotonic() - start < 2
        assert log._watches == {}
        with pytest.raises(AuditUnavailableError, match="did not confirm"):
            log.append(event(2))
    finally:
        store.gate.set()
        log.close()


def test_a_deferred_append_shares_the_next_commit_or_goes_alone_after_its_delay() -> None:
    store = MemoryStore()
    log = AuditLog(store, FakeClock(), trust_domain="example.org",  # type: ignore[arg-type]
                   defer=0.5)
    try:
        outcome = log.append_deferred(event(1))
        time.sleep(0.05)
        assert not outcome.done() and store.batches == []  # nobody paid for a commit yet
        intent = log.append(event(2))
        assert store.batches == [2]  # one commit for both, in the order they came
        assert [r.seq for r in outcome.result(1)] == [1] and intent.seq == 2
        started = time.monotonic()
        alone = log.append_deferred(event(3))
        assert [r.seq for r in alone.result(5)] == [3]  # committed alone at its deadline
        assert 0.4 <= time.monotonic() - started < 3 and store.batches == [2, 1]
        last = log.append_deferred(event(4))
    finally:
        log.close()
    assert [r.seq for r in last.result(1)] == [4]  # closing writes what is queued


def test_a_deferred_append_the_store_refuses_fails_its_future() -> None:
    class Broken(MemoryStore):
        def append(self, build: Callable[[ChainHead | None], Sequence[NewRecord]]
                   ) -> Sequence[NewRecord]:
            raise OSError("disk full")

    log = AuditLog(Broken(), FakeClock(), trust_domain="example.org",  # type: ignore[arg-type]
                   defer=0.01)
    try:
        with pytest.raises(AuditUnavailableError, match="cannot be written"):
            log.append_deferred(event(1)).result(5)
    finally:
        log.close()
