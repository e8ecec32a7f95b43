"""The AuthorityStore contract, run against the SQL adapter (SQLite, PostgreSQL) and the fake."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tabard.authority import (
    AuthorityKeyRecord,
    AuthorityNotFoundError,
    AuthorityStateError,
    AuthorityStore,
    KeyType,
)
from tabard.errors import Conflict
from tabard.store import Database, SqlAuthorityStore
from tests.fakes.authority_store import InMemoryAuthorityStore
from tests.support.postgres import backend_url

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthorityStore]:
    if request.param == "memory":
        yield InMemoryAuthorityStore()
        return
    with backend_url(request, tmp_path) as url:
        db = Database(url)
        db.migrate()
        try:
            yield SqlAuthorityStore(db)
        finally:
            db.dispose()


def record(kind: str = "jwt", state: str = "prepared", offset: int = 0) -> AuthorityKeyRecord:
    return AuthorityKeyRecord(
        id=str(uuid.uuid4()), kind=kind, state=state,  # type: ignore[arg-type]
        key_id=f"k-{uuid.uuid4().hex[:12]}", key_type=KeyType.EC_P256,
        public_key_pem=b"-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n",
        created_at=T0 + timedelta(seconds=offset), not_after=T0 + timedelta(hours=24),
        certificate_pem=b"cert" if kind == "x509" else None,
    )


def test_add_list_roundtrip_keeps_every_field(store: AuthorityStore) -> None:
    first, second = record("x509", "active", 0), record("jwt", "prepared", 5)
    store.add_key(second)
    store.add_key(first)
    assert store.list_keys() == [first, second]
    with pytest.raises(Conflict):
        store.add_key(first)


def test_set_state_records_times_and_compare_and_set(store: AuthorityStore) -> None:
    r = record()
    store.add_key(r)
    active = store.set_state(r.id, "active", T0 + timedelta(hours=1), expected="prepared")
    assert active.state == "active" and active.activated_at == T0 + timedelta(hours=1)
    with pytest.raises(AuthorityStateError):
        store.set_state(r.id, "old", T0, expected="prepared")
    retired = store.set_state(r.id, "retired", T0 + timedelta(hours=2))
    assert retired.retired_at == T0 + timedelta(hours=2)
    assert store.list_keys() == [retired]
    with pytest.raises(AuthorityNotFoundError):
        store.set_state("missing", "old", T0)


def test_bundle_sequence_is_atomic(store: AuthorityStore) -> None:
    assert store.bundle_sequence() == 0
    threads = [threading.Thread(target=lambda: [store.bump_bundle_sequence()
                                                for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.bundle_sequence() == 40
    assert store.bump_bundle_sequence() == 41
