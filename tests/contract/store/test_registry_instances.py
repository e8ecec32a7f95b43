"""The InstanceStore contract on SQLite and PostgreSQL: one ID per process, never reused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tabard.registry import (
    AgentInstance,
    IdTemplate,
    InstanceQuery,
    new_ulid,
    parse_selectors,
)
from tabard.store import Database, SqlInstanceStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NODE_A, NODE_B = "a" * 32, "b" * 32
ENTRY = "0f7e6a5c-1111-4222-8333-944455556666"
OTHER_ENTRY = "0f7e6a5c-1111-4222-8333-977777777777"
TEMPLATE = IdTemplate("spiffe://example.org/agent/trading/instance/{instance}")


@pytest.fixture
def store(database_url: str) -> Iterator[SqlInstanceStore]:
    db = Database(database_url)
    db.migrate()
    try:
        yield SqlInstanceStore(db)
    finally:
        db.dispose()


def candidate(pid: int = 100, start_time: float = 1234.56, node_id: str = NODE_A,
              entry_id: str = ENTRY, at: datetime = T0, parent: str | None = None,
              agent: str | None = "trading") -> AgentInstance:
    instance_id = new_ulid(at)
    return AgentInstance(
        id=instance_id, node_id=node_id, entry_id=entry_id,
        spiffe_id=TEMPLATE.resolve(instance_id), agent=agent, pid=pid,
        start_time=start_time, uid=1000, gid=1000, exe_path="/usr/bin/python3",
        exe_sha256="ab" * 32, selectors=parse_selectors(["unix:uid:1000"]),
        parent_instance_id=parent, first_seen_at=at, last_seen_at=at,
    )


def test_the_same_process_keeps_its_instance(store: SqlInstanceStore) -> None:
    first = store.register(candidate())
    assert first.created
    assert store.get(first.instance.id) == first.instance
    later = T0 + timedelta(minutes=3)
    again = store.register(candidate(at=later))
    assert not again.created
    assert again.instance == replace(first.instance, last_seen_at=later)


def test_a_new_process_gets_a_new_instance_and_retires_the_old_pid(
        store: SqlInstanceStore) -> None:
    first = store.register(candidate(pid=100, start_time=10.0)).instance
    other_pid = store.register(candidate(pid=101, start_time=10.0))
    assert other_pid.created and other_pid.instance.id != first.id
    later = T0 + timedelta(minutes=1)
    reused_pid = store.register(candidate(pid=100, start_time=99.5, at=later))
    assert reused_pid.created and reused_pid.instance.id != first.id
    old = store.get(first.id)
    assert old is not None and old.retired_at == later
    live = store.get(other_pid.instance.id)
    assert live is not None and live.retired_at is None
    # the same process of another entry, or on another node, is another instance
    assert store.register(candidate(pid=101, start_time=10.0, entry_id=OTHER_ENTRY)).created
    assert store.register(candidate(pid=101, start_time=10.0, node_id=NODE_B)).created


def test_parent_instance_must_be_on_the_same_node(store: SqlInstanceStore) -> None:
    parent = store.register(candidate(pid=1)).instance
    foreign = store.register(candidate(pid=1, node_id=NODE_B)).instance
    child = store.register(candidate(pid=2, parent=parent.id)).instance
    assert child.parent_instance_id == parent.id
    assert store.get(child.id) == child
    orphan = store.register(candidate(pid=3, parent=foreign.id)).instance
    assert orphan.parent_instance_id is None
    unknown = store.register(candidate(pid=4, parent=new_ulid(T0))).instance
    assert unknown.parent_instance_id is None


def test_touch_only_updates_the_node_s_own_instances(store: SqlInstanceStore) -> None:
    mine = store.register(candidate(pid=1)).instance
    theirs = store.register(candidate(pid=1, node_id=NODE_B)).instance
    at = T0 + timedelta(minutes=5)
    assert store.touch(NODE_A, [mine.id, theirs.id, new_ulid(T0)], at) == 1
    assert store.get(mine.id).last_seen_at == at  # type: ignore[union-attr]
    assert store.get(theirs.id).last_seen_at == T0  # type: ignore[union-attr]
    assert store.touch(NODE_A, [], at) == 0


def test_list_filters_newest_first(store: SqlInstanceStore) -> None:
    a1 = store.register(candidate(pid=1, at=T0)).instance
    a2 = store.register(candidate(pid=2, at=T0 + timedelta(seconds=1))).instance
    b = store.register(candidate(pid=3, agent="billing", at=T0 + timedelta(seconds=2),
                                 entry_id=OTHER_ENTRY, node_id=NODE_B)).instance
    assert store.list(InstanceQuery()) == [b, a2, a1]
    assert store.list(InstanceQuery(agent="trading")) == [a2, a1]
    assert store.list(InstanceQuery(agent="trading", limit=1)) == [a2]
    assert store.list(InstanceQuery(node_id=NODE_B)) == [b]
    assert store.list(InstanceQuery(entry_id=OTHER_ENTRY)) == [b]
    assert store.list(InstanceQuery(agent="nobody")) == []


def test_concurrent_registrations_of_one_process_agree(store: SqlInstanceStore) -> None:
    results: list[str] = []
    created: list[bool] = []
    barrier = threading.Barrier(6)

    def register() -> None:
        barrier.wait()
        registration = store.register(candidate(pid=77, start_time=5.25))
        results.append(registration.instance.id)
        created.append(registration.created)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert sorted(created) == [False] * 5 + [True]


def test_get_by_spiffe_id(store: SqlInstanceStore) -> None:
    mine = store.register(candidate(pid=1)).instance
    theirs = store.register(candidate(pid=2, node_id=NODE_B)).instance
    assert store.get_by_spiffe_id(mine.spiffe_id) == mine
    assert store.get_by_spiffe_id(theirs.spiffe_id) == theirs
    assert store.get_by_spiffe_id(TEMPLATE.resolve(new_ulid(T0))) is None
    # the ID of another template with the same instance segment is another identity
    other = IdTemplate("spiffe://example.org/agent/billing/instance/{instance}")
    assert store.get_by_spiffe_id(other.resolve(mine.id)) is None
