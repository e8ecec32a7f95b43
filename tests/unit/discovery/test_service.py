"""InventoryDiscovery: batches of rows in, per-row errors out; listing by posture flag."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tabard.clock import FakeClock
from tabard.discovery import InventoryDiscovery, PostureFlag, RowError
from tabard.registry import InvalidNhiError, InventoryQuery, NhiKind, NhiNotFoundError
from tests.unit.discovery.conftest import MemoryInventoryStore


def test_bad_rows_are_reported_and_the_good_ones_stored(
        discovery: InventoryDiscovery, store: MemoryInventoryStore) -> None:
    report = discovery.import_rows([
        {"kind": "api_key", "name": "a"},
        {"kind": "robot", "name": "b"},
        "not an object",
        {"kind": "api_key", "name": "c", "expires": "someday", "colour": "red"},
        {},
        {"kind": " ", "name": ""},
        {"kind": "certificate", "name": "d", "Owner": "alice"},
    ], default_source="GitHub")
    assert (report.received, report.imported, report.created, report.updated,
            report.skipped) == (7, 2, 2, 0, 2)
    assert [(e.row, e.field) for e in report.errors] == [(2, "kind"), (3, ""),
                                                         (4, "expires_at")]
    assert report.failed == 3
    assert report.ignored_fields == ("colour",)
    assert {key for key in store.records} == {("github", "a"), ("github", "d")}


def test_reimport_updates_and_later_duplicates_win(
        discovery: InventoryDiscovery, store: MemoryInventoryStore, clock: FakeClock) -> None:
    discovery.import_rows([{"kind": "api_key", "name": "a", "owner": "alice"}])
    first = store.records[("manual", "a")]
    clock.advance(timedelta(hours=1))
    report = discovery.import_rows([
        {"kind": "api_key", "name": "a", "owner": "bob"},
        {"kind": "api_key", "name": "b"},
        {"kind": "api_key", "name": "a", "owner": "carol"},
    ])
    assert (report.imported, report.created, report.updated) == (3, 1, 1)
    again = store.records[("manual", "a")]
    assert again.id == first.id and again.first_seen_at == first.first_seen_at
    assert again.spec.owner == "carol" and again.updated_at == clock.now()


def test_an_invalid_default_source_refuses_the_batch(discovery: InventoryDiscovery) -> None:
    with pytest.raises(InvalidNhiError, match="source"):
        discovery.import_rows([{"kind": "api_key", "name": "a"}], default_source="not ok")


def test_list_filters_by_flags_at_read_time(discovery: InventoryDiscovery,
                                            clock: FakeClock) -> None:
    now = clock.now()
    soon = (now + timedelta(days=10)).isoformat()
    discovery.import_rows([
        {"kind": "api_key", "name": "owned", "owner": "alice", "expires": soon,
         "last_used": now.isoformat()},
        {"kind": "api_key", "name": "orphan", "expires": soon, "last_used": now.isoformat()},
        {"kind": "service_account", "name": "forever", "owner": "bob"},
    ])
    names = [a.record.spec.name for a in discovery.list(InventoryQuery(), [PostureFlag.NO_OWNER])]
    assert names == ["orphan"]
    assert [a.record.spec.name for a in discovery.list(
        InventoryQuery(), [PostureFlag.LONG_LIVED])] == ["forever"]
    assert discovery.list(InventoryQuery(), [PostureFlag.EXPIRED]) == []
    clock.advance(timedelta(days=10))
    expired = discovery.list(InventoryQuery(), [PostureFlag.EXPIRED, PostureFlag.NO_OWNER])
    assert [a.record.spec.name for a in expired] == ["orphan"]
    assert expired[0].flags == (PostureFlag.NO_OWNER, PostureFlag.EXPIRED)
    everything = discovery.list(InventoryQuery(kind=NhiKind.API_KEY))
    assert [a.record.spec.name for a in everything] == ["owned", "orphan"]


def test_flag_filter_pages_through_the_store_until_the_limit(
        discovery: InventoryDiscovery, store: MemoryInventoryStore) -> None:
    rows: list[object] = [{"kind": "other", "name": f"r{i:05}",
                           "owner": "" if i % 1000 == 999 else "alice"} for i in range(12_000)]
    for start in range(0, len(rows), 1000):
        discovery.import_rows(rows[start:start + 1000])
    found = discovery.list(InventoryQuery(limit=20), [PostureFlag.NO_OWNER])
    assert [a.record.spec.name for a in found] == [f"r{i:05}" for i in range(999, 12_000, 1000)]
    found = discovery.list(InventoryQuery(limit=3), [PostureFlag.NO_OWNER])
    assert len(found) == 3
    found = discovery.list(InventoryQuery(limit=3, after=found[-1].record.id),
                           [PostureFlag.NO_OWNER])
    assert [a.record.spec.name for a in found] == ["r03999", "r04999", "r05999"]


def test_get(discovery: InventoryDiscovery) -> None:
    discovery.import_rows([{"kind": "api_key", "name": "a"}])
    record = discovery.list(InventoryQuery())[0].record
    assert discovery.get(record.id).record == record
    with pytest.raises(NhiNotFoundError):
        discovery.get("01" + "0" * 24)


def test_ids_follow_the_order_of_the_batch(discovery: InventoryDiscovery) -> None:
    discovery.import_rows([{"kind": "other", "name": f"n{i:03}"} for i in range(300)])
    names = [a.record.spec.name for a in discovery.list(InventoryQuery())]
    assert names == [f"n{i:03}" for i in range(300)]


def test_errors_name_the_row_in_the_batch(discovery: InventoryDiscovery) -> None:
    report = discovery.import_rows([{"kind": "api_key", "name": "a", "created": "x",
                                     "expires": "y"}])
    assert report.errors == (
        RowError(1, "created_at", report.errors[0].message),
        RowError(1, "expires_at", report.errors[1].message),
    )
    assert report.failed == 1
