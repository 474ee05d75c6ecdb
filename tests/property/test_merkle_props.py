"""Property tests: Merkle roots and proofs for arbitrary leaves (RFC 6962)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import CommitmentError
from protocol.merkle import MerkleTree, merkle_root, verify_inclusion

leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=90)
# Repeated leaves can make mirrored subtrees equal, so that a proof replayed at the
# mirrored index verifies honestly; binding to the index is a property of distinct leaves.
distinct_leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=90, unique=True)


@given(leaves=leaf_lists, data=st.data())
def test_every_honest_proof_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(leaves)
    m = data.draw(st.integers(0, len(leaves) - 1))
    verify_inclusion(tree.root, len(leaves), m, leaves[m], tree.proof(m))


@given(leaves=leaf_lists, data=st.data())
def test_a_different_leaf_never_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(leaves)
    m = data.draw(st.integers(0, len(leaves) - 1))
    other = data.draw(st.binary(max_size=40).filter(lambda b: b != leaves[m]))
    with pytest.raises(CommitmentError):
        verify_inclusion(tree.root, len(leaves), m, other, tree.proof(m))


@given(leaves=leaf_lists, extra=st.binary(max_size=40))
def test_appending_a_leaf_changes_the_root(leaves: list[bytes], extra: bytes) -> None:
    assert merkle_root([*leaves, extra]) != merkle_root(leaves)


@given(leaves=distinct_leaf_lists, data=st.data())
def test_a_proof_is_bound_to_its_index(leaves: list[bytes], data: st.DataObject) -> None:
    n = len(leaves)
    tree = MerkleTree(leaves)
    m = data.draw(st.integers(0, n - 1))
    wrong_index = data.draw(st.integers(-2, n + 2).filter(lambda i: i != m))
    wrong_size = data.draw(st.integers(0, 2 * n + 2).filter(lambda s: s != n))
    proof = tree.proof(m)
    # Two positions of one tree never share a left/right pattern, so a wrong index fails.
    with pytest.raises(CommitmentError):
        verify_inclusion(tree.root, n, wrong_index, leaves[m], proof)
    # A wrong size fails unless it gives leaf m the same audit-path pattern (RFC 6962
    # proofs do not bind n alone; pacda signs n_leaves with the root).
    if _sides(m, wrong_size) != _sides(m, n):
        with pytest.raises(CommitmentError):
            verify_inclusion(tree.root, wrong_size, m, leaves[m], proof)


def _sides(m: int, n: int) -> tuple[bool, ...] | None:
    """Left/right pattern of leaf m's audit path in an n-leaf tree (None if m >= n)."""
    if not 0 <= m < n:
        return None
    sides: list[bool] = []
    while n > 1:  # RFC 6962 §2.1.1, from the root down
        k = 1 << ((n - 1).bit_length() - 1)
        sides.append(m < k)
        m, n = (m, k) if m < k else (m - k, n - k)
    return tuple(sides)
