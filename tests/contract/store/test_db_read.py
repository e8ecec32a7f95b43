"""``Database.read`` on SQLite and PostgreSQL: a read runs outside any transaction (one
round trip), while ``begin`` still commits or rolls back as a unit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tabard.store import Database


def in_transaction(db: Database, dbapi: Any) -> bool:
    if db.dialect == "sqlite":
        return bool(dbapi.in_transaction)
    import psycopg.pq

    return bool(dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)


def test_a_read_opens_no_transaction_and_a_connection_does(db: Database) -> None:
    for _ in range(3):  # the pooled connection comes back to each mode in turn
        with db.read() as c:
            assert c.execute(text("SELECT count(*) FROM agent_instances")).scalar() == 0
            assert not in_transaction(db, c.connection.dbapi_connection)
        with db.begin() as c:
            c.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS t (x INTEGER)"))
            c.execute(text("INSERT INTO t VALUES (1)"))
            assert in_transaction(db, c.connection.dbapi_connection)


def test_writes_stay_transactional(db: Database) -> None:
    with db.begin() as c:
        c.execute(text("CREATE TABLE scratch (x INTEGER)"))
    with pytest.raises(RuntimeError), db.begin() as c:
        c.execute(text("INSERT INTO scratch VALUES (1)"))
        raise RuntimeError("undo")
    with db.read() as c:
        assert c.execute(text("SELECT count(*) FROM scratch")).scalar() == 0
