"""Verification checks a page of rows at once and falls back to a row-by-row pass to name the
first problem: every kind of tampering, on either side of a page boundary and across a
checkpoint, is named exactly as the row-by-row rules say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tabard.audit import encode_entry, leaf_hash
from tabard.audit.checkpoint import Checkpoint
from tabard.audit.merkle import CompactRange, root_hash
from tabard.audit.record import GENESIS
from tabard.audit.verify import _PAGE, verify_rows

Row = tuple[int, bytes, bytes]
N = 2 * _PAGE + 100


def chain(n: int, first: int = 1, prev: bytes = GENESIS) -> list[Row]:
    rows = []
    for seq in range(first, first + n):
        entry = encode_entry(seq, prev, b'{"n":%d}' % seq)
        prev = leaf_hash(entry)
        rows.append((seq, entry, prev))
    return rows


ROWS = chain(N)


def checkpoint(size: int, rows: list[Row] = ROWS) -> Checkpoint:
    return Checkpoint("td", size, root_hash([h for _, _, h in rows[:size]]), rows[size - 1][2],
                      datetime(2026, 1, 1, tzinfo=UTC), "")


def test_an_intact_log_verifies_with_every_checkpoint() -> None:
    cps = [checkpoint(7), checkpoint(_PAGE), checkpoint(_PAGE + 1), checkpoint(N)]
    report = verify_rows(iter(ROWS), cps)
    assert report.ok and report.records == N and report.checkpoints == 4


def test_continuing_from_a_checkpoint() -> None:
    start = CompactRange()
    start.extend([h for _, _, h in ROWS[:_PAGE + 3]])
    report = verify_rows(ROWS[_PAGE + 3:], [checkpoint(N)], start=start,
                         prev=ROWS[_PAGE + 2][2])
    assert report.ok and report.records == N - _PAGE - 3 and report.first_seq == _PAGE + 4


@pytest.mark.parametrize("at", [1, 2, _PAGE, _PAGE + 1, N])
def test_each_tampering_is_named(at: int) -> None:
    i = at - 1
    rows = list(ROWS)

    deleted = rows[:i] + rows[i + 1:]
    problem = verify_rows(deleted, []).problem
    if at == N:  # the last record gone looks like a shorter log, unless a checkpoint says
        assert problem is None
        problem = verify_rows(deleted, [checkpoint(N)]).problem
        assert problem and (problem.code, problem.seq) == ("truncated", N)
    else:
        assert problem and (problem.code, problem.seq) == ("missing", at)

    seq, entry, stored = rows[i]
    edited = [*rows[:i], (seq, entry[:-2] + b"9}", stored), *rows[i + 1:]]
    problem = verify_rows(edited, []).problem
    assert problem and (problem.code, problem.seq) == ("modified", at)

    # replaced: content and hash rewritten together; the next record names it
    new_entry = entry[:-2] + b"9}"
    replaced = [*rows[:i], (seq, new_entry, leaf_hash(new_entry)), *rows[i + 1:]]
    problem = verify_rows(replaced, []).problem
    if at == N:
        assert problem is None
    else:
        assert problem and (problem.code, problem.seq) == ("replaced", at)

    if at < N:
        swapped = [*rows[:i], (seq, rows[i + 1][1], rows[i + 1][2]),
                   (seq + 1, entry, stored), *rows[i + 2:]]
        problem = verify_rows(swapped, []).problem
        assert problem and (problem.code, problem.seq) == ("out_of_place", at)


def test_a_consistent_rewrite_is_caught_by_the_checkpoint_only() -> None:
    cut = _PAGE + 10
    rewritten = ROWS[:cut - 1] + chain(N - cut + 1, cut, ROWS[cut - 2][2])
    changed = rewritten[cut - 1]
    rewritten[cut - 1] = (cut, changed[1][:-1] + b" }", leaf_hash(changed[1][:-1] + b" }"))
    rewritten[cut - 1:] = [rewritten[cut - 1], *chain(N - cut, cut + 1, rewritten[cut - 1][2])]
    assert verify_rows(rewritten, []).ok
    report = verify_rows(rewritten, [checkpoint(cut - 1), checkpoint(N - 5)])
    assert report.problem and (report.problem.code, report.problem.seq) == (
        "checkpoint_mismatch", N - 5)
    assert report.checkpoints == 1 and report.records == N - 5
