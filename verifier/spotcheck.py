"""Spot checks (docs/design.md §2, steps 5-7): draw, open, verify, retrain, compare.

The set C of ``k = plan.spot_checks`` points is drawn uniformly without
replacement from the Verifier's *private* generator, only after the Merkle
root arrived.  For every opening the Verifier checks, in order:

1. each requested index is answered exactly once (no extra, missing or
   duplicate openings);
2. the opened outputs and weight digest equal the streamed ones;
3. the RFC 6962 inclusion proof against the signed root;
4. SHA-256 of the opened weights equals the weight digest;
5. its own retraining agrees: ``max |outputs - own| <= task.output_tolerance``
   and ``max |weights - own| <= task.weight_tolerance``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.digests import weight_digest, weights_from_bytes
from protocol.errors import CommitmentError, InvalidArgument, SpotCheckMismatch
from protocol.merkle import result_leaf, verify_inclusion
from protocol.messages import Opening
from prover.tasks.base import Task
from verifier.results import ChallengeResults
from verifier.retrain import challenge_points, train_points

__all__ = ["SpotCheckResult", "check_openings", "draw_spot_checks", "retrain_and_compare"]


@dataclass(frozen=True)
class SpotCheckResult:
    """Agreement of the Verifier's retraining with the Prover's opened results.

    Attributes:
        indices: int64 ``(k,)`` spot-checked point indices (sorted).
        output_diff: float64 ``(k,)`` ``max_z |f_prover - f_own|``.
        weight_diff: float64 ``(k,)`` ``max |w_prover - w_own|`` (0 without weights).
        own_outputs: float64 ``(k, Z)`` the Verifier's own outputs (verified values).
    """

    indices: NDArray[np.int64]
    output_diff: NDArray[np.float64]
    weight_diff: NDArray[np.float64]
    own_outputs: NDArray[np.float64]


def draw_spot_checks(rng: np.random.Generator, n_points: int, k: int) -> NDArray[np.int64]:
    """``k`` of ``n_points`` indices, uniform without replacement, sorted."""
    if not 0 <= k <= n_points:
        raise InvalidArgument(f"cannot draw {k} spot checks from {n_points} points")
    return np.sort(rng.choice(n_points, size=k, replace=False).astype(np.int64))


def check_openings(
    openings: Iterable[Opening], indices: NDArray[np.int64], results: ChallengeResults
) -> dict[int, NDArray[np.float64]]:
    """Checks 1-4 of the module docstring; returns the opened weights by point index.

    Raises:
        CommitmentError: any of checks 1-4 fails.
    """
    wanted = {int(i) for i in indices}
    n = len(results.weight_digests)
    weights: dict[int, NDArray[np.float64]] = {}
    for op in openings:
        i = op.point_index
        if i not in wanted:
            raise CommitmentError(f"Open stream: point {i} was not requested")
        if i in weights:
            raise CommitmentError(f"Open stream: point {i} opened twice")
        committed = results.outputs[i]
        if op.outputs.shape != committed.shape or not np.array_equal(op.outputs, committed):
            raise CommitmentError(f"opening of point {i}: outputs differ from the streamed ones")
        if op.weight_digest != results.weight_digests[i]:
            raise CommitmentError(
                f"opening of point {i}: weight digest differs from the streamed one"
            )
        leaf = result_leaf(i, committed, results.weight_digests[i])
        try:
            verify_inclusion(results.merkle_root, n, i, leaf, list(op.proof))
        except CommitmentError as err:
            raise CommitmentError(f"opening of point {i}: bad Merkle proof: {err}") from None
        try:
            w = weights_from_bytes(op.weights)
        except InvalidArgument as err:
            raise CommitmentError(f"opening of point {i}: {err}") from None
        if weight_digest(w) != op.weight_digest:
            raise CommitmentError(f"opening of point {i}: weights do not match their digest")
        weights[i] = w
    missing = sorted(wanted - weights.keys())
    if missing:
        raise CommitmentError(
            f"Open stream: {len(missing)} spot checks not opened (first: point {missing[0]})"
        )
    return weights


def retrain_and_compare(
    task: Task,
    *,
    seed: bytes,
    indices: NDArray[np.int64],
    opened: dict[int, NDArray[np.float64]],
    results: ChallengeResults,
    p: float,
    rho_of_pair: NDArray[np.float64],
    chunk_size: int,
    progress: Callable[[int], object] | None = None,
) -> SpotCheckResult:
    """Check 5: retrain every spot check locally (batched) and compare.

    Raises:
        SpotCheckMismatch: outputs differ by more than ``task.output_tolerance`` or
            weights by more than ``task.weight_tolerance`` (or have another shape).
    """
    x, seeds = challenge_points(seed, indices, n_items=task.n_items, p=p, rho_of_pair=rho_of_pair)
    own = train_points(task, x, seeds, chunk_size=chunk_size, progress=progress)
    k = len(indices)
    out_diff = np.zeros(k)
    w_diff = np.zeros(k)
    for row, i in enumerate(indices.tolist()):
        out_diff[row] = float(np.max(np.abs(results.outputs[i] - own.outputs[row])))
        theirs = opened[i]
        mine = own.weights[row] if own.weights is not None else np.zeros(0)
        if theirs.shape != mine.shape:
            raise SpotCheckMismatch(
                f"spot check of point {i}: the Prover's weights have {theirs.size} values, "
                f"the Verifier's retraining {mine.size}"
            )
        w_diff[row] = float(np.max(np.abs(theirs - mine))) if mine.size else 0.0
    bad_out = np.flatnonzero(out_diff > task.output_tolerance)
    if bad_out.size:
        r = int(bad_out[0])
        raise SpotCheckMismatch(
            f"spot check failed: {bad_out.size} of {k} retrained points disagree with the "
            f"Prover's outputs beyond tau={task.output_tolerance:g} (point {int(indices[r])}: "
            f"difference {out_diff[r]:.6g})"
        )
    bad_w = np.flatnonzero(w_diff > task.weight_tolerance)
    if bad_w.size:
        r = int(bad_w[0])
        raise SpotCheckMismatch(
            f"spot check failed: {bad_w.size} of {k} retrained points disagree with the "
            f"Prover's weights beyond {task.weight_tolerance:g} (point {int(indices[r])}: "
            f"difference {w_diff[r]:.6g})"
        )
    return SpotCheckResult(indices, out_diff, w_diff, np.asarray(own.outputs))
