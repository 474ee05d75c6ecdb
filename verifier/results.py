"""Receive the challenge results and check them against the signed Merkle root (steps 3-4).

Points ``0 .. n_points - 1`` arrive in batches, in order; the stream ends with
the root.  For every point the Verifier checks the batch layout (``n_points x
Z`` outputs, one 32-byte weight digest per point), that outputs are finite and
inside ``[-b, b]``, and that no index is missing or repeated.  Once the root
arrives it rebuilds the RFC 6962 tree over
:func:`protocol.merkle.result_leaf` locally, compares the roots and verifies
the Prover's signature over :func:`protocol.signing.root_statement`.

A dropped stream (:class:`verifier.errors.TransportError`) is resumed with
``start_point`` = points received so far; nothing already received is
retrained by the Prover or discarded by the Verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import CommitmentError, InvalidArgument, SignatureError, VerificationError
from protocol.merkle import HASH_BYTES, MerkleTree, result_leaf
from protocol.messages import ResultBatch, ResultItem, ResultRoot
from protocol.signing import public_key_from_bytes, root_statement, verify_json

__all__ = ["ChallengeResults", "ResultCollector"]


@dataclass(frozen=True)
class ChallengeResults:
    """Every challenge result, verified against the signed root.

    Attributes:
        outputs: float64 ``(n_points, Z)``; point 2k is x of pair k, 2k+1 its partner.
        weight_digests: ``n_points`` digests of 32 bytes.
        merkle_root: the 32-byte root (recomputed and equal to the Prover's).
        root_signature: the Prover's signature over the root statement.
        tree: the locally rebuilt tree.
    """

    outputs: NDArray[np.float64]
    weight_digests: tuple[bytes, ...]
    merkle_root: bytes
    root_signature: bytes
    tree: MerkleTree


class ResultCollector:
    """Accumulates result batches; :meth:`finish` checks the root.

    Args:
        n_points: points in the challenge (``2 * plan.n_pairs``).
        n_outputs: Z.
        bound: b; outputs must lie in ``[-b, b]``.
        progress: called with the number of points received so far.
    """

    def __init__(
        self,
        *,
        n_points: int,
        n_outputs: int,
        bound: float,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        self.n_points = n_points
        self.n_outputs = n_outputs
        self.bound = bound
        self.outputs = np.empty((n_points, n_outputs), dtype=np.float64)
        self.digests: list[bytes] = []
        self.root: ResultRoot | None = None
        self._progress = progress

    @property
    def received(self) -> int:
        """Points received and checked so far (the resume point)."""
        return len(self.digests)

    def consume(self, stream: Iterable[ResultItem]) -> None:
        """Read one (possibly resumed) stream until the root; errors propagate."""
        for msg in stream:
            if self.root is not None:
                raise CommitmentError("Challenge stream: a message follows the Merkle root")
            if isinstance(msg, ResultRoot):
                self.root = msg
            else:
                self._add(msg)
        if self.root is None:
            raise CommitmentError(
                f"Challenge stream ended after {self.received} of {self.n_points} points "
                "without a Merkle root"
            )

    def _add(self, batch: ResultBatch) -> None:
        start, m, Z = self.received, batch.n_points, self.n_outputs
        if batch.first_point != start:
            kind = "duplicate" if batch.first_point < start else "missing"
            raise CommitmentError(
                f"Challenge stream: batch starts at point {batch.first_point}, expected {start} "
                f"({kind} indices)"
            )
        if m < 1 or start + m > self.n_points:
            raise CommitmentError(
                f"Challenge stream: batch of {m} points at {start} does not fit the "
                f"{self.n_points} points of the challenge"
            )
        if batch.outputs.size != m * Z:
            raise CommitmentError(
                f"Challenge stream: batch at {start} has {batch.outputs.size} outputs, "
                f"expected {m} x {Z}"
            )
        if len(batch.weight_digests) != m or any(
            len(d) != HASH_BYTES for d in batch.weight_digests
        ):
            raise CommitmentError(
                f"Challenge stream: batch at {start} must carry {m} weight digests of "
                f"{HASH_BYTES} bytes"
            )
        out = batch.outputs.reshape(m, Z)
        if not np.all(np.isfinite(out)):
            row = int(np.argwhere(~np.isfinite(out))[0, 0])
            raise VerificationError(f"Challenge stream: point {start + row} has NaN or inf outputs")
        if np.any(np.abs(out) > self.bound):
            row = int(np.argwhere(np.abs(out) > self.bound)[0, 0])
            raise VerificationError(
                f"Challenge stream: point {start + row} has an output outside [-{self.bound:g}, "
                f"{self.bound:g}]"
            )
        self.outputs[start : start + m] = out
        self.digests.extend(batch.weight_digests)
        if self._progress is not None:
            self._progress(self.received)

    def finish(
        self,
        *,
        session_id: str,
        task_digest: str,
        attribution_digest: str,
        challenge_seed: bytes,
        prover_public_key: bytes,
    ) -> ChallengeResults:
        """Rebuild the tree, compare roots and verify the root signature.

        Raises:
            CommitmentError: missing points, wrong leaf count or root mismatch.
            SignatureError: the root signature does not verify.
        """
        root = self.root
        if root is None or self.received != self.n_points:
            raise CommitmentError(
                f"Challenge stream: {self.received} of {self.n_points} points received"
            )
        if root.n_leaves != self.n_points:
            raise CommitmentError(
                f"Merkle root covers {root.n_leaves} leaves, the challenge has {self.n_points}"
            )
        leaves = [result_leaf(i, self.outputs[i], d) for i, d in enumerate(self.digests)]
        tree = MerkleTree(leaves)
        if tree.root != root.merkle_root:
            raise CommitmentError(
                "Merkle root mismatch: the Prover's root "
                f"{root.merkle_root.hex()[:16]}... differs from the root of the results "
                f"received {tree.root.hex()[:16]}..."
            )
        try:
            statement = root_statement(
                session_id=session_id,
                task_digest=task_digest,
                attribution_digest=attribution_digest,
                challenge_seed=challenge_seed,
                merkle_root=root.merkle_root,
                n_leaves=root.n_leaves,
            )
            verify_json(public_key_from_bytes(prover_public_key), statement, root.signature)
        except SignatureError as err:
            raise SignatureError(f"the Prover's root signature is invalid: {err}") from None
        except InvalidArgument as err:
            raise VerificationError(f"cannot check the root signature: {err}") from None
        return ChallengeResults(
            outputs=self.outputs,
            weight_digests=tuple(self.digests),
            merkle_root=root.merkle_root,
            root_signature=root.signature,
            tree=tree,
        )
