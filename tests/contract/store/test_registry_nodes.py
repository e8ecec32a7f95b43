"""The NodeStore contract on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tabard.registry import NodeRecord, node_spiffe_id, parse_selectors
from tabard.spiffe import TrustDomain
from tabard.store import Database, SqlNodeStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TD = TrustDomain("example.org")


@pytest.fixture
def store(database_url: str) -> Iterator[SqlNodeStore]:
    db = Database(database_url)
    db.migrate()
    try:
        yield SqlNodeStore(db)
    finally:
        db.dispose()


def node(offset: int = 0, key: str | None = None, attestor: str = "join_token") -> NodeRecord:
    node_id = uuid.uuid4().hex
    return NodeRecord(id=node_id, spiffe_id=node_spiffe_id(TD, node_id), attestor=attestor,
                      selectors=parse_selectors([f"join_token:{uuid.uuid4().hex}"]),
                      attested_at=T0 + timedelta(seconds=offset),
                      svid_expires_at=T0 + timedelta(hours=1), attestation_key=key)


def test_add_get_list(store: SqlNodeStore) -> None:
    second, first = node(5), node(0)
    store.add(second)
    store.add(first)
    assert store.get(first.id) == first
    assert store.get(uuid.uuid4().hex) is None
    assert store.list() == [first, second]


def test_update_changes_attestation_fields_only(store: SqlNodeStore) -> None:
    original = node()
    store.add(original)
    store.ban(original.id, T0)
    renewed = replace(original, svid_expires_at=T0 + timedelta(hours=2),
                      attested_at=T0 + timedelta(minutes=1),
                      selectors=parse_selectors(["x509pop:subject:cn:host1"]))
    store.update(renewed)
    assert store.get(original.id) == replace(renewed, banned_at=T0)


def test_ban_keeps_the_first_time_and_reports_unknown(store: SqlNodeStore) -> None:
    n = node()
    store.add(n)
    banned = store.ban(n.id, T0 + timedelta(minutes=1))
    assert banned is not None and banned.banned and banned.banned_at == T0 + timedelta(minutes=1)
    again = store.ban(n.id, T0 + timedelta(minutes=9))
    assert again is not None and again.banned_at == T0 + timedelta(minutes=1)
    assert store.ban(uuid.uuid4().hex, T0) is None


def test_find_by_attestation_key(store: SqlNodeStore) -> None:
    keyed = node(key="fingerprint-1", attestor="x509pop")
    store.add(keyed)
    store.add(node())  # nodes without a key never collide
    store.add(node())
    assert store.find_by_attestation_key("x509pop", "fingerprint-1") == keyed
    assert store.find_by_attestation_key("join_token", "fingerprint-1") is None
    assert store.find_by_attestation_key("x509pop", "fingerprint-2") is None
