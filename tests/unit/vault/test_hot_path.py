"""The vault on the gateway's hot path: the reveal cache (bounded by its TTL, the version's
expiry and in-process changes) and write-behind leases (batched, flushed before every read
and revocation, never dropped)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from tabard.clock import FakeClock
from tabard.errors import Invalid
from tabard.store import Database, SqlLeaseStore, SqlSecretStore
from tabard.vault import (
    EnvelopeCipher,
    Lease,
    LeaseQuery,
    Leases,
    ProviderKind,
    SecretNotFoundError,
    Vault,
)

TTL = timedelta(seconds=5)
INSTANCE = "spiffe://demo.example/agent/assistant/instance/1"


def vault_on(db: Database, clock: FakeClock, **options: object) -> Vault:
    return Vault(SqlSecretStore(db), EnvelopeCipher(b"unit-test-kek-0123"), clock,
                 **options)  # type: ignore[arg-type]


class CountingSecrets(SqlSecretStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.version_reads = 0

    def version(self, name: str, version: int):  # type: ignore[no-untyped-def]
        self.version_reads += 1
        return super().version(name, version)


def test_a_reveal_is_served_from_memory_for_its_ttl(db: Database, clock: FakeClock) -> None:
    store = CountingSecrets(db)
    vault = Vault(store, EnvelopeCipher(b"unit-test-kek-0123"), clock, reveal_ttl=TTL)
    vault.put("jira", b"one")
    assert vault.reveal("jira").expose() == b"one"
    assert vault.reveal("jira").expose() == b"one"
    assert store.version_reads == 1
    clock.advance(TTL)
    assert vault.reveal("jira").expose() == b"one"
    assert store.version_reads == 2


def test_changes_in_this_process_take_effect_at_once(db: Database, clock: FakeClock) -> None:
    vault = vault_on(db, clock, reveal_ttl=TTL)
    vault.put("jira", b"one")
    assert vault.reveal("jira").expose() == b"one"
    vault.rotate("jira", b"two")
    assert vault.reveal("jira").version == 2
    vault.delete("jira")
    with pytest.raises(SecretNotFoundError):
        vault.reveal("jira")


def test_another_process_rotation_and_deletion_are_seen_within_the_ttl(
        db: Database, clock: FakeClock) -> None:
    gateway = vault_on(db, clock, reveal_ttl=TTL)
    server = vault_on(db, clock)
    server.put("jira", b"one")
    assert gateway.reveal("jira").version == 1
    server.rotate("jira", b"two")
    clock.advance(TTL - timedelta(milliseconds=1))
    # the documented window: the old version, still inside its rotation grace
    assert gateway.reveal("jira").version == 1
    assert server.reveal("jira", 1).expose() == b"one"
    clock.advance(timedelta(milliseconds=1))
    assert gateway.reveal("jira").version == 2
    server.delete("jira")
    assert gateway.reveal("jira").version == 2  # a deleted secret: at most the TTL more
    clock.advance(TTL)
    with pytest.raises(SecretNotFoundError):
        gateway.reveal("jira")


def test_a_cached_old_version_never_outlives_its_grace(db: Database, clock: FakeClock) -> None:
    # a TTL longer than the grace is capped at it, and an entry ends at its version's expiry
    gateway = vault_on(db, clock, reveal_ttl=TTL, grace=timedelta(seconds=2))
    assert gateway.reveal_ttl == timedelta(seconds=2)
    server = vault_on(db, clock, grace=timedelta(seconds=2))
    server.put("jira", b"one")
    server.rotate("jira", b"two")
    assert gateway.reveal("jira", 1).expose() == b"one"
    clock.advance(timedelta(seconds=2))
    with pytest.raises(SecretNotFoundError, match="expired"):
        gateway.reveal("jira", 1)


def record(leases: Leases, agent: str = "assistant", instance: str = INSTANCE) -> Lease:
    return leases.record(provider=ProviderKind.STATIC, route="r", agent=agent,
                         agent_instance=instance, user="alice", expires_at=None)


class GatedLeases(SqlLeaseStore):
    """A lease store whose batch writes wait for the test, and count."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.gate = threading.Event()
        self.batches: list[int] = []
        self.fail = 0

    def add(self, lease: Lease) -> None:  # a synchronous insert is not held
        super().add_many([lease])

    def add_many(self, leases: Sequence[Lease]) -> None:
        self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("database down")
        self.batches.append(len(leases))
        super().add_many(leases)


def test_leases_are_written_behind_in_batches(db: Database, clock: FakeClock) -> None:
    store = GatedLeases(db)
    leases = Leases(store, clock, write_behind=timedelta(milliseconds=20))
    ids = [record(leases).id for _ in range(5)]
    assert leases.queued == 5 and SqlLeaseStore(db).get(ids[0]) is None  # not yet written
    store.gate.set()
    assert leases.flush(10)
    assert sum(store.batches) == 5 and len(store.batches) <= 2
    assert {lease.id for lease in leases.list(LeaseQuery(limit=10))} == set(ids)
    assert leases.close()


def test_a_revocation_reaches_leases_still_queued(db: Database, clock: FakeClock) -> None:
    store = GatedLeases(db)
    leases = Leases(store, clock, write_behind=timedelta(seconds=5))
    mine, other = record(leases), record(leases, agent="other", instance=INSTANCE + "x")
    threading.Timer(0.05, store.gate.set).start()
    assert leases.revoke_agent("assistant") == 1  # waited for the queue, then revoked
    assert not leases.is_active(mine.id) and leases.is_active(other.id)
    store.gate.clear()
    late = record(leases)
    threading.Timer(0.05, store.gate.set).start()
    assert leases.revoke_instance(INSTANCE) == 1
    assert not leases.is_active(late.id)
    leases.close()


def test_a_full_queue_falls_back_to_a_synchronous_insert(db: Database, clock: FakeClock
                                                         ) -> None:
    store = GatedLeases(db)
    leases = Leases(store, clock, write_behind=timedelta(milliseconds=20), queue_size=1,
                    batch_size=1)
    records = [record(leases) for _ in range(4)]  # at most one held by the writer, one queued
    assert leases.overflowed >= 2
    # the leases that found the queue full went straight in; the others wait for the writer
    written = [r for r in records if SqlLeaseStore(db).get(r.id) is not None]
    assert len(written) == leases.overflowed
    store.gate.set()
    assert leases.flush(10)
    assert all(SqlLeaseStore(db).get(r.id) is not None for r in records)


def test_a_failing_batch_is_retried_never_dropped(db: Database, clock: FakeClock) -> None:
    store = GatedLeases(db)
    store.fail = 2
    store.gate.set()
    leases = Leases(store, clock, write_behind=timedelta(milliseconds=5))
    lease = record(leases)
    assert leases.flush(10)
    assert SqlLeaseStore(db).get(lease.id) is not None and store.batches == [1]


def test_close_writes_what_is_queued_and_later_leases_go_straight_in(
        db: Database, clock: FakeClock) -> None:
    store = GatedLeases(db)
    leases = Leases(store, clock, write_behind=timedelta(seconds=5))
    queued = record(leases)
    threading.Timer(0.05, store.gate.set).start()
    assert leases.close()
    assert SqlLeaseStore(db).get(queued.id) is not None
    after = record(leases)
    assert leases.queued == 0 and SqlLeaseStore(db).get(after.id) is not None


def test_a_lease_the_store_always_refuses_does_not_hold_back_the_others(
        db: Database, clock: FakeClock) -> None:
    class Picky(SqlLeaseStore):
        def add_many(self, leases: Sequence[Lease]) -> None:
            if any(lease.route == "poison" for lease in leases):
                raise RuntimeError("constraint violated")
            super().add_many(leases)

        def add(self, lease: Lease) -> None:
            self.add_many([lease])

    leases = Leases(Picky(db), clock, write_behind=timedelta(milliseconds=20))
    good = [record(leases) for _ in range(3)]
    leases.record(provider=ProviderKind.STATIC, route="poison", agent="assistant",
                  agent_instance=INSTANCE, user="alice", expires_at=None)
    assert leases.flush(30)
    assert all(SqlLeaseStore(db).get(g.id) is not None for g in good)
    with pytest.raises(Invalid, match="longer than 255"):
        leases.record(provider=ProviderKind.STATIC, route="r", agent="assistant",
                      agent_instance=INSTANCE, user="u" * 256, expires_at=None)
    leases.close()
