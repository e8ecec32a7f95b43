"""The JoinTokenStore contract on SQLite and PostgreSQL: single use, expiry, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from tabard.attestation import JoinTokenRecord, join_token_digest
from tabard.store import Database, SqlJoinTokenStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def token(name: str, ttl: timedelta = timedelta(minutes=10)) -> JoinTokenRecord:
    return JoinTokenRecord(id=name.ljust(32, "0"), digest=join_token_digest(name),
                           created_at=T0, expires_at=T0 + ttl)


def test_a_token_is_consumed_once(db: Database) -> None:
    store = SqlJoinTokenStore(db)
    record = token("one")
    store.add(record)
    first = store.consume(record.digest, T0 + timedelta(minutes=1))
    assert first.outcome == "consumed"
    assert first.record is not None and first.record.id == record.id
    assert first.record.used_at == T0 + timedelta(minutes=1)
    again = store.consume(record.digest, T0 + timedelta(minutes=2))
    assert again.outcome == "used"


def test_expired_and_unknown_tokens_are_not_consumed(db: Database) -> None:
    store = SqlJoinTokenStore(db)
    record = token("short", timedelta(minutes=1))
    store.add(record)
    assert store.consume(record.digest, T0 + timedelta(minutes=1)).outcome == "expired"
    assert store.consume(record.digest, T0 + timedelta(minutes=5)).outcome == "expired"
    assert store.consume(join_token_digest("never issued"), T0).outcome == "unknown"


def test_concurrent_consumers_have_exactly_one_winner(db: Database) -> None:
    record = token("raced")
    SqlJoinTokenStore(db).add(record)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def consume() -> None:
        store = SqlJoinTokenStore(db)  # one store per thread, each on its own connection
        barrier.wait()
        outcomes.append(store.consume(record.digest, T0 + timedelta(seconds=5)).outcome)

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["consumed"] + ["used"] * 5
