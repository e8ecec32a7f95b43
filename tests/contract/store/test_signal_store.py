"""The kill switch over its SQL signal log on SQLite and PostgreSQL: entries and events in
one transaction, ids in commit order under concurrent writers, resume lifting only what it
names, the audit log first (fail closed), and LISTEN/NOTIFY between two replicas."""

from __future__ import annotations

import threading
import time

import pytest

from tabard.app import KillAuditTrail
from tabard.audit import AuditLog
from tabard.clock import FakeClock
from tabard.errors import Unavailable
from tabard.signals import (
    KillAction,
    KillConflictError,
    KillSwitch,
    KillTarget,
    Narrowing,
    SignalEvent,
    SignalHub,
    TargetKind,
)
from tabard.store import Database, PgSignalListener, SqlAuditStore, SqlSignalStore
from tests.support.postgres import PostgresServer, unique_database_name

AGENT = KillTarget(TargetKind.AGENT, "trading")
INSTANCE = KillTarget(TargetKind.INSTANCE, "spiffe://example.org/agent/trading/instance/i1")


def switch(db: Database, audit: AuditLog | None = None) -> KillSwitch:
    store = SqlSignalStore(db)
    hub = SignalHub(store)
    hub.load()
    return KillSwitch(store, hub, FakeClock(),
                      audit=KillAuditTrail(audit) if audit is not None else None)


def test_suspend_narrow_resume_keep_entries_and_log_in_step(db: Database) -> None:
    ks = switch(db)
    seen: list[SignalEvent] = []
    ks.hub.subscribe(seen.append)
    e1 = ks.suspend(AGENT, actor="admin:a", reason="incident 42")
    e2 = ks.narrow(AGENT, Narrowing(read_only=True, blocked_categories=frozenset({"payments"})),
                   actor="admin:a", reason="contain")
    with pytest.raises(KillConflictError):
        ks.suspend(AGENT, actor="admin:a")
    assert (e1.id, e2.id) == (1, 2) and [e.id for e in seen] == [1, 2]
    restriction = ks.hub.kill_list.for_workload(INSTANCE.value)
    assert restriction is not None and restriction.suspension is not None
    assert restriction.suspension.reason == "incident 42"
    assert restriction.narrowing == Narrowing(True, frozenset({"payments"}))
    # resume of the suspension only: the narrowing stays
    e3 = ks.resume(AGENT, actor="admin:b", only=KillAction.SUSPEND)
    assert e3 is not None and [e.action for e in e3.entries] == [KillAction.NARROW]
    state = ks.state()
    assert state.last_event_id == 3 and [e.action for e in state.entries] == [KillAction.NARROW]
    assert ks.resume(AGENT, actor="admin:b", only=KillAction.SUSPEND) is None
    assert ks.resume(AGENT, actor="admin:b") is not None
    assert ks.state().entries == () and ks.hub.kill_list.for_workload(INSTANCE.value) is None
    # a new replica starts from the stored state and the same log
    other = switch(db)
    assert other.hub.last_event_id == 4
    assert [e.id for e in other.events(after=1)] == [2, 3, 4]
    assert other.events(after=0)[0].entries[0].reason == "incident 42"


def test_concurrent_writers_get_gapless_ids_in_commit_order(db: Database) -> None:
    ks = switch(db)
    targets = [KillTarget(TargetKind.USER, f"user{i}@example.org") for i in range(24)]

    def work(t: KillTarget) -> None:
        ks.suspend(t, actor="admin:a", reason="r")
        ks.resume(t, actor="admin:a")

    threads = [threading.Thread(target=work, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = ks.events(after=0, limit=1000)
    assert [e.id for e in events] == list(range(1, 49))
    assert ks.state().entries == () and ks.hub.last_event_id == 48


def test_a_change_the_audit_log_cannot_take_is_refused(db: Database) -> None:
    audit = AuditLog(SqlAuditStore(db), FakeClock(), trust_domain="example.org", timeout=2.0)
    ks = switch(db, audit)
    ks.suspend(AGENT, actor="admin:a", reason="first")
    assert [r.body()["what"]["operation"] for r in audit.records()] == [
        "kill.suspend"]
    audit.close()  # a closed log refuses appends
    with pytest.raises(Unavailable):
        ks.narrow(INSTANCE, Narrowing(read_only=True), actor="admin:a")
    assert ks.state().last_event_id == 1


@pytest.mark.postgres
def test_listen_notify_relays_changes_between_replicas(
        postgres_cluster: PostgresServer, request: pytest.FixtureRequest) -> None:
    name = unique_database_name(request.node.name)
    url = postgres_cluster.create_database(name)
    db_a, db_b = Database(url), Database(url)
    db_a.migrate()
    try:
        a, b = switch(db_a), switch(db_b)
        heard: list[tuple[int, float]] = []
        b.hub.subscribe(lambda e: heard.append((e.id, time.monotonic())))
        listener = PgSignalListener(db_b, b.hub.poke, poll=0.2)
        listener.start()
        try:
            assert listener.listening.wait(10)
            sent = time.monotonic()
            a.suspend(AGENT, actor="admin:a", reason="on replica a")
            a.narrow(INSTANCE, Narrowing(approval_above=10), actor="admin:a")
            deadline = time.monotonic() + 5
            while len(heard) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [i for i, _ in heard] == [1, 2]
            assert heard[0][1] - sent < 1.0  # pushed, not found by a poll
            restriction = b.hub.kill_list.for_workload(INSTANCE.value)
            assert restriction is not None and restriction.suspension is not None
            assert restriction.narrowing == Narrowing(approval_above=10)
        finally:
            listener.stop()
    finally:
        db_a.dispose()
        db_b.dispose()
        postgres_cluster.drop_database(name)


class _CountingStore(SqlSignalStore):
    """Counts the reads a polling replica makes."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.heads = self.event_reads = 0

    def last_event_id(self) -> int:
        self.heads += 1
        return super().last_event_id()

    def events(self, *, after: int, limit: int) -> list[SignalEvent]:
        self.event_reads += 1
        return super().events(after=after, limit=limit)


def test_a_polling_replica_reads_only_the_head_until_it_moves(db: Database) -> None:
    writer = switch(db)
    store = _CountingStore(db)
    replica = SignalHub(store)
    replica.load()
    seen: list[int] = []
    replica.subscribe(lambda e: seen.append(e.id))
    for _ in range(5):
        assert replica.check() == 0
    assert (store.heads, store.event_reads) == (5, 0)
    writer.suspend(AGENT, actor="admin:a", reason="elsewhere")
    writer.narrow(INSTANCE, Narrowing(read_only=True), actor="admin:a")
    assert replica.check() == 2
    assert seen == [1, 2] and store.event_reads == 1
    assert replica.check() == 0 and store.event_reads == 1
    assert replica.kill_list.last_event_id == store.last_event_id() == 2
