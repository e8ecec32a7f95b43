"""Migration 0006 on SQLite and PostgreSQL: a unique index on ``agent_instances.spiffe_id``
that the lookup by SPIFFE ID uses, kept by the database; it downgrades and upgrades again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

from tabard.store import Database
from tabard.store.tables import agent_instances, metadata

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
INDEX = "ix_agent_instances_spiffe_id"
SPIFFE_ID = "spiffe://example.org/agent/trading/instance/01jd0000000000000000000000"


def row(instance_id: str, pid: int) -> dict[str, object]:
    return {"id": instance_id, "node_id": "a" * 32, "entry_id": "e", "spiffe_id": SPIFFE_ID,
            "agent": "trading", "pid": pid, "start_time": 1.0, "uid": 1, "gid": 1,
            "exe_path": "/bin/a", "exe_sha256": "ab" * 32, "selectors": [],
            "first_seen_at": T0, "last_seen_at": T0}


def indexes(db: Database) -> dict[str, bool]:
    return {str(i["name"]): bool(i["unique"])
            for i in inspect(db.engine).get_indexes("agent_instances")}


def test_the_index_is_unique_and_matches_the_tables(db: Database) -> None:
    assert indexes(db)[INDEX] is True
    with db.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), metadata)
    assert [d for d in diffs if "agent_instances" in repr(d)] == []
    with db.begin() as c:
        c.execute(insert(agent_instances), [row("01jd0000000000000000000001", 1)])
    with pytest.raises(IntegrityError), db.begin() as c:
        c.execute(insert(agent_instances), [row("01jd0000000000000000000002", 2)])


def test_the_lookup_uses_the_index(db: Database) -> None:
    if db.dialect == "sqlite":
        plan_sql = "EXPLAIN QUERY PLAN SELECT id FROM agent_instances WHERE spiffe_id = :s"
    else:
        plan_sql = "EXPLAIN SELECT id FROM agent_instances WHERE spiffe_id = :s"
    with db.connect() as c:
        if db.dialect == "postgresql":
            c.execute(text("SET enable_seqscan = off"))
        plan = " ".join(str(r[-1]) for r in c.execute(text(plan_sql), {"s": SPIFFE_ID}))
    assert INDEX in plan


def test_downgrade_to_0005_and_upgrade_again(db: Database) -> None:
    with db.engine.begin() as connection:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert INDEX not in indexes(db)
    db.migrate()
    assert indexes(db)[INDEX] is True
