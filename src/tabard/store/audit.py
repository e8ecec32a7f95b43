"""SQL implementation of :class:`tabard.audit.ports.AuditStore`.

Appends run on the writer's own driver connection, kept across batches (SQLite: set once to
``synchronous=FULL``, so the WAL is fsynced at each commit; the rest of tabard runs with
``NORMAL``; PostgreSQL commits durably by default). Each batch is one transaction holding the
log's write lock (SQLite: the database's, taken by the first INSERT, or by ``BEGIN
IMMEDIATE`` when the head must be read; PostgreSQL: a transaction-scoped advisory lock):
after a crash it is there entirely or not at all.

The head (number and hash of the last record) is remembered after each commit, so a batch is
two multi-row INSERTs (records, trace rows) and a COMMIT; trace subject names are numbered in
``audit_subject_names`` the first time they appear (a third INSERT and a SELECT), and the
numbers remembered once that transaction commits. ``seq`` is the primary key: if another
process appended in between, the INSERT fails on the duplicate number, nothing is written,
and the batch is chained again on the head read under the lock. Several server processes
over one database therefore extend one chain without forks. After any failure the head is
read again.

Rows go in straight through the driver: on SQLite as multi-row ``INSERT ... VALUES (..),
(..)`` of up to 256 rows (SQLAlchemy's per-parameter processing, and ``executemany``'s
statement per row, each giving up the interpreter lock and waiting to take it back while
other threads encode their records, cost more than the insert itself); on PostgreSQL as a
binary ``COPY`` per table.

Nothing here updates or deletes a record: the tables are append-only by construction.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import PoolProxiedConnection, and_, insert, or_, select
from sqlalchemy.exc import OperationalError

from tabard.audit.merkle import HASH_SIZE
from tabard.audit.ports import ChainHead, NewRecord, StoredCheckpoint
from tabard.audit.record import AuditRecord
from tabard.errors import Unavailable
from tabard.store.db import Database
from tabard.store.tables import (
    audit_checkpoints,
    audit_records,
    audit_subject_names,
    audit_trace,
)

__all__ = ["SqlAuditStore"]

log = logging.getLogger("tabard.store.audit")

_PG_LOCK = 0x7461626172646175  # "tabardau": the advisory lock of the audit log
_UNKNOWN = object()
_PAGE = 20_000  # rows per scan query (the LIMIT below)
_NAMES = 100_000  # trace subject numbers remembered by the writer

_HEAD_SQL = "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
_HEAD = select(audit_records.c.seq, audit_records.c.hash).order_by(
    audit_records.c.seq.desc()).limit(1)


def _sqlite_time(at: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite ``DateTime`` stores it (naive, microseconds)."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(sep=" ", timespec="microseconds")[:26]


def _same(at: datetime) -> datetime:
    return at


def _record(row: Any) -> AuditRecord:
    return AuditRecord(row.seq, row.recorded_at, row.kind, bytes(row.entry), bytes(row.hash))


def _checkpoint(row: Any) -> StoredCheckpoint:
    frontier = bytes(row.frontier)
    return StoredCheckpoint(
        row.tree_size, bytes(row.root_hash), row.created_at, row.document,
        tuple(frontier[i:i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE)))


_ROWS = 256  # rows per multi-row INSERT (5 columns: 1,280 parameters, under every limit)


def _multi_insert(head: str, columns: int, mark: str) -> Callable[[int], str]:
    """``INSERT ... VALUES (..), (..)`` of ``n`` rows. Sizes are powers of two up to
    :data:`_ROWS`, so a driver's statement cache holds every form that is used."""
    row = "(" + ", ".join([mark] * columns) + ")"
    forms = {n: head + ", ".join([row] * n) for n in (1 << k for k in range(_ROWS.bit_length()))}
    return forms.__getitem__


def _insert(cursor: Any, statement: Callable[[int], str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with few statements: one ``execute`` per 256 rows and one per set bit
    of the rest. ``executemany`` runs a statement per row, and the driver gives the
    interpreter lock up and takes it back around each, which under concurrent appenders
    costs more than the insert."""
    i, n = 0, len(rows)
    while i < n:
        size = _ROWS if n - i >= _ROWS else 1 << ((n - i).bit_length() - 1)
        cursor.execute(statement(size), [v for r in rows[i:i + size] for v in r])
        i += size


_MAX_OFFSET = 0xFFFF  # a trace row's offsets are 16-bit
_TRACE_WINDOW = 500  # trace rows read per query


def _postings(key: int, seqs: list[int]) -> Iterator[tuple[int, int, bytes]]:
    """Trace rows of subject ``key`` for the ascending ``seqs``: the first seq and the
    others as big-endian 16-bit offsets from it (a new row past 65,535)."""
    first = seqs[0]
    if seqs[-1] - first <= _MAX_OFFSET:  # always, for batches of up to 65,536 records
        yield key, first, struct.pack(f">{len(seqs) - 1}H", *[q - first for q in seqs[1:]])
        return
    start = 0
    while start < len(seqs):
        first = seqs[start]
        end = start + 1
        while end < len(seqs) and seqs[end] - first <= _MAX_OFFSET:
            end += 1
        rest = [q - first for q in seqs[start + 1:end]]
        yield key, first, struct.pack(f">{len(rest)}H", *rest)
        start = end


def _expand(seq: int, more: bytes) -> list[int]:
    """The seqs a trace row lists."""
    return [seq, *(seq + o for o in struct.unpack(f">{len(more) // 2}H", more))]


_RECORD_COLUMNS = "audit_records (seq, recorded_at, kind, entry, hash)"
_RECORD_TYPES = ("int8", "timestamptz", "varchar", "bytea", "bytea")
_TRACE_COLUMNS = "audit_trace (subject_id, seq, more)"
_TRACE_TYPES = ("int8", "int8", "bytea")


def _copy(cursor: Any, columns: str, types: Sequence[str], rows: list[tuple[Any, ...]]
          ) -> None:
    """PostgreSQL: ``rows`` through one binary ``COPY ... FROM STDIN`` (a few times faster
    than multi-row INSERTs, whose statements the server parses and plans per shape and
    whose parameters it decodes one by one)."""
    if not rows:
        return
    with cursor.copy(f"COPY {columns} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(row)


class SqlAuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._sqlite = db.dialect == "sqlite"
        mark = "?" if self._sqlite else "%s"
        # constant SQL; only the driver's placeholder style and the number of rows differ
        self._insert_record = _multi_insert(
            "INSERT INTO audit_records (seq, recorded_at, kind, entry, hash) VALUES ", 5, mark)
        self._insert_trace = _multi_insert(
            "INSERT INTO audit_trace (subject_id, seq, more) VALUES ", 3, mark)
        self._insert_name = _multi_insert(
            "INSERT INTO audit_subject_names (subject) VALUES ", 1, mark)
        self._name_ids = ("SELECT subject, id FROM audit_subject_names WHERE subject IN ({})"
                          .replace("?", mark))
        self._mark = mark
        self._subject_ids: dict[str, int] = {}
        """Trace subject name -> number, as committed (names recur: the same workloads and
        users are named in record after record)."""
        dbapi: Any = db.engine.dialect.dbapi
        self._dbapi = dbapi
        self._integrity_error: type[Exception] = self._dbapi.IntegrityError
        self._writer: PoolProxiedConnection | None = None
        self._writer_lock = threading.Lock()
        self._head: ChainHead | object | None = _UNKNOWN
        """The head as this writer left it; unknown after a failure and at first."""

    # --- appending ----------------------------------------------------------------------

    def append(self, build: Callable[[ChainHead | None], Sequence[NewRecord]]
               ) -> Sequence[NewRecord]:
        with self._writer_lock:
            for attempt in range(3):
                try:
                    return self._append(build)
                except self._integrity_error:
                    # the remembered head was stale (another process appended): the next
                    # attempt reads it under the lock
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        """The writer's own driver connection, kept across batches (SQLite: with
        ``synchronous=FULL`` set once). Checked out of the engine's pool, so it is made with
        the same settings as every other connection."""
        if self._writer is None:
            raw = self._db.engine.raw_connection()
            driver: Any = raw.driver_connection
            if self._sqlite:
                driver.execute("PRAGMA synchronous=FULL")
            else:
                driver.autocommit = False
            self._writer = raw
        return self._writer.driver_connection

    def _drop_writer(self) -> None:
        raw, self._writer = self._writer, None
        if raw is not None:
            try:
                raw.invalidate()
            except Exception:
                log.debug("dropping the audit writer connection failed", exc_info=True)

    def _append(self, build: Callable[[ChainHead | None], Sequence[NewRecord]]
                ) -> Sequence[NewRecord]:
        try:
            conn = self._connection()
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc
        cursor = conn.cursor()
        head, self._head = self._head, _UNKNOWN
        try:
            # the write lock: SQLite's is taken by the first INSERT (or BEGIN IMMEDIATE), with
            # the busy timeout like any other writer's
            if not self._sqlite:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
            if head is _UNKNOWN:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(_HEAD_SQL)
                row = cursor.fetchone()
                head = ChainHead(row[0], bytes(row[1])) if row else None
            new = build(head)  # type: ignore[arg-type]
            fresh: dict[str, int] = {}  # trace subject names numbered by this transaction
            if new:
                times: dict[datetime, Any] = {}  # the events of one append share a time
                when = _sqlite_time if self._sqlite else _same
                rows = []
                for n in new:
                    r = n.record
                    at = times.get(r.time)
                    if at is None:
                        at = times[r.time] = when(r.time)
                    rows.append((r.seq, at, r.kind, r.entry, r.hash))
                trace = self._trace_rows(cursor, new, fresh)
                if self._sqlite:
                    _insert(cursor, self._insert_record, rows)
                    _insert(cursor, self._insert_trace, trace)
                else:
                    _copy(cursor, _RECORD_COLUMNS, _RECORD_TYPES, rows)
                    _copy(cursor, _TRACE_COLUMNS, _TRACE_TYPES, trace)
            conn.commit()
            if fresh:
                if len(self._subject_ids) + len(fresh) > _NAMES:
                    self._subject_ids.clear()
                self._subject_ids.update(fresh)
            self._head = ChainHead(new[-1].record.seq, new[-1].record.hash) if new else head
            return new
        except BaseException as exc:
            try:
                conn.rollback()
            except Exception:
                self._drop_writer()
            else:
                if not isinstance(exc, self._dbapi.Error) or isinstance(
                        exc, self._dbapi.OperationalError | self._dbapi.InterfaceError):
                    self._drop_writer()
            raise
        finally:
            cursor.close()

    def _trace_rows(self, cursor: Any, new: Sequence[NewRecord], fresh: dict[str, int]
                    ) -> list[tuple[int, int, bytes]]:
        """The trace rows of ``new``: per subject, ``(subject_id, first seq, offsets of the
        others)`` (:func:`_postings`). Names met for the first time are numbered into
        ``fresh``; keys are cut to the column's 512 characters (two long keys may become
        one)."""
        ids = self._subject_ids
        names: set[str] = set()
        for n in new:
            names.update(n.subjects)
        long = any(len(s) > 512 for s in names)
        if long:
            names = {s[:512] for s in names}
        fresh.update(self._number(cursor, [s for s in names if s not in ids]))
        number: Callable[[str], int] = ids.__getitem__ if not fresh else (
            lambda s: fresh.get(s) or ids[s])
        groups: dict[str, list[int]] = {}  # a record's keys are distinct
        for n in new:
            seq = n.record.seq
            for s in n.subjects:
                group = groups.get(s)
                if group is None:
                    groups[s] = [seq]
                else:
                    group.append(seq)
        if long:
            cut: dict[str, set[int]] = {}
            for s, seqs in groups.items():
                cut.setdefault(s[:512], set()).update(seqs)
            groups = {s: sorted(seqs) for s, seqs in cut.items()}
        return [row for s, seqs in groups.items() for row in _postings(number(s), seqs)]

    def _number(self, cursor: Any, names: list[str]) -> dict[str, int]:
        """The numbers of trace subject ``names`` not cached yet, adding the new ones (in
        the append's transaction: they are remembered only once it commits)."""
        if not names:
            return {}
        names.sort()
        ids: dict[str, int] = {}
        for i in range(0, len(names), _ROWS):
            chunk = names[i:i + _ROWS]
            cursor.execute(self._name_ids.format(", ".join([self._mark] * len(chunk))), chunk)
            ids.update((str(name), int(number)) for name, number in cursor.fetchall())
        missing = [(n,) for n in names if n not in ids]
        if missing:
            _insert(cursor, self._insert_name, missing)
            for i in range(0, len(missing), _ROWS):
                chunk = [n for (n,) in missing[i:i + _ROWS]]
                cursor.execute(self._name_ids.format(", ".join([self._mark] * len(chunk))),
                               chunk)
                ids.update((str(name), int(number)) for name, number in cursor.fetchall())
        return ids

    def close(self) -> None:
        """Give the writer's connection back (it is made again on the next append)."""
        with self._writer_lock:
            raw, self._writer = self._writer, None
            if raw is not None:
                raw.close()

    # --- reading ------------------------------------------------------------------------

    def head(self) -> ChainHead | None:
        with self._db.read() as c:
            row = c.execute(_HEAD).first()
        return ChainHead(row.seq, bytes(row.hash)) if row else None

    def scan(self, *, after: int = 0, until: int | None = None
             ) -> Iterator[tuple[int, bytes, bytes]]:
        for page in self.pages(after=after, until=until):
            yield from page

    def pages(self, *, after: int = 0, until: int | None = None
              ) -> Iterator[list[tuple[int, bytes, bytes]]]:
        last = 2**62 if until is None else until
        mark = "?" if self._sqlite else "%s"
        # bounded by LIMIT only: given both ends of the range, PostgreSQL plans a bitmap scan
        # and a sort rather than walking the key in order (three times slower)
        sql = ("SELECT seq, entry, hash FROM audit_records WHERE seq > ? ORDER BY seq "
               "LIMIT ?").replace("?", mark)
        while after < last:
            # the driver's own cursor: plain tuples, no result processing per row; on
            # PostgreSQL in binary (bytea as is, not as hex text: ~2.5 times the rows/s)
            with self._db.read() as c:
                driver: Any = c.connection.driver_connection
                cursor = driver.cursor() if self._sqlite else driver.cursor(binary=True)
                try:
                    want = min(_PAGE, last - after)
                    cursor.execute(sql, (after, want))
                    rows: list[tuple[int, bytes, bytes]] = cursor.fetchall()
                finally:
                    cursor.close()
            if rows and rows[-1][0] > last:  # numbers missing below ``until``
                rows = [r for r in rows if r[0] <= last]
            if not rows:
                return
            yield rows
            if len(rows) < want:
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
        """Trace rows are read in order of their first seq (keyset pages); a row starting
        at or before ``after`` may still list later records, hence the window before it.
        Once a row starts past the ``limit``-th record found, nothing earlier is missing."""
        t, s, n = audit_records, audit_trace, audit_subject_names
        with self._db.read() as c:
            ids = list(c.execute(select(n.c.id).where(
                n.c.subject.in_([x[:512] for x in subjects]))).scalars())
            if not ids:
                return []
            found: set[int] = set()
            last_seq, last_id = max(after - _MAX_OFFSET, 0) - 1, 2**62
            while True:
                rows = c.execute(
                    select(s.c.seq, s.c.subject_id, s.c.more)
                    .where(s.c.subject_id.in_(ids),
                           or_(s.c.seq > last_seq,
                               and_(s.c.seq == last_seq, s.c.subject_id > last_id)))
                    .order_by(s.c.seq, s.c.subject_id).limit(_TRACE_WINDOW)).all()
                for seq, _, more in rows:
                    found.update(q for q in _expand(seq, bytes(more)) if q > after)
                if len(rows) < _TRACE_WINDOW:
                    break
                last_seq, last_id = rows[-1][0], rows[-1][1]
                if len(found) >= limit and last_seq > sorted(found)[limit - 1]:
                    break
            wanted = sorted(found)[:limit]
            records: list[AuditRecord] = []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                records += [_record(r) for r in c.execute(
                    select(t).where(t.c.seq.in_(chunk)).order_by(t.c.seq)).all()]
        return records

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
