"""The pair statistics by name: one home for each one's terms, leverage, range and deviations.

A statistic is a sum of per-pair terms over the challenge pairs, grouped by
node.  For each statistic this module owns, as functions of plain numbers:

* its per-pair **terms** from the values at the two points of every pair;
* the **range** of one node's term (how far one pair's term can move) and its
  planned **variance**;
* its **leverage**: how far the statistic moves when one evaluation moves
  anywhere in its allowed range (corruption accounting);
* its **deviation**: Hoeffding from the ranges (rigorous), Bernstein from the
  planned variance (practical, planning) and empirical Bernstein from the
  realised per-node variances (practical, decision) — all three with the same
  range term, so the planner and the decision cannot drift apart.

Registered statistics (:data:`STATISTICS`):

* ``gap`` — the direct gap (committed mode): term ``w_j / n_j q q'``;
* ``residual`` — ``mean(y^2) - sum_j w_j hhat_j`` (paper mode), term
  ``(y^2 + y'^2) / (2 n) - w_j / n_j y y'``;
* ``residual-nnls`` — the same terms, with the NNLS fit's Lipschitz weights for
  its leverage (:func:`protocol.estimators.nnls_lipschitz`);
* ``clipped-gap`` — :mod:`protocol.clipped_gap` (practical committed mode,
  ``lp`` estimator), whose terms are clipped per output; its planner and
  decision share :func:`protocol.clipped_gap.deviation`.

Which statistic an audit uses is the registry's choice (:mod:`protocol.stats`).
The planned variance per pair term uses ``scale^4`` with ``scale^2`` the declared second moment:
``PRODUCT_VARIANCE_FACTOR scale^4`` for a product (Gaussian-like values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.concentration import (
    bernstein_deviation,
    hoeffding_deviation,
)
from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional, nnls_lipschitz

__all__ = [
    "PRODUCT_VARIANCE_FACTOR",
    "STATISTICS",
    "PairStatistic",
]

FloatArray = NDArray[np.float64]

#: Practical planning: ``Var(y y') <= 2 s^4`` (Gaussian-like outputs).
PRODUCT_VARIANCE_FACTOR = 2.0


@dataclass(frozen=True)
class PairStatistic:
    """A linear pair statistic (``gap``, ``residual``, ``residual-nnls``).

    Attributes:
        name: its registry name.
        squares: the terms carry ``(y^2 + y'^2) / (2 n)`` (residual statistics).
        nnls: leverage from the NNLS fit's Lipschitz weights.
    """

    name: str
    squares: bool
    nnls: bool = False

    # -- per-node terms -------------------------------------------------------
    def ranges(
        self, weights: Sequence[float], counts: Sequence[int], value_bound: float
    ) -> FloatArray:
        """Range of one pair's term at every node (values within ``[-B, B]``)."""
        w, c = _wc(weights, counts)
        vb2 = value_bound**2
        per = w / c * 2.0 * vb2
        return np.asarray(per + vb2 / c.sum()) if self.squares else per

    def variances(
        self, weights: Sequence[float], counts: Sequence[int], scale: float
    ) -> FloatArray:
        """Planned variance of one pair's term at every node (second moment ``scale^2``)."""
        w, c = _wc(weights, counts)
        s4 = scale**4
        if self.squares:
            return np.asarray(4.0 * s4 * (1.0 / c.sum() ** 2 + (w / c) ** 2))
        return np.asarray((w / c) ** 2 * PRODUCT_VARIANCE_FACTOR * s4)

    def terms(
        self,
        weights: Sequence[float],
        node: NDArray[np.int64],
        first: FloatArray,
        second: FloatArray,
    ) -> FloatArray:
        """Every pair's term; their sum is the statistic (minus, for the residual, a constant)."""
        w = np.asarray(weights, dtype=np.float64)
        c = np.bincount(node, minlength=len(w)).astype(np.float64)
        prod = w[node] / c[node] * first * second
        if not self.squares:
            return np.asarray(prod)
        return np.asarray((first**2 + second**2) / (2.0 * len(node)) - prod)

    def leverage(
        self,
        functional: NodeFunctional,
        counts: Sequence[int],
        value_bound: float,
        output_range: float,
    ) -> float:
        """Largest move of the statistic when one evaluation moves within its range."""
        w = nnls_lipschitz(functional) if self.nnls else np.abs(np.asarray(functional.weights))
        c = np.asarray(counts, dtype=np.float64)
        per_product = float((w / c).max())
        if not self.squares:
            return per_product * output_range * value_bound
        vb2 = value_bound**2
        return float(vb2 / (2.0 * c.sum()) + per_product * 2.0 * vb2)

    # -- deviations ------------------------------------------------------------
    def planned_deviation(
        self,
        weights: Sequence[float],
        counts: Sequence[int],
        *,
        value_bound: float,
        scale: float,
        delta: float,
        practical: bool,
    ) -> float:
        """Planned one-sided deviation: Bernstein (practical) or Hoeffding (rigorous)."""
        c = np.asarray(counts, dtype=np.float64)
        ranges = self.ranges(weights, counts, value_bound)
        if practical:
            variance = float((c * self.variances(weights, counts, scale)).sum())
            return bernstein_deviation(variance, float(ranges.max()), delta)
        return hoeffding_deviation(float((c * ranges**2).sum()), delta)

    def realised_deviation(
        self,
        weights: Sequence[float],
        node: NDArray[np.int64],
        terms: FloatArray,
        *,
        value_bound: float,
        delta: float,
    ) -> float:
        """Bernstein deviation with the realised per-node variances of ``terms``.

        The same rule as :meth:`planned_deviation` (practical), with the observed
        variance in place of the planned one and the planner's range term
        (:meth:`ranges`): the decision charges the larger of the two, so that an
        accepted output's certified bound is below epsilon.
        """
        n_nodes = len(weights)
        counts = np.bincount(node, minlength=n_nodes)
        var_sum = 0.0
        for j in range(n_nodes):
            t = terms[node == j]
            if t.size >= 2:
                var_sum += t.size * float(np.var(t, ddof=1))
        ranges = self.ranges(weights, counts.tolist(), value_bound)
        return bernstein_deviation(var_sum, float(ranges.max()), delta)


def _wc(weights: Sequence[float], counts: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    w = np.abs(np.asarray(weights, dtype=np.float64))
    c = np.asarray(counts, dtype=np.float64)
    if w.shape != c.shape or np.any(c < 1):
        raise InvalidArgument(f"one count >= 1 per node needed, got {list(counts)}")
    return w, c


#: The linear pair statistics by name (the clipped gap lives in protocol.clipped_gap).
STATISTICS: dict[str, PairStatistic] = {
    "gap": PairStatistic("gap", squares=False),
    "residual": PairStatistic("residual", squares=True),
    "residual-nnls": PairStatistic("residual-nnls", squares=True, nnls=True),
}
