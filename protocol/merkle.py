"""RFC 6962 Merkle trees over challenge results, with inclusion proofs.

The Prover commits to every challenge result by a Merkle root (docs/design.md §2,
step 4; ``ResultRoot.merkle_root`` in ``protos/pacda/v1/prover.proto``).
Hashing follows RFC 6962 §2.1 (Certificate Transparency) with SHA-256:

* leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``
  — the two prefixes separate leaves from nodes, so no interior node can be
  passed off as a leaf (second-preimage resistance);
* ``MTH(D[n])`` splits at ``k``, the largest power of two strictly below ``n``;
* the audit path of leaf ``m`` is ``PATH(m, D[n])`` (RFC 6962 §2.1.1), listed
  from the leaf's sibling up to the child of the root, and is checked with the
  algorithm of RFC 9162 §2.1.3.2.

Building level by level (pair adjacent nodes, carry an unpaired last node up
unchanged) gives exactly the RFC 6962 tree; levels are kept as contiguous
``bytes`` of 32-byte hashes so a million leaves cost 64 MB and a few seconds.

The leaf of challenge point ``i`` is :func:`result_leaf`::

    "pacda.v1.result\\x00" || u64be(i) || outputs as float64 big-endian (Z values)
                         || weight digest (32 bytes, protocol.digests.weight_digest)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from protocol.errors import CommitmentError, InvalidArgument

__all__ = [
    "HASH_BYTES",
    "RESULT_DOMAIN",
    "MerkleTree",
    "audit_path_length",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "result_leaf",
    "verify_inclusion",
]

HASH_BYTES = 32
RESULT_DOMAIN = b"pacda.v1.result\x00"
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_U64_MAX = 2**64 - 1


def result_leaf(point_index: int, outputs: NDArray[np.float64], weight_digest: bytes) -> bytes:
    """The Merkle leaf of one challenge result (module docstring).

    Args:
        point_index: the challenge point, ``0 <= i < 2^64`` (pair k has points 2k, 2k+1).
        outputs: float64 ``(Z,)``, Z >= 1, the clipped model outputs at that point.
        weight_digest: 32-byte SHA-256 of the trained weights.

    Returns:
        ``len(RESULT_DOMAIN) + 8 + 8 Z + 32`` bytes.

    Raises:
        InvalidArgument: index out of range, outputs not a non-empty 1-D real
            array, or a digest that is not 32 bytes.
    """
    if isinstance(point_index, bool) or not isinstance(point_index, int | np.integer):
        raise InvalidArgument(f"point_index must be an integer, got {type(point_index).__name__}")
    if not 0 <= int(point_index) <= _U64_MAX:
        raise InvalidArgument(f"point_index must lie in [0, 2^64), got {point_index}")
    arr = np.asarray(outputs)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidArgument(f"outputs must have shape (Z,) with Z >= 1, got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise InvalidArgument(f"outputs must be real numbers, got dtype {arr.dtype}")
    if not isinstance(weight_digest, bytes | bytearray) or len(weight_digest) != HASH_BYTES:
        size = len(weight_digest) if isinstance(weight_digest, bytes | bytearray) else "?"
        raise InvalidArgument(f"weight_digest must be {HASH_BYTES} bytes, got {size}")
    return (
        RESULT_DOMAIN
        + struct.pack(">Q", int(point_index))
        + np.ascontiguousarray(arr, dtype=">f8").tobytes()
        + bytes(weight_digest)
    )


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash ``SHA-256(0x00 || leaf)`` (32 bytes)."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1 interior node hash ``SHA-256(0x01 || left || right)`` (32 bytes)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _next_level(level: bytes) -> bytes:
    """Hash adjacent pairs of a level; an unpaired last node moves up unchanged."""
    count = len(level) // HASH_BYTES
    view = memoryview(level)
    sha = hashlib.sha256
    step = 2 * HASH_BYTES
    parts = [
        sha(_NODE_PREFIX + view[i : i + step]).digest() for i in range(0, (count // 2) * step, step)
    ]
    if count % 2:
        parts.append(level[-HASH_BYTES:])
    return b"".join(parts)


def audit_path_length(n_leaves: int, index: int) -> int:
    """Length of ``PATH(index, D[n_leaves])`` (RFC 6962 §2.1.1).

    Raises:
        InvalidArgument: ``index`` is not in ``[0, n_leaves)``.
    """
    if not 0 <= index < n_leaves:
        raise InvalidArgument(f"leaf index {index} out of range for a tree of {n_leaves} leaves")
    length, i, size = 0, index, n_leaves
    while size > 1:
        if i % 2 == 1 or i + 1 < size:
            length += 1
        i //= 2
        size = (size + 1) // 2
    return length


class MerkleTree:
    """An RFC 6962 Merkle tree that keeps every level's hashes (not the leaves).

    Args:
        leaves: the leaf byte strings ``D[0:n]`` (e.g. :func:`result_leaf` values).
            An empty tree has the RFC 6962 root ``SHA-256("")`` and no proofs.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        sha = hashlib.sha256
        self._init_levels(b"".join(sha(_LEAF_PREFIX + leaf).digest() for leaf in leaves))

    @classmethod
    def from_leaf_hashes(cls, hashes: Sequence[bytes]) -> MerkleTree:
        """Build from already computed leaf hashes (each 32 bytes, see :func:`leaf_hash`).

        Raises:
            InvalidArgument: a hash is not 32 bytes.
        """
        for i, h in enumerate(hashes):
            if len(h) != HASH_BYTES:
                raise InvalidArgument(f"leaf hash {i} must be {HASH_BYTES} bytes, got {len(h)}")
        tree = cls.__new__(cls)
        tree._init_levels(b"".join(hashes))
        return tree

    def _init_levels(self, leaf_level: bytes) -> None:
        self._levels = [leaf_level]
        while len(self._levels[-1]) > HASH_BYTES:
            self._levels.append(_next_level(self._levels[-1]))

    @property
    def n_leaves(self) -> int:
        """Number of leaves n."""
        return len(self._levels[0]) // HASH_BYTES

    @property
    def root(self) -> bytes:
        """``MTH(D[n])``, 32 bytes (``SHA-256("")`` for n = 0, RFC 6962 §2.1)."""
        if self.n_leaves == 0:
            return hashlib.sha256(b"").digest()
        return self._levels[-1]

    def leaf_hash(self, index: int) -> bytes:
        """The stored leaf hash of leaf ``index``."""
        audit_path_length(self.n_leaves, index)
        return self._levels[0][index * HASH_BYTES : (index + 1) * HASH_BYTES]

    def proof(self, index: int) -> list[bytes]:
        """Audit path ``PATH(index, D[n])`` of RFC 6962 §2.1.1, leaf to root.

        Raises:
            InvalidArgument: ``index`` is not in ``[0, n)``.
        """
        audit_path_length(self.n_leaves, index)
        path: list[bytes] = []
        i = index
        for level in self._levels[:-1]:
            size = len(level) // HASH_BYTES
            sibling = i ^ 1
            if sibling < size:
                path.append(level[sibling * HASH_BYTES : (sibling + 1) * HASH_BYTES])
            i //= 2
        return path


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` of RFC 6962 §2.1 over the given leaves (32 bytes)."""
    return MerkleTree(leaves).root


def verify_inclusion(
    root: bytes, n_leaves: int, index: int, leaf: bytes, proof: Sequence[bytes]
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the ``n_leaves``-leaf tree with ``root``.

    Implements the inclusion-proof verification of RFC 9162 §2.1.3.2 (the
    audit paths are those of RFC 6962 §2.1.1), after checking the proof has
    exactly the length the tree shape implies.

    An RFC 6962 audit path does not bind the tree size on its own: a proof
    for leaf ``index`` also verifies for another size that gives the leaf the
    same left/right pattern.  ``n_leaves`` must therefore come from a signed
    statement (``ResultRoot`` signs it together with the root,
    :func:`protocol.signing.root_statement`), never from the proof's sender.

    Args:
        root: the committed 32-byte root.
        n_leaves: the committed number of leaves.
        index: the leaf's position, ``0 <= index < n_leaves``.
        leaf: the leaf bytes (not its hash).
        proof: the audit path, sibling of the leaf first.

    Raises:
        CommitmentError: the index is out of range, the proof has the wrong
            length or a malformed entry, or the recomputed root differs.
    """
    if len(root) != HASH_BYTES:
        raise CommitmentError(f"Merkle root must be {HASH_BYTES} bytes, got {len(root)}")
    if not 0 <= index < n_leaves:
        raise CommitmentError(
            f"inclusion proof: leaf index {index} out of range for a tree of {n_leaves} leaves"
        )
    expected = audit_path_length(n_leaves, index)
    if len(proof) != expected:
        raise CommitmentError(
            f"inclusion proof for leaf {index} of {n_leaves} must have {expected} hashes, "
            f"got {len(proof)}"
        )
    for k, h in enumerate(proof):
        if len(h) != HASH_BYTES:
            raise CommitmentError(
                f"inclusion proof entry {k} for leaf {index} is {len(h)} bytes, not {HASH_BYTES}"
            )
    fn, sn = index, n_leaves - 1
    r = leaf_hash(leaf)
    for p in proof:
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise CommitmentError(
            f"inclusion proof for leaf {index} of {n_leaves} does not lead to the committed root "
            f"(computed {r.hex()}, committed {bytes(root).hex()})"
        )
