"""Merkle tree hashing of RFC 9162 §2.1 (https://www.rfc-editor.org/rfc/rfc9162#section-2.1):
tree heads, inclusion proofs and consistency proofs, their verification, and a compact range
that grows one leaf at a time.

Written by hand: no maintained Python library implements the RFC 9162 algorithms (the
certificate-transparency tooling is Go and C++; the Python packages on PyPI are abandoned
or hash differently). The code is small and follows the RFC's own definitions line by line;
``tests/unit/audit/test_merkle.py`` checks it against the published RFC 6962/9162 test
vectors and against a naive recursive implementation of the definitions.

Hashing (RFC 9162 §2.1.1), with SHA-256:

- the hash of the empty tree is ``SHA-256()``;
- a leaf hash is ``SHA-256(0x00 || entry)``;
- an interior node is ``SHA-256(0x01 || left || right)``, where a list of ``n > 1`` leaves
  splits at ``k``, the largest power of two smaller than ``n``.

Leaves are addressed by index from 0; tabard's record ``seq`` ``s`` is leaf ``s - 1``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF = hashlib.sha256(b"\x00")
_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)`` (RFC 9162 §2.1.1)."""
    h = _LEAF.copy()
    h.update(entry)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check(hashes: Iterable[bytes]) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError("a Merkle hash is 32 bytes")


_NODE = hashlib.sha256(b"\x01")


def _perfect_root(level: list[bytes]) -> bytes:
    """Root of a power-of-two number of leaf hashes, level by level (``node_hash`` inlined,
    from a copy of a hash primed with the 0x01 prefix, which beats concatenating: this is
    most of the work of folding a large tree)."""
    node = _NODE.copy
    while len(level) > 1:
        out: list[bytes] = []
        add = out.append
        pairs = iter(level)
        for left in pairs:
            h = node()
            h.update(left)
            h.update(next(pairs))
            add(h.digest())
        level = out
    return level[0]


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes ``leaves`` (RFC 9162 §2.1.1)."""
    rng = CompactRange()
    rng.extend(leaves)
    return rng.root()


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over leaf hashes."""
    n = hi - lo
    if n == 1:
        return leaves[lo]
    if n & (n - 1) == 0:
        return _perfect_root(list(leaves[lo:hi]))
    k = _split(n)
    return node_hash(_subtree(leaves, lo, lo + k), _subtree(leaves, lo + k, hi))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, over leaf hashes."""
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"no leaf {index} in a tree of {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:  # descend, collecting siblings from the root down
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(_subtree(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree(leaves, lo, lo + k))
            lo = lo + k
    proof.reverse()  # the RFC lists them from the leaf up
    return proof


def consistency_proof(leaves: Sequence[bytes], first: int, second: int | None = None
                      ) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1, over leaf hashes."""
    second = len(leaves) if second is None else second
    if not 0 <= first <= second <= len(leaves):
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    return _subproof(leaves, first, 0, second, True)


def _subproof(leaves: Sequence[bytes], m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1."""
    n = hi - lo
    if m == n:
        return [] if whole else [_subtree(leaves, lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, lo, lo + k, whole), _subtree(leaves, lo + k, hi)]
    return [*_subproof(leaves, m - k, lo + k, hi, False), _subtree(leaves, lo, lo + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree of
    ``size`` leaves with root ``root``?"""
    try:
        _check([leaf, root, *proof])
    except ValueError:
        return False
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree of ``second`` leaves with root
    ``second_root`` extends the one of ``first`` leaves with root ``first_root``?"""
    try:
        _check([first_root, second_root, *proof])
    except ValueError:
        return False
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a subtree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class CompactRange:
    """The roots of the perfect subtrees that make up the first ``size`` leaves, largest
    first (one per set bit of ``size``): enough to append leaves and compute the tree head
    at every size in O(log n), without keeping the leaves.

    Folding the roots from the right gives MTH, because RFC 9162 splits every tree at the
    largest power of two below its size.
    """

    __slots__ = ("_roots", "size")

    def __init__(self, size: int = 0, roots: Sequence[bytes] = ()) -> None:
        if size < 0 or len(roots) != bin(size).count("1"):
            raise ValueError(f"a range of {size} leaves has {bin(size).count('1')} roots")
        _check(roots)
        self.size = size
        self._roots = list(roots)

    @property
    def roots(self) -> tuple[bytes, ...]:
        return tuple(self._roots)

    def append(self, leaf: bytes) -> None:
        roots = self._roots
        size = self.size
        h = leaf
        while size & 1:
            h = node_hash(roots.pop(), h)
            size >>= 1
        roots.append(h)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes; runs of 1024 at an aligned position are hashed level by
        level, which is faster than one by one."""
        chunk = 1024
        items = leaves if isinstance(leaves, list) else list(leaves)
        i, n = 0, len(items)
        while i < n and self.size % chunk:
            self.append(items[i])
            i += 1
        while n - i >= chunk:
            self._push(_perfect_root(items[i:i + chunk]), chunk)
            i += chunk
        for leaf in items[i:]:
            self.append(leaf)

    def _push(self, subtree: bytes, width: int) -> None:
        """Append a perfect subtree of ``width`` leaves at an aligned position."""
        roots = self._roots
        size = self.size // width
        h = subtree
        while size & 1:
            h = node_hash(roots.pop(), h)
            size >>= 1
        roots.append(h)
        self.size += width

    def root(self) -> bytes:
        if not self._roots:
            return EMPTY_ROOT
        roots = self._roots
        h = roots[-1]
        for left in reversed(roots[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self._roots)
