"""Audit log throughput, durable appends and verification, each beside a bare driver baseline
doing the same database work in the same run, on SQLite and (when a throwaway cluster can be
started) PostgreSQL.

- **Append** (goal ≥ 20 k records/s, durable): through the public API, as the services use it:
  32 threads calling :meth:`AuditLog.append` (the OAuth server's request threads), 32
  coroutines awaiting :meth:`AuditLog.append_async` on one event loop (the gateway), and
  :meth:`AuditLog.append_many` of 500 events per call. Beside each: a bare insert of the
  same rows (records, trace rows and subject names, as the log stored them) through the driver, in
  transactions as large as the log's could at best be (32 concurrent callers cannot share more
  than 32 records per commit; ``append_many`` commits 500), with the same durability: SQLite
  in WAL mode with ``synchronous=FULL`` on both sides, PostgreSQL with ``fsync``,
  ``synchronous_commit`` and ``full_page_writes`` on (a cluster of its own started with
  PostgreSQL's defaults, checked: the test clusters run without them, and their
  command-line settings cannot be turned back on with ``ALTER SYSTEM``). The ratio is the
  cost of encoding, hashing, chaining and group commit over the insert itself. The baseline
  writes rows as the store does: multi-row INSERTs on SQLite, a binary COPY per table on
  PostgreSQL.
- **Verify** (goal ≥ 500 k records/s): :meth:`AuditLog.verify` of the whole log with a
  checkpoint at its end (numbers, hashes, chain and the Merkle root), beside a bare paged read
  of the same rows through the driver with no checking at all.

Subject and baseline alternate over three rounds and each keeps its median round.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.fakes.authority_store import InMemoryAuthorityStore
from tests.support.postgres import PostgresCluster, PostgresUnavailable, unique_database_name

from bench.harness import Figure
from tabard.audit import AuditEvent, AuditKind, AuditLog, AuditSigner, Decision, What, Who
from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import SystemClock
from tabard.spiffe import TrustDomain
from tabard.store import Database, SqlAuditStore

APPENDS = 6_400  # per append measurement: 200 per concurrent caller
VERIFY_SIZE = 100_000
BATCH = 500
CONCURRENCY = 32
ROUNDS = 3
TD = TrustDomain("bench.example")


def _event(i: int) -> AuditEvent:
    sub = f"spiffe://bench.example/agent/tool/instance/{i % 50}"
    return AuditEvent(
        kind=AuditKind.GATEWAY_DECISION, actor=sub,
        who=Who.of_spiffe_id(sub, user=f"user{i % 100}",
                             chain=(f"user{i % 100}", "spiffe://bench.example/agent/orch/instance/1",
                                    sub)),
        what=What(operation="tools/call", target="refund"),
        decision=Decision(effect="allow", policies=("policy-7",)), details={"n": i})


# --- backends ---------------------------------------------------------------------------------

class Backend(ABC):
    """Fresh databases of one kind, and bare driver connections to them with the log's
    durability settings."""

    name = ""

    @abstractmethod
    def new_url(self) -> str: ...

    @abstractmethod
    def connect(self, url: str) -> Any:
        """A driver connection, durable commits, no transaction open."""

    mark = "?"

    def close(self) -> None:  # noqa: B027 -- a default: only PostgreSQL holds a cluster
        """Release what the backend holds (SQLite files need nothing)."""


class SqliteBackend(Backend):
    name = "SQLite"

    def __init__(self, root: Path) -> None:
        self._root = root
        self._n = 0

    def new_url(self) -> str:
        self._n += 1
        return f"sqlite:///{self._root / f'audit{self._n}.db'}"

    def connect(self, url: str) -> Any:
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn


class PostgresBackend(Backend):
    name = "PostgreSQL"
    mark = "%s"

    def __init__(self) -> None:
        import psycopg

        # the test clusters run without fsync: this one keeps PostgreSQL's durable defaults
        self._cluster = PostgresCluster.start(durable=True)
        with psycopg.connect(self._conninfo(self._cluster.url), autocommit=True) as c:
            settings = {name: c.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                        for name in ("fsync", "synchronous_commit", "full_page_writes")}
        if set(settings.values()) != {"on"}:
            raise PostgresUnavailable(f"the cluster is not durable: {settings}")
        self._names: list[str] = []

    @staticmethod
    def _conninfo(url: str) -> str:
        return url.replace("postgresql+psycopg://", "postgresql://")

    def new_url(self) -> str:
        name = unique_database_name("bench_audit")
        self._names.append(name)
        return self._cluster.create_database(name)

    def connect(self, url: str) -> Any:
        import psycopg

        return psycopg.connect(self._conninfo(url))

    def close(self) -> None:
        for name in self._names:
            with suppress(Exception):
                self._cluster.drop_database(name)
        self._cluster.stop()


# --- the log through its public API -----------------------------------------------------------

@contextmanager
def _log(url: str) -> Iterator[AuditLog]:
    db = Database(url)
    db.migrate()
    clock = SystemClock()
    authority = Authority(TD, MemoryKeyManager(), InMemoryAuthorityStore(), clock)
    authority.ensure_initialized()
    log = AuditLog(SqlAuditStore(db), clock, trust_domain=TD.name,
                   signer=AuditSigner(authority, TD, clock), bundles=authority.bundle,
                   timeout=60)
    try:
        yield log
    finally:
        log.close()
        db.dispose()


def _threads(log: AuditLog, events: list[AuditEvent]) -> float:
    per = len(events) // CONCURRENCY

    def work(k: int) -> None:
        for e in events[k * per:(k + 1) * per]:
            log.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(CONCURRENCY)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * CONCURRENCY / (time.perf_counter() - start)


def _coroutines(log: AuditLog, events: list[AuditEvent]) -> float:
    per = len(events) // CONCURRENCY

    async def work(k: int) -> None:
        for e in events[k * per:(k + 1) * per]:
            await log.append_async(e)

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(work(k) for k in range(CONCURRENCY)))
        return per * CONCURRENCY / (time.perf_counter() - start)

    return asyncio.run(main())


def _batches(log: AuditLog, events: list[AuditEvent]) -> float:
    start = time.perf_counter()
    for i in range(0, len(events), BATCH):
        log.append_many(events[i:i + BATCH])
    return len(events) / (time.perf_counter() - start)


# --- bare driver baselines --------------------------------------------------------------------

Rows = tuple[list[tuple[Any, ...]], dict[int, list[tuple[Any, ...]]], list[tuple[Any, ...]]]


def _stored_rows(backend: Backend, url: str) -> Rows:
    """The records, their trace rows and the trace subject names the log stored, as the
    driver returns them."""
    conn = backend.connect(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT seq, recorded_at, kind, entry, hash FROM audit_records ORDER BY seq")
        records = list(cur.fetchall())
        cur.execute("SELECT subject_id, seq, more FROM audit_trace")
        by_seq: dict[int, list[tuple[Any, ...]]] = {}
        for s in cur.fetchall():
            by_seq.setdefault(s[1], []).append(tuple(s))
        cur.execute("SELECT id, subject FROM audit_subject_names ORDER BY id")
        names = [tuple(r) for r in cur.fetchall()]
        if backend.name != "SQLite":
            conn.rollback()
    finally:
        conn.close()
    return records, by_seq, names


_PG_TYPES = {"audit_records": ("int8", "timestamptz", "varchar", "bytea", "bytea"),
             "audit_trace": ("int8", "int8", "bytea"), "audit_subject_names": ("int8", "varchar")}


def _values(mark: str, columns: int, rows: int) -> str:
    row = "(" + ", ".join([mark] * columns) + ")"
    return ", ".join([row] * rows)


def _bare_insert(backend: Backend, rows: Rows, per_commit: int) -> float:
    """The same rows into a fresh database of the same schema: one transaction of
    ``per_commit`` records at a time, multi-row INSERTs of up to 256 rows (the trace subject
    names, which the log writes when it first meets them, go in with the first)."""
    url = backend.new_url()
    Database(url).migrate()
    records, by_seq, names = rows
    conn = backend.connect(url)
    m = backend.mark

    def insert(cur: Any, table: str, columns: int, values: list[tuple[Any, ...]]) -> None:
        if backend.name != "SQLite" and values:
            with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_PG_TYPES[table.partition(" ")[0]])
                for row in values:
                    copy.write_row(row)
            return
        for i in range(0, len(values), 256):
            chunk = values[i:i + 256]
            cur.execute(f"INSERT INTO {table} VALUES {_values(m, columns, len(chunk))}",
                        [v for r in chunk for v in r])

    try:
        cur = conn.cursor()
        start = time.perf_counter()
        for i in range(0, len(records), per_commit):
            chunk = records[i:i + per_commit]
            if backend.name == "SQLite":
                cur.execute("BEGIN IMMEDIATE")
            insert(cur, "audit_records (seq, recorded_at, kind, entry, hash)", 5, chunk)
            if i == 0:
                insert(cur, "audit_subject_names (id, subject)", 2, names)
            insert(cur, "audit_trace (subject_id, seq, more)", 3,
                   [s for r in chunk for s in by_seq.get(r[0], [])])
            if backend.name == "SQLite":
                cur.execute("COMMIT")
            else:
                conn.commit()
        return len(records) / (time.perf_counter() - start)
    finally:
        conn.close()


def _bare_read(backend: Backend, url: str) -> float:
    conn = backend.connect(url)
    m = backend.mark
    sql = (f"SELECT seq, entry, hash FROM audit_records WHERE seq > {m} "
           f"ORDER BY seq LIMIT 20000")
    try:
        # as the store reads: PostgreSQL in binary
        cur = conn.cursor() if backend.name == "SQLite" else conn.cursor(binary=True)
        start = time.perf_counter()
        n, after = 0, 0
        while True:
            cur.execute(sql, (after,))
            page = cur.fetchall()
            if not page:
                break
            n += len(page)
            after = page[-1][0]
        if backend.name != "SQLite":
            conn.rollback()
        return n / (time.perf_counter() - start)
    finally:
        conn.close()


# --- figures ----------------------------------------------------------------------------------

def _alternate(subject: Callable[[], float], baseline: Callable[[], float]
               ) -> tuple[float, float]:
    subjects, baselines = [], []
    for _ in range(ROUNDS):
        subjects.append(subject())
        baselines.append(baseline())
    return statistics.median(subjects), statistics.median(baselines)


def _absolute(value: float, goal: float) -> str:
    return (f"absolute goal {goal:,.0f}/s: {'met' if value >= goal else 'missed'} on this "
            f"machine (2 shared cores)")


def _backend_figures(backend: Backend) -> list[Figure]:
    events = [_event(i) for i in range(APPENDS)]
    figures: list[Figure] = []
    modes: list[tuple[str, Callable[[AuditLog, list[AuditEvent]], float], int]] = [
        (f"{CONCURRENCY} threads × append", _threads, CONCURRENCY),
        (f"{CONCURRENCY} coroutines × append_async", _coroutines, CONCURRENCY),
        (f"append_many of {BATCH}", _batches, BATCH),
    ]
    for label, drive, per_commit in modes:
        subjects, baselines = [], []
        for _ in range(ROUNDS):
            url = backend.new_url()
            with _log(url) as log:
                subjects.append(drive(log, events))
            baselines.append(_bare_insert(backend, _stored_rows(backend, url), per_commit))
        value, bare = statistics.median(subjects), statistics.median(baselines)
        figures.append(Figure(
            f"Audit append, durable, {label} ({backend.name})", value, "ops/s",
            f"bare driver insert, same rows, {per_commit} per commit", bare, "≥ 20 k/s",
            notes=[_absolute(value, 20_000)]))

    url = backend.new_url()
    with _log(url) as log:
        chunk = [_event(i) for i in range(5000)]
        for _ in range(VERIFY_SIZE // len(chunk)):
            log.append_many(chunk)
        log.checkpoint()

        def verify() -> float:
            start = time.perf_counter()
            report = log.verify()
            rate = report.records / (time.perf_counter() - start)
            assert report.ok and report.checkpoints == 1 and report.records == VERIFY_SIZE
            return rate

        value, bare = _alternate(verify, lambda: _bare_read(backend, url))
    figures.append(Figure(
        f"Audit verify, {VERIFY_SIZE:,} records + 1 checkpoint ({backend.name})", value,
        "ops/s", "bare paged read of the same rows, no checking", bare, "≥ 500 k/s",
        notes=[_absolute(value, 500_000)]))
    return figures


def run() -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        figures += _backend_figures(SqliteBackend(Path(tmp)))
    try:
        pg = PostgresBackend()
    except PostgresUnavailable as exc:
        print(f"audit bench: PostgreSQL skipped ({exc})")
        return figures
    try:
        figures += _backend_figures(pg)
    finally:
        pg.close()
    return figures
