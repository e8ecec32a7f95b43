"""Audit log throughput on SQLite: durable appends and verification, each beside a bare
driver baseline in the same run.

- **Append** (goal ≥ 20 k records/s, durable): :meth:`AuditLog.append` from 32 threads (group
  commit batches them) and :meth:`AuditLog.append_many` of 500 events per call, beside a bare
  ``sqlite3`` ``executemany`` of the same prepared rows (entry bytes, hashes, trace keys) in
  transactions of 500 with the same ``synchronous=FULL``: the cost of encoding, hashing and the
  writer over the insert itself.
- **Verify** (goal ≥ 500 k records/s): :meth:`AuditLog.verify` of the whole log with a
  checkpoint at its end (chain, hashes and the Merkle root), beside a bare read of the same
  rows through the driver with no hashing at all.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from tests.fakes.authority_store import InMemoryAuthorityStore

from bench.harness import Figure
from tabard.audit import AuditEvent, AuditKind, AuditLog, AuditSigner, Decision, What, Who
from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import SystemClock
from tabard.spiffe import TrustDomain
from tabard.store import Database, SqlAuditStore

APPENDS = 30_000
VERIFY_SIZE = 200_000
BATCH = 500
THREADS = 32
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


def _log(path: Path) -> tuple[AuditLog, Database]:
    db = Database(f"sqlite:///{path}")
    db.migrate()
    clock = SystemClock()
    authority = Authority(TD, MemoryKeyManager(), InMemoryAuthorityStore(), clock)
    authority.ensure_initialized()
    return AuditLog(SqlAuditStore(db), clock, trust_domain=TD.name,
                    signer=AuditSigner(authority, TD, clock), bundles=authority.bundle,
                    timeout=60), db


def _threaded(log: AuditLog, events: list[AuditEvent]) -> float:
    per = len(events) // THREADS

    def work(k: int) -> None:
        for e in events[k * per:(k + 1) * per]:
            log.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * THREADS / (time.perf_counter() - start)


def _batched(log: AuditLog, events: list[AuditEvent]) -> float:
    start = time.perf_counter()
    for i in range(0, len(events), BATCH):
        log.append_many(events[i:i + BATCH])
    return len(events) / (time.perf_counter() - start)


def _bare_insert(source: Path, target: Path) -> float:
    """The same rows as the log holds, inserted by the driver alone."""
    src = sqlite3.connect(source)
    rows = src.execute("SELECT seq, recorded_at, kind, entry, hash FROM audit_records "
                       "ORDER BY seq").fetchall()
    subjects = src.execute("SELECT subject, seq FROM audit_subjects").fetchall()
    src.close()
    by_seq: dict[int, list[tuple[str, int]]] = {}
    for s in subjects:
        by_seq.setdefault(s[1], []).append(s)
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE audit_records (seq INTEGER PRIMARY KEY, recorded_at DATETIME, "
               "kind VARCHAR(32), entry BLOB, hash BLOB)")
    db.execute("CREATE INDEX ix_t ON audit_records (recorded_at)")
    db.execute("CREATE TABLE audit_subjects (subject VARCHAR(512), seq INTEGER, "
               "PRIMARY KEY (subject, seq))")
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        chunk = rows[i:i + BATCH]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO audit_records VALUES (?, ?, ?, ?, ?)", chunk)
        db.executemany("INSERT INTO audit_subjects VALUES (?, ?)",
                       [s for r in chunk for s in by_seq.get(r[0], [])])
        db.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - start)
    db.close()
    return rate


def _bare_scan(path: Path) -> float:
    db = sqlite3.connect(path)
    start = time.perf_counter()
    n, after = 0, 0
    while True:
        rows = db.execute("SELECT seq, entry, hash FROM audit_records WHERE seq > ? "
                          "ORDER BY seq LIMIT 20000", (after,)).fetchall()
        if not rows:
            break
        n += len(rows)
        after = rows[-1][0]
    rate = n / (time.perf_counter() - start)
    db.close()
    return rate


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        events = [_event(i) for i in range(APPENDS)]
        log, db = _log(root / "a.db")
        threaded = _threaded(log, events)
        batched = _batched(log, events)
        bare = _bare_insert(root / "a.db", root / "bare.db")
        log.close()
        db.dispose()

        log, db = _log(root / "v.db")
        chunk = [_event(i) for i in range(5000)]
        for _ in range(VERIFY_SIZE // len(chunk)):
            log.append_many(chunk)
        log.checkpoint()
        scans, verifies = [], []
        for _ in range(3):
            scans.append(_bare_scan(root / "v.db"))
            start = time.perf_counter()
            report = log.verify()
            verifies.append(report.records / (time.perf_counter() - start))
            assert report.ok and report.checkpoints == 1
        log.close()
        db.dispose()

    def absolute(value: float, goal: float) -> str:
        return (f"absolute goal {goal:,.0f}/s: {'met' if value >= goal else 'missed'} on this "
                f"machine (2 shared cores)")

    return [
        Figure("Audit append, durable, 32 threads × append (group commit, SQLite)", threaded,
               "ops/s", "bare sqlite3 executemany, same rows, 500 per commit", bare,
               "≥ 20 k/s", notes=[absolute(threaded, 20_000)]),
        Figure("Audit append, durable, append_many of 500 (SQLite)", batched, "ops/s",
               "bare sqlite3 executemany, same rows, 500 per commit", bare, "≥ 20 k/s",
               notes=[absolute(batched, 20_000)]),
        Figure(f"Audit verify, {VERIFY_SIZE:,} records + 1 checkpoint (SQLite)",
               sorted(verifies)[1], "ops/s", "bare read of the same rows, no hashing",
               sorted(scans)[1], "≥ 500 k/s", notes=[absolute(sorted(verifies)[1], 500_000)]),
    ]
