"""An in-memory :class:`~tabard.registry.InventoryStore` for the discovery unit tests; the SQL
one passes the same rules in ``tests/contract/store/test_inventory_store.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from tabard.clock import FakeClock
from tabard.discovery import InventoryDiscovery
from tabard.registry import InventoryQuery, InventoryService, NhiRecord, UpsertResult


class MemoryInventoryStore:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], NhiRecord] = {}

    def upsert_many(self, records: Sequence[NhiRecord]) -> UpsertResult:
        created = 0
        for record in records:
            old = self.records.get(record.spec.key)
            if old is None:
                created += 1
                self.records[record.spec.key] = record
            else:
                self.records[record.spec.key] = replace(old, spec=record.spec,
                                                        updated_at=record.updated_at)
        return UpsertResult(created, len(records) - created)

    def get(self, record_id: str) -> NhiRecord | None:
        return next((r for r in self.records.values() if r.id == record_id), None)

    def list(self, query: InventoryQuery) -> list[NhiRecord]:
        rows = sorted(self.records.values(), key=lambda r: r.id)
        rows = [r for r in rows
                if (query.kind is None or r.spec.kind == query.kind)
                and (query.owner is None or r.spec.owner == query.owner)
                and (query.source is None or r.spec.source == query.source)
                and (query.after is None or r.id > query.after)]
        return rows[:query.limit]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryInventoryStore:
    return MemoryInventoryStore()


@pytest.fixture
def discovery(store: MemoryInventoryStore, clock: FakeClock) -> InventoryDiscovery:
    return InventoryDiscovery(InventoryService(store, clock), clock)
