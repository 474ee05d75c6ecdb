"""Screening: reject bad scores from the first points of the result stream.

A clipped-gap plan is sized from the Verifier's pilot of ``q = f - g_a``, so
bad scores (large ``E[q^2]``) make their own challenge large; the plan's
rejection at the end (:func:`protocol.decision.hopeless_output`) saves the
Verifier's spot checks but not the Prover's evaluations.  The challenge's pairs
are interleaved over the nodes (:mod:`protocol.challenge`), so the first ``m``
pairs of the stream are a proportional sample of the whole challenge; at a
few *looks* (``m = n/64, n/32, ..., n/2``) the Verifier computes, for every
output, a lower confidence bound on ``err_z`` from that prefix alone and stops
the stream when one reaches epsilon.

**The bound.**  The plan's functional is exact to degree 2 with bias
``sum_{k>=3} s_k B_k`` (:mod:`protocol.lp_functional`), ``0 <= s_k <= s_max``
(:meth:`~protocol.estimators.NodeFunctional.bias_range`), and ``B_{>=3} <=
sum_k B_k - B_0 - B_1 <= E[q^2] - err``, so ``err = F - bias >= F - s_max
(E[q^2] - err)``, i.e. ``err >= (F - s_max E[q^2]) / (1 - s_max)``.  Clipping
the products at ``C_z`` moves ``F`` by at most ``||w||_1 T_z``
(:func:`protocol.clipped_gap.clip_bias`, ``T_z`` the plan's tail bound), and
the Prover's honest values differ from the Verifier's by at most the
tolerance.  Hence, with ``F_hat`` the clipped statistic on the prefix,

    L_z = (F_hat - z_{1-d} sqrt(V) - ||w||_1 T_z - tolerance - s_max U_z)
          / (1 - s_max) <= err_z

(undivided when that is larger, i.e. when the numerator is negative)

with probability ``>= 1 - d`` when ``V`` bounds the prefix statistic's
variance (the larger of the observed one and the plan's at the prefix's
pair counts, :func:`protocol.plan_clipped.planned_variances_at`) and ``U_z``
is an upper confidence bound on ``E[q_z^2]`` from the prefix's ``q^2``
(normal approximations, the practical-mode assumptions of the plan).

**What it may cost.**  Rejecting never weakens soundness.  An honest Prover
with ``err_z < epsilon`` is rejected by screening only if some ``L_z`` exceeds
its mean, which happens with probability at most :data:`SCREEN_DELTA_SHARE`
``x delta`` in all (split over the looks and the outputs): the completeness
guarantee of the plan loses that much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from protocol import clipped_gap as cg
from protocol.plan_clipped import planned_variances_at
from protocol.plan_types import Plan
from protocol.verdict import as_matrix, check_outputs

__all__ = [
    "MIN_PAIRS_PER_NODE",
    "MIN_PREFIX_PAIRS",
    "SCREEN_DELTA_SHARE",
    "SCREEN_FRACTIONS",
    "Screening",
    "screen_looks",
    "screening_bounds",
]

FloatArray = NDArray[np.float64]

#: Prefixes looked at, as fractions of the challenge's pairs.
SCREEN_FRACTIONS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
#: A look needs at least this many pairs in its prefix ...
MIN_PREFIX_PAIRS = 1000
#: ... and at least this many of every node with pairs (for its sample variance; the
#: plan's variance, scaled to the prefix, bounds each node's term from below).
MIN_PAIRS_PER_NODE = 2
#: Share of delta that screening may cost an honest Prover (all looks, all outputs).
SCREEN_DELTA_SHARE = 0.1


def screen_looks(plan: Plan) -> tuple[int, ...]:
    """Pair counts of the prefixes screened (increasing; empty for plans without clipping).

    A prefix of ``m`` pairs holds about ``m K_j / n`` pairs of node ``j``
    (:mod:`protocol.challenge`); a look is kept when ``m >=``
    :data:`MIN_PREFIX_PAIRS` and its prefix holds at least
    :data:`MIN_PAIRS_PER_NODE` pairs of every node with pairs.
    """
    if plan.clip_levels is None:
        return ()
    n = plan.n_pairs
    node = plan.node_of_pair()
    used = np.asarray(plan.pairs_per_node) > 0
    looks = []
    for fraction in SCREEN_FRACTIONS:
        m = math.floor(fraction * n)
        if m < MIN_PREFIX_PAIRS:
            continue
        counts = np.bincount(node[:m], minlength=len(plan.pairs_per_node))
        if np.all(counts[used] >= MIN_PAIRS_PER_NODE):
            looks.append(m)
    return tuple(sorted(set(looks)))


def screening_bounds(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
    delta: float,
) -> FloatArray:
    """Lower confidence bounds ``L_z`` on every ``err_z`` from the first ``m`` pairs (module doc).

    The arrays hold the first ``m`` pairs of the challenge, ``(m, Z)`` each;
    each bound holds with probability ``>= 1 - delta`` (normal approximations).
    """
    assert plan.clip_levels is not None and plan.planned_tails is not None
    assert plan.planned_variances is not None
    Z = plan.request.n_outputs
    m = np.asarray(first_outputs).shape[0]
    f1 = check_outputs("first_outputs", first_outputs, plan, m)
    f2 = check_outputs("second_outputs", second_outputs, plan, m)
    q1 = f1 - as_matrix("first_predictions", first_predictions, m, Z)
    q2 = f2 - as_matrix("second_predictions", second_predictions, m, Z)
    w = plan.functional.weights
    node = plan.node_of_pair()[:m]
    counts = np.bincount(node, minlength=len(w))
    prefix_counts = [int(c) for c in counts]
    planned = planned_variances_at(plan.request, plan.functional, prefix_counts)
    zq = NormalDist().inv_cdf(1.0 - delta)
    l1 = float(np.abs(np.asarray(w)).sum())
    s_max = plan.functional.bias_range(1.0)[1]  # largest upward bias per unit of B_{>=3}
    # err >= (F - s E[q^2]) / (1 - s) needs s < 1; without it, err >= F - s E[q^2]
    shrink = 1.0 - s_max if s_max < 1.0 else 1.0
    bounds = np.empty(Z)
    for z in range(Z):
        products = cg.clipped_products(q1[:, z], q2[:, z], plan.clip_levels[z])
        value, _, node_var = cg.node_estimate(products, node, w)
        observed = cg.observed_variance_sum(node_var, w, prefix_counts)
        dev = float(cg.deviation(planned[z], delta, observed))
        squares = 0.5 * (q1[:, z] ** 2 + q2[:, z] ** 2)
        second = float(squares.mean() + zq * squares.std(ddof=1) / math.sqrt(m))
        low = value - dev - l1 * plan.planned_tails[z] - plan.tolerance_slack
        numerator = low - s_max * max(second, 0.0)
        bounds[z] = max(numerator, numerator / shrink)  # both bound err; keep the larger
    return bounds


@dataclass(frozen=True)
class Screening:
    """A screen's verdict: the output whose lower bound reached epsilon at a look.

    Attributes:
        output: z.
        pairs: the look's prefix, in pairs (``2 pairs`` points evaluated).
        lower_bound: ``L_z``.
        delta: the probability that this bound fails for honest scores.
    """

    output: int
    pairs: int
    lower_bound: float
    delta: float

    def reason(self, plan: Plan) -> str:
        """One line for the report."""
        return (
            f"output {self.output}: screened out after {2 * self.pairs:,d} of the "
            f"{plan.prover_evaluations:,d} challenge points: err >= {self.lower_bound:.6g} >= "
            f"epsilon {plan.request.epsilon:.6g} with probability >= 1 - {self.delta:.3g} "
            "(the stream was stopped; no spot check was needed)"
        )


def look_delta(plan: Plan) -> float:
    """Failure probability of one output's bound at one look."""
    looks = max(len(screen_looks(plan)), 1)
    return SCREEN_DELTA_SHARE * plan.request.delta / (looks * plan.request.n_outputs)
