"""Migration 0003 (agents) upgrades, downgrades to 0002 and upgrades again on both backends."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from tabard.store import Database

AGENT_TABLES = {"agents", "agent_events", "agent_changes", "agent_findings",
                "agent_retirement_steps", "agent_residual_use"}


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        assert set(inspect(db.engine).get_table_names()) >= AGENT_TABLES
        with db.engine.begin() as connection:
            config = db.alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        tables = set(inspect(db.engine).get_table_names())
        assert not AGENT_TABLES & tables
        assert "agent_instances" in tables
        db.migrate()
        assert set(inspect(db.engine).get_table_names()) >= AGENT_TABLES
    finally:
        db.dispose()
