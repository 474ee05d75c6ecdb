"""RFC 6962 Merkle trees: agreement with a naive recursive reference, tampering, leaves."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from protocol.errors import CommitmentError, InvalidArgument
from protocol.merkle import (
    MerkleTree,
    audit_path_length,
    leaf_hash,
    merkle_root,
    node_hash,
    result_leaf,
    verify_inclusion,
)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (RFC 6962 §2.1), n >= 2."""
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as written in RFC 6962 §2.1."""
    n = len(leaves)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + leaves[0])
    k = _split(n)
    return _sha(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as written in RFC 6962 §2.1.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_sides(m: int, n: int) -> list[str]:
    """Side of each audit-path hash ("L"/"R"), leaf to root, from the RFC recursion."""
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_sides(m, k), "R"]
    return [*ref_sides(m - k, n - k), "L"]


def _leaves(n: int) -> list[bytes]:
    return [b"leaf-%d" % i * (1 + i % 3) for i in range(n)]


def test_hash_primitives_use_the_rfc6962_prefixes() -> None:
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha(b"\x01" + b"L" * 32 + b"R" * 32)
    assert merkle_root([]) == _sha(b"")
    assert MerkleTree([]).n_leaves == 0


def test_known_vector_for_three_leaves() -> None:
    a, b, c = (_sha(b"\x00" + x) for x in (b"a", b"b", b"c"))
    assert merkle_root([b"a", b"b", b"c"]) == _sha(b"\x01" + _sha(b"\x01" + a + b) + c)


@pytest.mark.parametrize("n", range(1, 71))
def test_root_and_every_proof_match_the_rfc_reference(n: int) -> None:
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    assert tree.n_leaves == n
    assert tree.root == ref_mth(leaves) == merkle_root(leaves)
    hashed = MerkleTree.from_leaf_hashes([leaf_hash(x) for x in leaves])
    assert hashed.root == tree.root
    for m in range(n):
        path = tree.proof(m)
        assert path == ref_path(m, leaves)
        assert len(path) == audit_path_length(n, m)
        assert hashed.proof(m) == path
        assert tree.leaf_hash(m) == leaf_hash(leaves[m])
        verify_inclusion(tree.root, n, m, leaves[m], path)


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_tampering_is_rejected(n: int) -> None:
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    root = tree.root
    for m in range(n):
        proof = tree.proof(m)
        for pos in range(len(leaves[m])):
            with pytest.raises(CommitmentError, match="does not lead to the committed root"):
                verify_inclusion(root, n, m, _flip(leaves[m], pos), proof)
        for pos in range(32):
            with pytest.raises(CommitmentError, match="does not lead to the committed root"):
                verify_inclusion(_flip(root, pos), n, m, leaves[m], proof)
        for k in range(len(proof)):
            for pos in (0, 17, 31):
                bad = [*proof[:k], _flip(proof[k], pos), *proof[k + 1 :]]
                with pytest.raises(CommitmentError, match="does not lead to the committed root"):
                    verify_inclusion(root, n, m, leaves[m], bad)
        for other in range(n):
            if other != m and audit_path_length(n, other) == len(proof):
                with pytest.raises(CommitmentError, match="does not lead to the committed root"):
                    verify_inclusion(root, n, other, leaves[m], proof)
        for size in range(m + 1, n + 4):
            if size == n or audit_path_length(size, m) != len(proof):
                continue
            if ref_sides(m, size) == ref_sides(m, n):
                # RFC 6962 proofs do not bind the tree size on their own: the same
                # left/right pattern recomputes the same root.  pacda binds n through
                # the signed root statement (protocol.signing.root_statement).
                verify_inclusion(root, size, m, leaves[m], proof)
            else:
                with pytest.raises(CommitmentError, match="does not lead to the committed root"):
                    verify_inclusion(root, size, m, leaves[m], proof)


def test_wrong_lengths_and_ranges_are_rejected_with_precise_messages() -> None:
    leaves = _leaves(6)
    tree = MerkleTree(leaves)
    root, proof = tree.root, tree.proof(4)
    assert len(proof) == 2  # leaf 4 of 6: sibling 5, then the left subtree of 4
    with pytest.raises(CommitmentError, match="leaf 4 of 6 must have 2 hashes, got 3"):
        verify_inclusion(root, 6, 4, leaves[4], [*proof, proof[0]])
    with pytest.raises(CommitmentError, match="leaf 4 of 6 must have 2 hashes, got 1"):
        verify_inclusion(root, 6, 4, leaves[4], proof[:1])
    with pytest.raises(CommitmentError, match="leaf index 6 out of range for a tree of 6"):
        verify_inclusion(root, 6, 6, leaves[4], proof)
    with pytest.raises(CommitmentError, match="leaf index -1 out of range"):
        verify_inclusion(root, 6, -1, leaves[4], proof)
    with pytest.raises(CommitmentError, match="leaf index 0 out of range for a tree of 0"):
        verify_inclusion(root, 0, 0, leaves[0], [])
    with pytest.raises(CommitmentError, match="entry 1 for leaf 4 is 31 bytes, not 32"):
        verify_inclusion(root, 6, 4, leaves[4], [proof[0], proof[1][:31]])
    with pytest.raises(CommitmentError, match="Merkle root must be 32 bytes, got 33"):
        verify_inclusion(root + b"\x00", 6, 4, leaves[4], proof)
    with pytest.raises(InvalidArgument, match="leaf index 6 out of range for a tree of 6"):
        tree.proof(6)
    with pytest.raises(InvalidArgument, match="leaf hash 1 must be 32 bytes, got 3"):
        MerkleTree.from_leaf_hashes([b"\x00" * 32, b"abc"])


def test_a_leaf_hash_cannot_pose_as_a_leaf() -> None:
    leaves = _leaves(4)
    tree = MerkleTree(leaves)
    # The interior node over leaves 0 and 1, offered as a leaf of a 2-leaf tree.
    inner = node_hash(leaf_hash(leaves[0]), leaf_hash(leaves[1]))
    with pytest.raises(CommitmentError, match="does not lead to the committed root"):
        verify_inclusion(tree.root, 2, 0, inner, [tree.proof(2)[-1]])


def test_result_leaf_layout() -> None:
    digest = bytes(range(32))
    leaf = result_leaf(5, np.array([1.5, -0.25]), digest)
    assert leaf == b"pacda.v1.result\x00" + struct.pack(">Qdd", 5, 1.5, -0.25) + digest
    assert result_leaf(int(np.uint64(2**64 - 1)), np.array([0.0]), digest)[16:24] == b"\xff" * 8
    assert result_leaf(5, np.array([1.5, -0.25], dtype=">f8"), bytes(bytearray(digest))) == leaf


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, np.zeros(2), bytes(32)), r"point_index must lie in \[0, 2\^64\), got -1"),
        ((2**64, np.zeros(2), bytes(32)), r"point_index must lie in \[0, 2\^64\)"),
        ((1.0, np.zeros(2), bytes(32)), "point_index must be an integer, got float"),
        ((True, np.zeros(2), bytes(32)), "point_index must be an integer, got bool"),
        ((0, np.zeros(0), bytes(32)), r"outputs must have shape \(Z,\) with Z >= 1, got \(0,\)"),
        ((0, np.zeros((1, 2)), bytes(32)), r"outputs must have shape \(Z,\)"),
        ((0, np.array(["a"]), bytes(32)), "outputs must be real numbers"),
        ((0, np.zeros(2), bytes(31)), "weight_digest must be 32 bytes, got 31"),
        ((0, np.zeros(2), "00" * 32), r"weight_digest must be 32 bytes, got \?"),
    ],
)
def test_result_leaf_validates(args: tuple[object, object, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        result_leaf(*args)  # type: ignore[arg-type]


def test_a_million_leaves_build_quickly() -> None:
    leaves = [struct.pack(">Q", i) for i in range(1_000_000)]
    tree = MerkleTree(leaves)
    assert tree.n_leaves == 1_000_000
    assert len(tree.proof(0)) == 20  # 2^19 < n <= 2^20
    # The last leaf lies in the right subtree of 475,712 leaves; unpaired nodes move up.
    assert len(tree.proof(999_999)) == audit_path_length(1_000_000, 999_999) == 12
    for m in (0, 524_287, 524_288, 999_998, 999_999):
        verify_inclusion(tree.root, 1_000_000, m, leaves[m], tree.proof(m))
