"""SQL implementation of :class:`tabard.audit.ports.AuditStore`.

Appends take the log's write lock inside their transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-scoped advisory lock), read the head and insert the batch, so
several server processes over one database extend one chain without forks. On SQLite the
transaction commits with ``synchronous=FULL`` (the WAL is fsynced at each commit; the rest
of tabard runs with ``NORMAL``); PostgreSQL commits durably by default. A batch is one
transaction: after a crash it is there entirely or not at all.

Nothing here updates or deletes a record: the tables are append-only by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import IntegrityError

from tabard.audit.merkle import HASH_SIZE
from tabard.audit.ports import ChainHead, NewRecord, StoredCheckpoint
from tabard.audit.record import AuditRecord
from tabard.store.db import Database
from tabard.store.tables import audit_checkpoints, audit_records, audit_subjects

__all__ = ["SqlAuditStore"]

_PG_LOCK = 0x7461626172646175  # "tabardau": the advisory lock of the audit log
_PAGE = 20_000  # rows per scan query (the LIMIT below)

_HEAD = select(audit_records.c.seq, audit_records.c.hash).order_by(
    audit_records.c.seq.desc()).limit(1)


def _sqlite_time(at: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite ``DateTime`` stores it (naive, microseconds)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _same(at: datetime) -> datetime:
    return at


def _record(row: Any) -> AuditRecord:
    return AuditRecord(row.seq, row.recorded_at, row.kind, bytes(row.entry), bytes(row.hash))


def _checkpoint(row: Any) -> StoredCheckpoint:
    frontier = bytes(row.frontier)
    return StoredCheckpoint(
        row.tree_size, bytes(row.root_hash), row.created_at, row.document,
        tuple(frontier[i:i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE)))


class SqlAuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._sqlite = db.dialect == "sqlite"
        mark = "?" if self._sqlite else "%s"
        # constant SQL; only the driver's placeholder style differs
        self._insert_record = ("INSERT INTO audit_records (seq, recorded_at, kind, entry, hash) "
                               "VALUES (?, ?, ?, ?, ?)").replace("?", mark)
        self._insert_subject = "INSERT INTO audit_subjects (subject, seq) VALUES (?, ?)".replace(
            "?", mark)

    # --- appending ----------------------------------------------------------------------

    def append(self, build: Callable[[ChainHead | None], Sequence[NewRecord]]
               ) -> Sequence[NewRecord]:
        for attempt in range(3):
            try:
                with self._db.connect() as c:
                    return self._append(c, build)
            except IntegrityError:
                # another writer took the same numbers without the lock (an older process)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _append(self, c: Connection, build: Callable[[ChainHead | None], Sequence[NewRecord]]
                ) -> Sequence[NewRecord]:
        if self._sqlite:
            c.exec_driver_sql("PRAGMA synchronous=FULL")
            c.commit()
        try:
            with c.begin():
                if self._sqlite:
                    c.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                row = c.execute(_HEAD).first()
                new = build(ChainHead(row.seq, bytes(row.hash)) if row else None)
                if new:
                    # straight to the driver: the rows are plain values already, and
                    # SQLAlchemy's per-parameter processing would cost more than the insert
                    when = _sqlite_time if self._sqlite else _same
                    c.exec_driver_sql(self._insert_record, [
                        (n.record.seq, when(n.record.time), n.record.kind, n.record.entry,
                         n.record.hash) for n in new])
                    subjects = [(s[:512], n.record.seq) for n in new for s in n.subjects]
                    if subjects:
                        c.exec_driver_sql(self._insert_subject, subjects)
            return new
        finally:
            if self._sqlite and not c.closed and not c.invalidated:
                c.rollback()
                c.exec_driver_sql("PRAGMA synchronous=NORMAL")
                c.commit()

    # --- reading ------------------------------------------------------------------------

    def head(self) -> ChainHead | None:
        with self._db.read() as c:
            row = c.execute(_HEAD).first()
        return ChainHead(row.seq, bytes(row.hash)) if row else None

    def scan(self, *, after: int = 0, until: int | None = None
             ) -> Iterator[tuple[int, bytes, bytes]]:
        last = 2**62 if until is None else until
        mark = "?" if self._sqlite else "%s"
        sql = ("SELECT seq, entry, hash FROM audit_records WHERE seq > ? AND seq <= ? "
               "ORDER BY seq LIMIT 20000").replace("?", mark)
        while after < last:
            # the driver's own cursor: plain tuples, no result processing per row
            with self._db.read() as c:
                cursor = c.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(sql, (after, last))
                    rows: list[tuple[int, bytes, bytes]] = cursor.fetchall()
                finally:
                    cursor.close()
            if not rows:
                return
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def records(self, *, after: int = 0, limit: int = 100, kind: str | None = None,
                since: datetime | None = None, until: datetime | None = None
                ) -> list[AuditRecord]:
        t = audit_records
        query = select(t).where(t.c.seq > after)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        if since is not None:
            query = query.where(t.c.recorded_at >= since)
        if until is not None:
            query = query.where(t.c.recorded_at < until)
        with self._db.read() as c:
            rows = c.execute(query.order_by(t.c.seq).limit(limit)).all()
        return [_record(r) for r in rows]

    def find(self, subjects: Sequence[str], *, after: int = 0, limit: int = 1000
             ) -> list[AuditRecord]:
        t, s = audit_records, audit_subjects
        seqs = (select(s.c.seq).where(s.c.subject.in_([x[:512] for x in subjects]),
                                      s.c.seq > after)
                .distinct().order_by(s.c.seq).limit(limit).subquery())
        with self._db.read() as c:
            rows = c.execute(select(t).join(seqs, seqs.c.seq == t.c.seq)
                             .order_by(t.c.seq)).all()
        return [_record(r) for r in rows]

    # --- checkpoints --------------------------------------------------------------------

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        with self._db.begin() as c:
            c.execute(insert(audit_checkpoints).values(
                tree_size=checkpoint.tree_size, root_hash=checkpoint.root_hash,
                created_at=checkpoint.created_at, document=checkpoint.document,
                frontier=b"".join(checkpoint.frontier)))

    def checkpoints(self) -> list[StoredCheckpoint]:
        with self._db.read() as c:
            rows = c.execute(select(audit_checkpoints)
                             .order_by(audit_checkpoints.c.tree_size)).all()
        return [_checkpoint(r) for r in rows]

    def checkpoint(self, tree_size: int | None = None) -> StoredCheckpoint | None:
        t = audit_checkpoints
        query = select(t)
        query = (query.where(t.c.tree_size == tree_size) if tree_size is not None
                 else query.order_by(t.c.tree_size.desc()).limit(1))
        with self._db.read() as c:
            row = c.execute(query).first()
        return _checkpoint(row) if row else None
