"""RFC 9162 hashing against the published test vectors (the certificate-transparency /
transparency-dev reference leaves, roots and proofs) and a naive recursion of the RFC."""

from __future__ import annotations

import hashlib

import pytest

from tabard.audit import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

ENTRIES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
LEAVES = [leaf_hash(e) for e in ENTRIES]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
CONSISTENCY = [
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 read literally, on leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def test_roots_match_the_published_vectors() -> None:
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for n in range(1, 9):
        assert root_hash(LEAVES[:n]) == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_published_vectors(index: int, size: int,
                                                      path: list[str]) -> None:
    proof = inclusion_proof(LEAVES, index, size)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_published_vectors(first: int, second: int,
                                                        path: list[str]) -> None:
    proof = consistency_proof(LEAVES, first, second)
    assert [p.hex() for p in proof] == path
    assert verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


def test_every_proof_of_small_trees_verifies_and_mangled_ones_do_not() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(40)]
    roots = [naive_mth(leaves[:n]) for n in range(41)]
    for n in range(1, 41):
        assert root_hash(leaves[:n]) == roots[n]
        for i in range(n):
            proof = inclusion_proof(leaves, i, n)
            assert verify_inclusion(leaves[i], i, n, proof, roots[n])
            if n > 1:
                assert not verify_inclusion(leaves[i], i, n, proof, roots[n - 1])
                assert not verify_inclusion(leaves[(i + 1) % n], i, n, proof, roots[n])
                bad = [bytes(32), *proof[1:]]
                assert not verify_inclusion(leaves[i], i, n, bad, roots[n])
        for m in range(0, n + 1):
            proof = consistency_proof(leaves, m, n)
            assert verify_consistency(m, n, roots[m], roots[n], proof)
            if 0 < m < n:
                assert not verify_consistency(m, n, roots[m - 1] if m > 1 else bytes(32),
                                              roots[n], proof)
                assert not verify_consistency(m, n, roots[m], roots[n], proof[:-1])


def test_a_compact_range_gives_the_root_at_every_size_and_resumes() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(3000)]
    rng = CompactRange()
    for n, leaf in enumerate(leaves, 1):
        rng.append(leaf)
        if n in (1, 2, 3, 1023, 1024, 1025, 2047):
            assert rng.root() == naive_mth(leaves[:n])
    bulk = CompactRange()
    bulk.extend(leaves[:5])
    bulk.extend(leaves[5:])  # unaligned start, then 1024-runs
    assert bulk.root() == rng.root() == naive_mth(leaves)
    resumed = CompactRange(bulk.size, bulk.roots)
    resumed.append(leaf_hash(b"next"))
    assert resumed.root() == naive_mth([*leaves, leaf_hash(b"next")])
    with pytest.raises(ValueError):
        CompactRange(3, bulk.roots[:1])
