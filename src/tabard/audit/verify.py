"""Verification of the stored log: the hash chain record by record, and the Merkle tree head
at every checkpoint.

The loop reads ``(seq, entry, hash)`` rows and, per record, compares two header slices and
one SHA-256: no JSON is parsed (the entry's binary header, :mod:`tabard.audit.record`, holds
the number and the predecessor's hash), which is what lets it check well over half a million
records a second. The tree head is folded with a :class:`~tabard.audit.merkle.CompactRange`
only as far as the last checkpoint reaches.

What it reports, naming the first bad record:

- a **gap** in the numbers: the record was deleted;
- an entry whose header number is not its row's: records moved (reordered, inserted);
- an entry whose hash is not the one stored: the record was modified;
- an entry whose predecessor hash is not the previous record's hash: the previous record
  was replaced (content and hash rewritten together) or this one was inserted;
- a tree head that differs from a signed checkpoint: records up to it were rewritten
  (chain and hashes recomputed), which only the signature can reveal;
- a log shorter than a checkpoint: it was truncated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any, Literal

from tabard.audit.checkpoint import Checkpoint
from tabard.audit.merkle import CompactRange
from tabard.audit.record import GENESIS, HASH_SIZE

__all__ = ["Problem", "VerifyReport", "verify_pages", "verify_rows"]

_LEAF = hashlib.sha256(b"\x00")
_PAGE = 4096  # rows checked at once
HEADER = 1 + HASH_SIZE + 8


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong: the record it names (``seq``), a stable ``code`` and a
    sentence."""

    seq: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    records: int
    """Records checked in this run."""
    first_seq: int
    last_seq: int
    checkpoints: int
    """Signed checkpoints whose tree head was compared."""
    problem: Problem | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


Row = tuple[int, bytes, bytes]


def _pages(rows: Iterable[Row]) -> Iterator[list[Row]]:
    it = iter(rows)
    while page := list(islice(it, _PAGE)):
        yield page


def verify_rows(rows: Iterable[Row], checkpoints: Sequence[Checkpoint], *,
                start: CompactRange | None = None, prev: bytes = GENESIS,
                notes: Sequence[str] = ()) -> VerifyReport:
    """Check ``rows`` (in seq order) continuing a log of ``start.size`` records whose last
    hash is ``prev``, comparing the tree head at each of ``checkpoints`` (verified,
    sorted by size, none at or below ``start.size``)."""
    return verify_pages(_pages(rows), checkpoints, start=start, prev=prev, notes=notes)


def verify_pages(pages: Iterable[Sequence[Row]], checkpoints: Sequence[Checkpoint], *,
                 start: CompactRange | None = None, prev: bytes = GENESIS,
                 notes: Sequence[str] = ()) -> VerifyReport:
    """:func:`verify_rows` over rows read a page (a list, any length) at a time, as the
    store reads them: no per-row iteration between the driver and the checks."""
    rng = start.copy() if start is not None else CompactRange()
    base = rng.size
    seq = base
    targets = [cp for cp in checkpoints if cp.tree_size > base]
    checked = 0
    problem: Problem | None = None
    leaf = _LEAF.copy

    # The Merkle tree is folded only up to the last checkpoint; leaves are buffered and
    # handed over in runs (CompactRange.extend hashes aligned runs level by level).
    merkle_until = targets[-1].tree_size if targets else base
    pending: list[bytes] = []
    ti = 0

    def reach(size: int) -> Problem | None:
        nonlocal pending, ti
        while ti < len(targets) and targets[ti].tree_size <= size:
            cp = targets[ti]
            need = cp.tree_size - rng.size
            rng.extend(pending[:need])
            pending = pending[need:]
            if rng.root() != cp.root_hash:
                return Problem(cp.tree_size, "checkpoint_mismatch",
                               f"the records up to {cp.tree_size} are not the ones checkpoint "
                               f"{cp.tree_size} (signed {cp.time.isoformat()}) covers: they "
                               f"were rewritten")
            ti += 1
        if len(pending) >= 65536:
            rng.extend(pending)
            pending = []
        return None

    def slow(page: Sequence[Row]) -> Problem | None:
        """Row by row: finds and names the first problem of ``page``."""
        nonlocal seq, prev, checked, pending
        for row_seq, entry, stored in page:
            seq += 1
            if row_seq != seq:
                code, msg = ("missing", f"record {seq} is missing (deleted)") if row_seq > seq \
                    else ("duplicate", f"record {row_seq} appears twice")
                return Problem(seq, code, msg)
            if entry[1 + HASH_SIZE:9 + HASH_SIZE] != seq.to_bytes(8, "big"):
                moved = int.from_bytes(entry[1 + HASH_SIZE:9 + HASH_SIZE], "big")
                return Problem(seq, "out_of_place",
                               f"record {seq} holds the entry of record {moved} "
                               f"(records were reordered or inserted)")
            h = leaf()
            h.update(entry)
            digest = h.digest()
            if digest != stored:
                return Problem(seq, "modified",
                               f"record {seq} was modified: its content does not match its "
                               f"hash")
            if entry[1:1 + HASH_SIZE] != prev:
                if seq == 1:
                    return Problem(1, "bad_start", "record 1 does not start the chain")
                return Problem(seq - 1, "replaced",
                               f"record {seq - 1} was replaced: record {seq} was chained "
                               f"to a different record {seq - 1}")
            if entry[0] != 1:
                return Problem(seq, "bad_version", f"record {seq} has an unknown format")
            prev = digest
            checked += 1
            if seq <= merkle_until:
                pending.append(digest)
                if seq == targets[ti].tree_size or len(pending) >= 65536:
                    found = reach(seq)
                    if found:
                        checked = found.seq - base
                        return found
        return None

    def fast(page: Sequence[Row]) -> Literal[False] | Problem | None:
        """A whole page at once: each check is one comprehension and one list comparison
        over the page instead of a few interpreted statements per record. ``False`` when a
        check fails: :func:`slow` then finds which record, in the order it checks them."""
        nonlocal seq, prev, checked, pending
        n = len(page)
        seqs, entries, stored = zip(*page, strict=True)
        first = seq + 1
        if seqs != tuple(range(first, first + n)):
            return False
        digests: list[bytes] = []
        add = digests.append
        for e in entries:  # copying a primed hash beats hashing b"\x00" + e
            h = leaf()
            h.update(e)
            add(h.digest())
        if digests != list(stored):
            return False
        links = [prev, *digests[:-1]]
        if [e[:HEADER] for e in entries] != [
                b"\x01" + p + s.to_bytes(8, "big") for p, s in zip(links, seqs, strict=True)]:
            return False
        seq += n
        prev = digests[-1]
        checked += n
        if first <= merkle_until:
            pending += digests[:merkle_until - first + 1]
            found = reach(min(seq, merkle_until))
            if found:
                checked = found.seq - base
                seq = found.seq
                return found
        return None

    for page in pages:
        if not page:
            continue
        result = fast(page)  # changes nothing when it returns False
        problem = slow(page) if result is False else result
        if problem:
            break
    if problem is None:
        last = seq
        if targets and ti < len(targets):
            cp = targets[-1]
            problem = Problem(last + 1, "truncated",
                              f"the log ends at record {last} but checkpoint {cp.tree_size} "
                              f"(signed {cp.time.isoformat()}) covers {cp.tree_size}: records "
                              f"{last + 1}..{cp.tree_size} were removed")
    compared = ti
    return VerifyReport(ok=problem is None, records=checked, first_seq=base + 1,
                        last_seq=base + checked, checkpoints=compared, problem=problem,
                        notes=tuple(notes))
