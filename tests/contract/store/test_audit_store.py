"""The audit log over SQLite and PostgreSQL: appends chain, checkpoints verify offline with
the bundle alone, and tampering straight in the database (edit, delete, reorder, insert,
truncate, a consistent rewrite) is detected with the first bad record named."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tabard.audit import (
    AuditEvent,
    AuditKind,
    AuditLog,
    AuditSigner,
    AuditUnavailableError,
    CheckpointError,
    Decision,
    What,
    Who,
    encode_entry,
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import FakeClock
from tabard.spiffe import Bundle, TrustDomain
from tabard.store import Database, SqlAuditStore
from tests.fakes.authority_store import InMemoryAuthorityStore

TD = TrustDomain("example.org")
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def authority(clock: FakeClock, td: TrustDomain = TD) -> Authority:
    a = Authority(td, MemoryKeyManager(), InMemoryAuthorityStore(), clock)
    a.ensure_initialized()
    return a


class Env:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = FakeClock(T0)
        self.authority = authority(self.clock)
        self.log = AuditLog(SqlAuditStore(db), self.clock, trust_domain=TD.name,
                            signer=AuditSigner(self.authority, TD, self.clock),
                            bundles=self.authority.bundle, timeout=20)

    def fill(self, n: int, start: int = 0) -> None:
        self.log.append_many([event(i) for i in range(start, start + n)])

    def sql(self, statement: str, **params: object) -> None:
        with self.db.begin() as c:
            c.execute(text(statement), params)

    def row(self, seq: int) -> tuple[bytes, bytes]:
        with self.db.connect() as c:
            r = c.execute(text("SELECT entry, hash FROM audit_records WHERE seq = :s"),
                          {"s": seq}).one()
        return bytes(r.entry), bytes(r.hash)


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    e = Env(db)
    try:
        yield e
    finally:
        e.log.close()


def event(i: int) -> AuditEvent:
    sub = f"spiffe://example.org/agent/tool/instance/{i % 3}"
    return AuditEvent(
        kind=AuditKind.GATEWAY_DECISION, actor=sub,
        who=Who.of_spiffe_id(sub, user="alice",
                             chain=("alice", "spiffe://example.org/agent/orch/instance/9", sub)),
        what=What(operation="tools/call", target=f"tool-{i}"),
        decision=Decision(effect="allow", policies=("p1",)), details={"i": i})


def test_appends_chain_and_verify_and_trace_follows_delegation(env: Env) -> None:
    first = env.log.append(event(0))
    assert first.seq == 1 and first.intact()
    env.fill(9, 1)
    report = env.log.verify()
    assert report.ok and report.records == 10
    assert len(env.log.trace(agent="orch")) == 10  # the orchestrator is in every chain
    assert [r.seq for r in env.log.trace(instance="1")] == [2, 5, 8]
    assert len(env.log.trace(user="alice")) == 10
    assert env.log.records(after=8)[0].event().what.target == "tool-8"
    assert [r.seq for r in env.log.export(since=T0)] == list(range(1, 11))
    assert list(env.log.export(since=T0 + timedelta(seconds=1))) == []


def test_concurrent_appends_share_commits_and_keep_one_chain(env: Env) -> None:
    def work(k: int) -> None:
        for i in range(25):
            env.log.append(event(k * 100 + i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = env.log.verify()
    assert report.ok and report.records == 200


def test_a_checkpoint_verifies_offline_with_the_bundle_alone(env: Env) -> None:
    env.fill(37)
    cp = env.log.checkpoint()
    assert cp.tree_size == 37
    pem = env.authority.bundle().x509_pem().encode()
    offline = verify_checkpoint(cp.document, Bundle.from_pem(TD, pem))
    assert offline.root_hash == cp.root_hash and offline.tree_size == 37
    other = authority(env.clock).bundle()  # another CA of the same trust domain name
    with pytest.raises(CheckpointError, match="does not chain"):
        verify_checkpoint(cp.document, other)
    with pytest.raises(CheckpointError):
        verify_checkpoint(cp.document[:-4] + "AAAA", Bundle.from_pem(TD, pem))
    # nothing new: the same checkpoint; more records: a consistent larger one
    assert env.log.checkpoint().tree_size == 37
    env.fill(30, 37)
    env.clock.advance(timedelta(minutes=40))  # past the audit SVID's half-life: a new key
    second = env.log.checkpoint()
    assert second.tree_size == 67
    proof = env.log.consistency_proof(37, 67)
    assert verify_consistency(37, 67, cp.root_hash, second.root_hash, list(proof.path))
    inc = env.log.inclusion_proof(12)
    assert inc.root_hash == second.root_hash
    assert verify_inclusion(inc.leaf_hash, 11, 67, list(inc.path), second.root_hash)
    assert env.log.verify().checkpoints == 2
    report = env.log.verify(from_checkpoint=True)
    assert report.ok and report.records == 0


def _edit(env: Env) -> int:
    entry, _ = env.row(7)
    env.sql("UPDATE audit_records SET entry = :e WHERE seq = 7",
            e=entry.replace(b'"allow"', b'"deny!"'))
    return 7


def _edit_and_rehash(env: Env) -> int:
    entry, _ = env.row(7)
    forged = entry.replace(b'"allow"', b'"deny!"')
    env.sql("UPDATE audit_records SET entry = :e, hash = :h WHERE seq = 7",
            e=forged, h=leaf_hash(forged))
    return 7


def _delete(env: Env) -> int:
    env.sql("DELETE FROM audit_records WHERE seq = 7")
    return 7


def _reorder(env: Env) -> int:
    (e7, h7), (e8, h8) = env.row(7), env.row(8)
    env.sql("UPDATE audit_records SET entry = :e, hash = :h WHERE seq = 7", e=e8, h=h8)
    env.sql("UPDATE audit_records SET entry = :e, hash = :h WHERE seq = 8", e=e7, h=h7)
    return 7


def _insert(env: Env) -> int:
    _, h6 = env.row(6)
    env.sql("UPDATE audit_records SET seq = -seq WHERE seq >= 7")
    env.sql("UPDATE audit_records SET seq = 1 - seq WHERE seq < 0")
    forged = encode_entry(7, h6, b'{"kind":"forged"}')
    env.sql("INSERT INTO audit_records (seq, recorded_at, kind, entry, hash) "
            "VALUES (7, :t, 'forged', :e, :h)", t=T0, e=forged, h=leaf_hash(forged))
    return 8  # the forged row links fine; the record after it is out of place


def _rewrite(env: Env) -> int:
    """Rewrite records 7.. with a fully recomputed chain: only the checkpoint can tell."""
    _, prev = env.row(6)
    for seq in range(7, 21):
        entry, _ = env.row(seq)
        forged = encode_entry(seq, prev, entry[41:].replace(b'"allow"', b'"deny!"'))
        prev = leaf_hash(forged)
        env.sql("UPDATE audit_records SET entry = :e, hash = :h WHERE seq = :s",
                e=forged, h=prev, s=seq)
    return 20


def _truncate(env: Env) -> int:
    env.sql("DELETE FROM audit_records WHERE seq > 15")
    return 16


TAMPERING: dict[str, tuple[Callable[[Env], int], str]] = {
    "edit": (_edit, "modified"),
    "edit_and_rehash": (_edit_and_rehash, "replaced"),
    "delete": (_delete, "missing"),
    "reorder": (_reorder, "out_of_place"),
    "insert": (_insert, "out_of_place"),
    "rewrite": (_rewrite, "checkpoint_mismatch"),
    "truncate": (_truncate, "truncated"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_in_the_database_is_detected_and_named(env: Env, kind: str) -> None:
    env.fill(20)
    env.log.checkpoint()
    assert env.log.verify().ok
    tamper, code = TAMPERING[kind]
    seq = tamper(env)
    report = env.log.verify()
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.code, report.problem.seq) == (code, seq), report.problem


def test_a_checkpoint_is_refused_over_a_broken_log(env: Env) -> None:
    env.fill(10)
    _edit(env)
    with pytest.raises(CheckpointError, match="record 7 was modified"):
        env.log.checkpoint()


def test_an_unwritable_store_refuses_appends_until_it_recovers(env: Env) -> None:
    env.fill(3)
    if env.db.dialect == "sqlite":
        env.sql("CREATE TRIGGER audit_block BEFORE INSERT ON audit_records "
                "BEGIN SELECT RAISE(ABORT, 'audit store is read-only'); END")
        unblock = "DROP TRIGGER audit_block"
    else:
        env.sql("CREATE FUNCTION audit_block() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit store is read-only'; END $$")
        env.sql("CREATE TRIGGER audit_block BEFORE INSERT ON audit_records "
                "FOR EACH ROW EXECUTE FUNCTION audit_block()")
        unblock = "DROP TRIGGER audit_block ON audit_records"
    with pytest.raises(AuditUnavailableError, match="cannot be written"):
        env.log.append(event(99))
    env.sql(unblock)
    assert env.log.append(event(100)).seq == 4
    assert env.log.verify().ok


def test_subjects_longer_than_the_index_column_are_cut_without_colliding(env: Env) -> None:
    long_user = "u" * 600
    record = env.log.append(AuditEvent(
        kind=AuditKind.APPROVAL, actor="ops", what=What(operation="approve"),
        who=Who(user=long_user, chain=(long_user + "-other",))))
    assert [r.seq for r in env.log.trace(user=long_user)] == [record.seq]


def test_two_writers_over_one_database_extend_one_chain(env: Env) -> None:
    # each remembers the head it wrote; the other's appends make that stale, and the
    # duplicate number sends the batch back to be chained on the head read under the lock
    other = AuditLog(SqlAuditStore(env.db), env.clock, trust_domain=TD.name, timeout=20)
    try:
        for i in range(6):
            env.fill(2, 10 * i)
            assert other.append_many([event(10 * i + 5)])[0].seq == 3 * i + 3
    finally:
        other.close()
    report = env.log.verify()
    assert report.ok and report.records == 18


def test_trace_pages_through_batches_with_after_and_limit(env: Env,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # trace rows list a batch's records per subject; read two rows per query here
    monkeypatch.setattr("tabard.store.audit._TRACE_WINDOW", 2)
    for start in range(0, 90, 30):
        env.fill(30, start)
    env.log.append(event(1))  # a batch of one
    every = list(range(1, 92))
    ones = [s for s in every if (s - 1) % 3 == 1 or s == 91]  # event(i) names instance i % 3
    assert [r.seq for r in env.log.trace(agent="orch", limit=10_000)] == every
    assert [r.seq for r in env.log.trace(instance="1", after=40, limit=7)] == [
        s for s in ones if s > 40][:7]
    assert [r.seq for r in env.log.trace(instance="1", after=88)] == [89, 91]
    assert env.log.trace(user="nobody") == []


def test_trace_rows_hold_16_bit_offsets_and_split_past_them() -> None:
    from tabard.store.audit import _expand, _postings

    seqs = [5, 6, 9, 5 + 65535, 5 + 65536, 200_000]
    rows = list(_postings(7, seqs))
    assert [(k, first) for k, first, _ in rows] == [(7, 5), (7, 5 + 65536), (7, 200_000)]
    assert [q for _, first, more in rows for q in _expand(first, more)] == seqs
