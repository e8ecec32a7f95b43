"""The EntryStore contract on SQLite and PostgreSQL: round trips, duplicates, revisions."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tabard.registry import (
    DuplicateEntryError,
    Entry,
    EntryNotFoundError,
    IdTemplate,
    parse_selectors,
)
from tabard.spiffe import SpiffeId, TrustDomain
from tabard.store import Database, SqlEntryStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NODE_A = SpiffeId.parse("spiffe://example.org/node/" + "a" * 32)
NODE_B = SpiffeId.parse("spiffe://example.org/node/" + "b" * 32)
_SECONDS = itertools.count()


@pytest.fixture
def store(database_url: str) -> Iterator[SqlEntryStore]:
    db = Database(database_url)
    db.migrate()
    try:
        yield SqlEntryStore(db)
    finally:
        db.dispose()


def entry(spiffe_id: str = "spiffe://example.org/agent/trading/instance/{instance}",
          parent: SpiffeId = NODE_A, selectors: tuple[str, ...] = ("unix:uid:1000",),
          **extra: object) -> Entry:
    created = T0 + timedelta(seconds=next(_SECONDS))  # list order is creation order
    values: dict[str, object] = {
        "id": str(uuid.uuid4()), "spiffe_id": IdTemplate(spiffe_id), "parent_id": parent,
        "selectors": parse_selectors(selectors), "x509_svid_ttl": 3600, "jwt_svid_ttl": 300,
        "created_at": created, "updated_at": created, **extra,
    }
    return Entry(**values)  # type: ignore[arg-type]


def test_add_get_list_keep_every_field(store: SqlEntryStore) -> None:
    full = entry(selectors=("unix:uid:1000", "unix:path:/usr/bin/python3"),
                 dns_names=("api.example.org",),
                 federates_with=(TrustDomain("partner.example"),), hint="trading bot")
    stored = store.add(full)
    assert stored == full.with_revision(1)
    assert store.get(full.id) == stored
    assert store.get(str(uuid.uuid4())) is None
    assert store.list() == [stored]
    assert store.get_many([full.id, "missing"]) == {full.id: stored}


def test_duplicate_spiffe_id_parent_and_selector_set_is_a_conflict(
        store: SqlEntryStore) -> None:
    store.add(entry(selectors=("unix:uid:1000", "unix:gid:10")))
    with pytest.raises(DuplicateEntryError):
        store.add(entry(selectors=("unix:gid:10", "unix:uid:1000")))
    # another parent, another selector set or another ID is a different entry
    store.add(entry(parent=NODE_B, selectors=("unix:uid:1000", "unix:gid:10")))
    store.add(entry(selectors=("unix:uid:1000",)))
    store.add(entry(spiffe_id="spiffe://example.org/web", selectors=("unix:uid:1000",)))
    assert len(store.list()) == 4


def test_list_filters_by_parent_and_spiffe_id(store: SqlEntryStore) -> None:
    a = store.add(entry(parent=NODE_A))
    b = store.add(entry(parent=NODE_B))
    web = store.add(entry(spiffe_id="spiffe://example.org/web", parent=NODE_B))
    assert store.list(parent_id=NODE_A) == [a]
    assert store.list(parent_id=NODE_B) == [b, web]
    assert store.list(spiffe_id="spiffe://example.org/web") == [web]
    assert store.list(parent_id=NODE_A, spiffe_id="spiffe://example.org/web") == []


def test_every_write_bumps_the_parent_revision(store: SqlEntryStore) -> None:
    assert store.for_parent(NODE_A) == (0, [])
    first = store.add(entry())
    second = store.add(entry(spiffe_id="spiffe://example.org/web"))
    assert (first.revision, second.revision) == (1, 2)
    changed = store.update(replace_hint(first, "changed"))
    assert changed.revision == 3 and changed.hint == "changed"
    assert store.for_parent(NODE_A) == (3, [changed, second])
    assert store.delete(second.id) == second
    assert store.delete(second.id) is None
    assert store.for_parent(NODE_A) == (4, [changed])
    # node B has its own counter
    assert store.add(entry(parent=NODE_B)).revision == 1


def test_moving_an_entry_bumps_both_parents(store: SqlEntryStore) -> None:
    moved = store.add(entry())
    store.add(entry(parent=NODE_B, spiffe_id="spiffe://example.org/web"))
    after = store.update(Entry(**{**_fields(moved), "parent_id": NODE_B}))
    assert store.for_parent(NODE_A) == (2, [])
    revision, entries = store.for_parent(NODE_B)
    assert revision == 2 and after.revision == 2 and after in entries


def test_update_unknown_or_into_a_duplicate_fails(store: SqlEntryStore) -> None:
    with pytest.raises(EntryNotFoundError):
        store.update(entry())
    one = store.add(entry(selectors=("unix:uid:1",)))
    two = store.add(entry(selectors=("unix:uid:2",)))
    with pytest.raises(DuplicateEntryError):
        store.update(Entry(**{**_fields(two), "selectors": one.selectors}))
    assert store.get(two.id) == two


def test_concurrent_writes_get_distinct_revisions(store: SqlEntryStore) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        try:
            barrier.wait()
            store.add(entry(spiffe_id=f"spiffe://example.org/w{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    revision, entries = store.for_parent(NODE_A)
    assert revision == 8
    assert sorted(e.revision for e in entries) == list(range(1, 9))


def _fields(e: Entry) -> dict[str, object]:
    return {f: getattr(e, f) for f in Entry.__dataclass_fields__}


def replace_hint(e: Entry, hint: str) -> Entry:
    return Entry(**{**_fields(e), "hint": hint,  # type: ignore[arg-type]
                    "updated_at": e.updated_at + timedelta(seconds=1)})
