"""The InventoryStore contract on SQLite and PostgreSQL: upsert by (source, external_id)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from tabard.clock import FakeClock
from tabard.registry import (
    InventoryQuery,
    InventoryService,
    NhiKind,
    NhiRecord,
    NhiSpec,
    UpsertResult,
)
from tabard.store import Database, SqlInventoryStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def spec(external_id: str, **fields: Any) -> NhiSpec:
    values: dict[str, Any] = {"kind": NhiKind.API_KEY, "name": external_id, "source": "github",
                              "external_id": external_id}
    values.update(fields)
    return NhiSpec(**values)


def record(record_id: str, s: NhiSpec, at: datetime = T0) -> NhiRecord:
    return NhiRecord(id=record_id.ljust(26, "0"), spec=s, first_seen_at=at, updated_at=at)


def test_every_field_round_trips(db: Database) -> None:
    store = SqlInventoryStore(db)
    full = spec("arn:aws:iam::123:user/ci", kind=NhiKind.SERVICE_ACCOUNT, name="ci — déploiement",
                source="aws-iam", owner="alice", created_at=T0 - timedelta(days=400),
                last_used_at=T0 - timedelta(seconds=1, microseconds=500),
                expires_at=T0 + timedelta(days=1), privileges=("s3:Get", "s3:Put"),
                notes="line 1\nline 2")
    bare = spec("k2", kind=NhiKind.OTHER)
    assert store.upsert_many([record("01a", full), record("01b", bare)]) == UpsertResult(2, 0)
    got = store.get("01a".ljust(26, "0"))
    assert got == record("01a", full)
    assert got is not None and got.spec.last_used_at is not None
    assert got.spec.last_used_at.tzinfo is UTC
    assert store.get("01b".ljust(26, "0")) == record("01b", bare)
    assert store.get("01c".ljust(26, "0")) is None


def test_a_known_key_is_updated_never_duplicated(db: Database) -> None:
    store = SqlInventoryStore(db)
    store.upsert_many([record("01a", spec("k1", owner="alice")), record("01b", spec("k2"))])
    later = T0 + timedelta(days=1)
    result = store.upsert_many([
        record("01c", spec("k1", owner="bob", kind=NhiKind.CERTIFICATE, notes="moved"), later),
        record("01d", spec("k3"), later),
        record("01e", spec("k1", source="gitlab"), later),
    ])
    assert result == UpsertResult(created=2, updated=1)
    rows = store.list(InventoryQuery())
    assert [(r.id[:3], r.spec.source, r.spec.external_id) for r in rows] == [
        ("01a", "github", "k1"), ("01b", "github", "k2"), ("01d", "github", "k3"),
        ("01e", "gitlab", "k1")]
    updated = rows[0]
    assert updated.spec.owner == "bob" and updated.spec.kind is NhiKind.CERTIFICATE
    assert updated.spec.notes == "moved"
    assert updated.first_seen_at == T0 and updated.updated_at == later


def test_an_update_clears_facts_the_source_no_longer_reports(db: Database) -> None:
    store = SqlInventoryStore(db)
    store.upsert_many([record("01a", spec("k1", owner="alice", expires_at=T0,
                                          privileges=("p",)))])
    store.upsert_many([record("01b", spec("k1"))])
    got = store.list(InventoryQuery())
    assert len(got) == 1
    assert (got[0].spec.owner, got[0].spec.expires_at, got[0].spec.privileges) == (None, None,
                                                                                   ())


def test_list_filters_and_pages_in_id_order(db: Database) -> None:
    store = SqlInventoryStore(db)
    store.upsert_many([
        record("01a", spec("a", owner="alice")),
        record("01b", spec("b", kind=NhiKind.CERTIFICATE, owner="alice")),
        record("01c", spec("c", source="vault")),
        record("01d", spec("d", owner="bob")),
    ])

    def ids(**query: Any) -> list[str]:
        return [r.id[:3] for r in store.list(InventoryQuery(**query))]

    assert ids() == ["01a", "01b", "01c", "01d"]
    assert ids(owner="alice") == ["01a", "01b"]
    assert ids(kind=NhiKind.CERTIFICATE) == ["01b"]
    assert ids(source="vault") == ["01c"]
    assert ids(kind=NhiKind.API_KEY, owner="alice", source="github") == ["01a"]
    assert ids(limit=2) == ["01a", "01b"]
    assert ids(limit=2, after="01b".ljust(26, "0")) == ["01c", "01d"]
    assert ids(owner="nobody") == []


def test_a_thousand_rows_in_one_batch(db: Database) -> None:
    service = InventoryService(SqlInventoryStore(db), FakeClock(T0))
    specs = [spec(f"key-{i}", privileges=tuple(f"p{j}" for j in range(i % 5)))
             for i in range(1000)]
    assert service.upsert(specs) == UpsertResult(1000, 0)
    assert service.upsert([*specs[:10], spec("new")]) == UpsertResult(1, 10)
    listed = service.list(InventoryQuery(limit=2000))
    assert len(listed) == 1001
    assert [r.spec.external_id for r in listed[:3]] == ["key-0", "key-1", "key-2"]


def test_concurrent_imports_of_one_source_never_duplicate(db: Database) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        service = InventoryService(SqlInventoryStore(db), FakeClock(T0))
        try:
            barrier.wait()
            for _ in range(3):
                service.upsert([spec(f"shared-{i}") for i in range(50)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(SqlInventoryStore(db).list(InventoryQuery())) == 50
