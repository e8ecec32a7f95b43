"""Migration 0014 (compact trace index) carries a log written under 0010's schema over: the
old records verify, trace finds them through the new index, new appends continue the chain,
and a downgrade gives the old index back."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from tabard.audit import AuditEvent, AuditKind, AuditLog, What, Who, encode_entry, leaf_hash
from tabard.audit.record import GENESIS, prepare
from tabard.clock import FakeClock
from tabard.store import Database, SqlAuditStore
from tabard.store.tables import metadata

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _to(db: Database, revision: str, *, down: bool = False) -> None:
    with db.engine.begin() as connection:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _event(i: int) -> AuditEvent:
    sub = f"spiffe://example.org/agent/tool/instance/{i % 2}"
    return AuditEvent(kind=AuditKind.GATEWAY_DECISION, actor=sub,
                      who=Who.of_spiffe_id(sub, user="alice"),
                      what=What(operation="tools/call", target=f"t{i}"))


def test_an_old_log_verifies_and_traces_after_the_upgrade(database_url: str) -> None:
    db = Database(database_url)
    try:
        _to(db, "0013")
        prev = GENESIS
        with db.engine.begin() as c:  # five records as the 0010 store wrote them
            for seq in range(1, 6):
                p = prepare(_event(seq), T0)
                entry = encode_entry(seq, prev, p.body)
                prev = leaf_hash(entry)
                c.execute(text("INSERT INTO audit_records (seq, recorded_at, kind, entry, hash) "
                               "VALUES (:s, :t, :k, :e, :h)"),
                          {"s": seq, "t": T0, "k": p.kind, "e": entry, "h": prev})
                for subject in p.subjects:
                    c.execute(text("INSERT INTO audit_subjects (subject, seq) VALUES (:x, :s)"),
                              {"x": subject, "s": seq})
        db.migrate()
        assert "audit_subjects" not in inspect(db.engine).get_table_names()
        log = AuditLog(SqlAuditStore(db), FakeClock(T0), trust_domain="example.org")
        try:
            report = log.verify()
            assert report.ok and report.records == 5
            assert [r.seq for r in log.trace(instance="1")] == [1, 3, 5]
            assert log.append(_event(6)).seq == 6
            assert [r.seq for r in log.trace(user="alice")] == [1, 2, 3, 4, 5, 6]
            assert log.verify().records == 6
        finally:
            log.close()
        _to(db, "0013", down=True)
        with db.engine.connect() as c:
            rows = c.execute(text("SELECT seq FROM audit_subjects WHERE subject = :x "
                                  "ORDER BY seq"), {"x": "instance:0"}).scalars().all()
        assert rows == [2, 4, 6]
        db.migrate()
    finally:
        db.dispose()


def test_the_audit_tables_match_the_migrations(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        with db.connect() as c:
            diffs = compare_metadata(MigrationContext.configure(c), metadata)
        assert [d for d in diffs if "audit_" in repr(d)] == []
    finally:
        db.dispose()
