"""A strategic consistent liar: few, well-placed lies that push the gap statistic down.

Model of the Verifier's committed-mode statistic (for the adversary and its
tests; this is *not* the Verifier's code).  For every output z, with residuals
``q = f - g_a`` at both points of each pair and a clip level ``C_z > 0``::

    P_i = clip(q_first_i * q_second_i, -C_z, +C_z)
    err_hat_z = sum_j w_j * mean_{i in node j} P_i

A cheating Prover wants ``err_hat_z`` small.  Spot checks catch it with a
probability growing with the number of lied *points*, and the Verifier
tolerates a few corrupted pairs unseen, so the best use of a lie budget is to
change ONE point of each of a few pairs, each moved to the value that makes
its product ``-sign(w_j) C_z`` (the most damaging clipped product):
:func:`strategic_lies` picks the pairs greedily by the decrease each lie buys
(the statistic is a sum of per-pair terms, so greedy selection is optimal
for one lie per pair).  :class:`StrategicPolicy` applies it to challenge
results before they are committed (``strategic:MULT:COUNT:CLIP``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from protocol.challenge import node_of_pair
from protocol.errors import InvalidArgument
from protocol.estimators import functional_from_nodes
from protocol.scores import Scores
from prover.adversaries._state import LieAllotment
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy

__all__ = ["StrategicLies", "StrategicPolicy", "clipped_gap", "strategic_lies"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class StrategicLies:
    """The outcome of :func:`strategic_lies`.

    Attributes:
        first_outputs: float64 ``(n_pairs, Z)``, the new outputs at the first points.
        second_outputs: float64 ``(n_pairs, Z)``, the new outputs at the second points.
        pairs: int64, the sorted indices of the pairs lied on (one point each).
        points: int64, the point index lied on for each of ``pairs`` (``2i`` or ``2i + 1``).
        decrease: float64 ``(Z,)``, how much ``err_hat_z`` went down per output.
    """

    first_outputs: FloatArray
    second_outputs: FloatArray
    pairs: NDArray[np.int64]
    points: NDArray[np.int64]
    decrease: FloatArray


def _node_sizes(node_of_pair: NDArray[np.int64], n_nodes: int) -> NDArray[np.int64]:
    if node_of_pair.size and (node_of_pair.min() < 0 or node_of_pair.max() >= n_nodes):
        raise InvalidArgument(f"node_of_pair must lie in [0, {n_nodes})")
    return np.bincount(node_of_pair, minlength=n_nodes)[:n_nodes].astype(np.int64)


def _coefficients(
    node_of_pair: NDArray[np.int64], weights: FloatArray, node_sizes: NDArray[np.int64]
) -> FloatArray:
    """``w_j / n_j`` of each pair's node (0 where a node has no pairs)."""
    n = node_sizes.astype(np.float64)
    per_node = np.divide(weights, n, out=np.zeros_like(weights), where=n > 0)
    return np.asarray(per_node[node_of_pair], dtype=np.float64)


def _clip_column(clip_levels: ArrayLike, n_outputs: int) -> FloatArray:
    c = np.broadcast_to(np.asarray(clip_levels, dtype=np.float64), (n_outputs,))
    if not np.all(c > 0) or not np.all(np.isfinite(c)):
        raise InvalidArgument(f"clip levels must be finite and > 0, got {c.tolist()}")
    return np.asarray(c, dtype=np.float64)


def clipped_gap(
    first_outputs: ArrayLike,
    second_outputs: ArrayLike,
    first_predictions: ArrayLike,
    second_predictions: ArrayLike,
    node_of_pair: ArrayLike,
    weights: ArrayLike,
    clip_levels: ArrayLike,
) -> FloatArray:
    """``err_hat_z = sum_j w_j mean_{i in node j} clip(q_i q'_i, -C_z, C_z)`` per output.

    Args:
        first_outputs, second_outputs: float ``(n_pairs, Z)``, f at both points.
        first_predictions, second_predictions: float ``(n_pairs, Z)``, g_a there.
        node_of_pair: int ``(n_pairs,)``, the node of each pair.
        weights: float ``(J,)``, the functional's node weights.
        clip_levels: float ``(Z,)`` (or a scalar), each > 0.

    Returns:
        float64 ``(Z,)``; a node without pairs contributes nothing.
    """
    f1 = np.asarray(first_outputs, dtype=np.float64)
    q1 = f1 - np.asarray(first_predictions, dtype=np.float64)
    q2 = np.asarray(second_outputs, dtype=np.float64) - np.asarray(
        second_predictions, dtype=np.float64
    )
    w = np.asarray(weights, dtype=np.float64)
    nodes = np.asarray(node_of_pair, dtype=np.int64)
    c = _clip_column(clip_levels, f1.shape[1])
    prod = np.clip(q1 * q2, -c, c)
    coef = _coefficients(nodes, w, _node_sizes(nodes, w.size))
    return np.asarray((coef[:, None] * prod).sum(axis=0), dtype=np.float64)


def _side(
    g_lied: FloatArray,
    q_other: FloatArray,
    old: FloatArray,
    target_product: FloatArray,
    coef: FloatArray,
    c: FloatArray,
    bound: float,
) -> tuple[FloatArray, FloatArray]:
    """New values of the lied point and the gain per (pair, output) of lying on it."""
    moves = q_other != 0
    q_new = np.divide(target_product, q_other, out=np.zeros_like(q_other), where=moves)
    value = np.clip(g_lied + q_new, -bound, bound)
    new = np.clip((value - g_lied) * q_other, -c, c)
    gain = np.where(moves, coef[:, None] * (old - new), 0.0)
    return value, gain


def strategic_lies(
    first_outputs: ArrayLike,
    second_outputs: ArrayLike,
    first_predictions: ArrayLike,
    second_predictions: ArrayLike,
    *,
    node_of_pair: ArrayLike,
    weights: ArrayLike,
    clip_levels: ArrayLike,
    n_lies: int,
    bound: float,
    target: int | None = None,
    node_sizes: ArrayLike | None = None,
) -> StrategicLies:
    """Lie on one point of each of at most ``n_lies`` pairs so as to lower ``err_hat`` most.

    For pair i at node j and output z the damaging product is ``-sign(w_j) C_z``;
    the lied point takes the value ``g + target / q_other`` clipped to
    ``[-b, b]`` (a pair whose other residual is 0 cannot move: gain 0), and
    the gain is ``w_j / n_j * (P_old - P_new)``.  Per pair the point whose
    change gains more is lied on; the ``n_lies`` pairs of largest positive
    gain are chosen.

    With ``target = None`` every output is attacked on the chosen point (each
    output changes only where that lowers its own statistic); pairs and
    their point are chosen by the gain summed over outputs, so at most
    ``n_lies`` distinct points change in all.

    Args:
        first_outputs, second_outputs: float ``(n_pairs, Z)``, f at both points.
        first_predictions, second_predictions: float ``(n_pairs, Z)``, g_a there.
        node_of_pair: int ``(n_pairs,)``, the node of each pair.
        weights: float ``(J,)``, the functional's node weights (any sign).
        clip_levels: float ``(Z,)`` (or a scalar), each > 0.
        n_lies: most pairs lied on (>= 0).
        bound: b; lied values stay in ``[-b, b]``.
        target: the only output column changed, or ``None`` for every output.
        node_sizes: int ``(J,)``, the pairs ``n_j`` of each node in the whole
            statistic (default: counted from ``node_of_pair``); give it when the
            pairs passed are only part of those the statistic averages over.

    Returns:
        The new outputs (copies), the pairs and points lied on and the
        decrease of ``err_hat`` per output; the decrease equals
        ``clipped_gap(before) - clipped_gap(after)`` up to rounding.

    Raises:
        InvalidArgument: mismatched shapes, a negative ``n_lies``, a
            non-positive bound or clip level, or a bad ``target``.
    """
    f1 = np.array(first_outputs, dtype=np.float64, copy=True)
    f2 = np.array(second_outputs, dtype=np.float64, copy=True)
    g1 = np.asarray(first_predictions, dtype=np.float64)
    g2 = np.asarray(second_predictions, dtype=np.float64)
    if f1.ndim != 2 or not f1.shape == f2.shape == g1.shape == g2.shape:
        raise InvalidArgument(
            "outputs and predictions must share one shape (n_pairs, Z), got "
            f"{f1.shape}, {f2.shape}, {g1.shape}, {g2.shape}"
        )
    n_pairs, n_outputs = f1.shape
    nodes = np.asarray(node_of_pair, dtype=np.int64)
    if nodes.shape != (n_pairs,):
        raise InvalidArgument(f"node_of_pair must have shape ({n_pairs},), got {nodes.shape}")
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not np.all(np.isfinite(w)):
        raise InvalidArgument("weights must be a finite 1-D array")
    if n_lies < 0:
        raise InvalidArgument(f"n_lies must be >= 0, got {n_lies}")
    if not bound > 0 or not math.isfinite(bound):
        raise InvalidArgument(f"bound must be finite and > 0, got {bound}")
    if target is not None and not 0 <= target < n_outputs:
        raise InvalidArgument(f"target must lie in [0, {n_outputs}), got {target}")
    c = _clip_column(clip_levels, n_outputs)
    sizes = _node_sizes(nodes, w.size)  # also checks the range of node_of_pair
    if node_sizes is not None:
        sizes = np.asarray(node_sizes, dtype=np.int64)
        if sizes.shape != w.shape:
            raise InvalidArgument(f"node_sizes must have shape {w.shape}, got {sizes.shape}")
    coef = _coefficients(nodes, w, sizes)

    q1, q2 = f1 - g1, f2 - g2
    old = np.clip(q1 * q2, -c, c)
    target_product = -np.sign(coef)[:, None] * c[None, :]
    value1, gain1 = _side(g1, q2, old, target_product, coef, c, bound)
    value2, gain2 = _side(g2, q1, old, target_product, coef, c, bound)
    columns = np.zeros(n_outputs, dtype=bool)
    if target is None:
        columns[:] = True
    else:
        columns[target] = True
    # Only outputs attacked, and only where the lie lowers that output's statistic.
    gain1 = np.where(columns[None, :] & (gain1 > 0), gain1, 0.0)
    gain2 = np.where(columns[None, :] & (gain2 > 0), gain2, 0.0)
    total1, total2 = gain1.sum(axis=1), gain2.sum(axis=1)
    on_second = total2 > total1
    pair_gain = np.where(on_second, total2, total1)

    k = min(int(n_lies), int(np.count_nonzero(pair_gain > 0)))
    if k:
        order = np.argsort(-pair_gain, kind="stable")[:k]
        chosen = np.sort(order).astype(np.int64)
    else:
        chosen = np.zeros(0, dtype=np.int64)
    second = on_second[chosen]
    first = chosen[~second]
    sec = chosen[second]
    change1 = gain1[first] > 0
    change2 = gain2[sec] > 0
    f1[first] = np.where(change1, value1[first], f1[first])
    f2[sec] = np.where(change2, value2[sec], f2[sec])
    decrease = gain1[first].sum(axis=0) + gain2[sec].sum(axis=0)
    return StrategicLies(
        first_outputs=f1,
        second_outputs=f2,
        pairs=chosen,
        points=(2 * chosen + second.astype(np.int64)).astype(np.int64),
        decrease=np.asarray(decrease, dtype=np.float64).reshape(n_outputs),
    )


class StrategicPolicy(ResultPolicy):
    """``strategic:MULT:COUNT:CLIP``: lie on about ``MULT * max(COUNT, 1)`` pairs, strategically.

    A consistent liar (its Merkle root matches its lies, like
    :class:`~prover.adversaries.results.LiePolicy`) that spends its lies where
    they lower the clipped gap statistic most (:func:`strategic_lies`, every
    output attacked).  The lies are spread over the result chunks the hook
    sees in proportion to the pairs each holds (rounded up, never more than
    the total over a session); a pair split between two chunks is left alone.

    Args:
        multiple: MULT > 0, lies per tolerated corruption.
        tolerated: COUNT >= 0, the corruptions the Verifier tolerates unseen.
        clip_levels: C_z, one for every output (a scalar) or ``(Z,)``.
        weights: the functional's node weights, in the order of the plan's
            nodes, or ``None`` to compute them from each plan's nodes with
            :func:`protocol.estimators.functional_from_nodes` (a plan whose
            nodes admit no functional, fewer than two, is answered honestly).
        scores: the committed scores (g_a).
        n_items: N.
        bound: the task's b.
    """

    def __init__(
        self,
        multiple: float,
        *,
        tolerated: int,
        clip_levels: float | Sequence[float] | FloatArray,
        weights: Sequence[float] | FloatArray | None,
        scores: Scores,
        n_items: int,
        bound: float,
    ) -> None:
        if not multiple > 0 or not math.isfinite(multiple):
            raise InvalidArgument(f"multiple must be finite and > 0, got {multiple}")
        if tolerated < 0:
            raise InvalidArgument(f"tolerated must be >= 0, got {tolerated}")
        self.multiple = float(multiple)
        self.tolerated = int(tolerated)
        self.total = math.ceil(self.multiple * max(self.tolerated, 1))
        self.clip_levels = np.asarray(clip_levels, dtype=np.float64)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.scores = scores
        self.n_items = n_items
        self.bound = bound
        self._lock = threading.Lock()
        self._lies = LieAllotment(self.total)
        self._weights_of: dict[tuple[float, ...], FloatArray | None] = {}

    def _plan_weights(self, plan: ChallengePlan) -> FloatArray | None:
        if self.weights is not None:
            if self.weights.shape != (len(plan.nodes),):
                raise InvalidArgument(
                    f"strategic: {self.weights.size} weights for {len(plan.nodes)} nodes"
                )
            return self.weights
        with self._lock:
            if plan.nodes not in self._weights_of:
                try:
                    found: FloatArray | None = np.asarray(
                        functional_from_nodes(plan.nodes).weights, dtype=np.float64
                    )
                except InvalidArgument:
                    found = None
                self._weights_of[plan.nodes] = found
            return self._weights_of[plan.nodes]

    def _allot(self, session_id: str, plan: ChallengePlan, n_pairs: int) -> int:
        """Lies for a chunk of ``n_pairs`` complete pairs (cumulative share, rounded up)."""
        return self._lies.allot(session_id, n_pairs, plan.n_pairs)

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        pairs = np.intersect1d(ordered[ordered % 2 == 0] // 2, ordered[ordered % 2 == 1] // 2)
        weights = self._plan_weights(plan)
        n_lies = self._allot(session_id, plan, int(pairs.size))
        if weights is None or n_lies == 0 or pairs.size == 0:
            return outputs, weight_digests
        pos1 = order[np.searchsorted(ordered, 2 * pairs)]
        pos2 = order[np.searchsorted(ordered, 2 * pairs + 1)]
        x, _ = plan.points(np.concatenate([2 * pairs, 2 * pairs + 1]), self.n_items)
        g = self.scores.predict(x)
        lies = strategic_lies(
            outputs[pos1],
            outputs[pos2],
            g[: pairs.size],
            g[pairs.size :],
            node_of_pair=node_of_pair(plan.pairs_per_node)[pairs],
            weights=weights,
            clip_levels=self.clip_levels,
            n_lies=n_lies,
            bound=self.bound,
            node_sizes=np.asarray(plan.pairs_per_node, dtype=np.int64),
        )
        out = np.array(outputs, dtype=np.float64, copy=True)
        out[pos1] = lies.first_outputs
        out[pos2] = lies.second_outputs
        return out, weight_digests
