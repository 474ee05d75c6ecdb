"""The decision of the linear pair statistics (direct gap, paper residual).

For every output z the Verifier computes ``err_hat_z`` and accepts iff
``err_hat_z <= eps/2`` (the plan's threshold) and the certified upper bound

    err_z <= err_hat_z + sampling + |bias_down| + corruption budget + tolerance slack

is below epsilon; the bound holds with probability ``>= 1 - delta`` jointly
over all outputs (union bound, ``delta/(2Z)`` per output for sampling and
``delta/2`` for the spot checks), provided every spot check agreed.  In
``rigorous`` planning the sampling term is the planned Hoeffding deviation; in
``practical`` planning it is the larger of the planned and an
empirical-Bernstein deviation from the observed per-node variances, and values
beyond ``clip_sigmas`` standard deviations are winsorised — if more than
:data:`MAX_CLIPPED_FRACTION` of them were, the practical-mode assumption is
violated and the output aborts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.estimators import Estimate, PairSample
from protocol.plan_types import Plan
from protocol.statistics import PairStatistic
from protocol.verdict import OutputDecision

__all__ = ["MAX_CLIPPED_FRACTION", "clip_values", "linear_verdict", "realised_deviation"]

MAX_CLIPPED_FRACTION = 0.01
FloatArray = NDArray[np.float64]


def clip_values(plan: Plan, a: FloatArray) -> tuple[FloatArray, float]:
    """Winsorise at ``plan.clip_at`` (practical planning); the values and the fraction clipped."""
    if plan.clip_at is None:
        return a, 0.0
    clipped = np.clip(a, -plan.clip_at, plan.clip_at)
    return clipped, float(np.mean(clipped != a)) if a.size else 0.0


def realised_deviation(plan: Plan, statistic: PairStatistic, sample: PairSample) -> float:
    """Realised (empirical-Bernstein) deviation of ``statistic`` on ``sample``."""
    weights = plan.functional.weights
    terms = statistic.terms(weights, sample.node_index, sample.first, sample.second)
    return statistic.realised_deviation(
        weights, sample.node_index, terms, value_bound=plan.value_bound, delta=plan.delta_sampling
    )


def linear_verdict(
    plan: Plan, z: int, estimate: Estimate, deviation: float, clipped: float
) -> OutputDecision:
    """One output's verdict from its estimate, sampling deviation and clipped fraction."""
    # at least the planned deviation: the rule the plan was sized with, so that an
    # output accepted within its threshold certifies err below epsilon
    deviation = max(deviation, plan.sampling_error + plan.sampling_error_mse)
    upper = (
        estimate.value
        + deviation
        + abs(plan.bias_lower)
        + plan.corruption_budget
        + plan.tolerance_slack
    )
    reasons = []
    if estimate.value > plan.threshold:
        reasons.append(
            f"output {z}: estimated err {estimate.value:.6g} exceeds the threshold "
            f"{plan.threshold:.6g} (eps/2)"
        )
    if not reasons and upper > plan.request.epsilon:
        reasons.append(
            f"output {z}: the certified upper bound {upper:.6g} is above epsilon "
            f"{plan.request.epsilon:.6g} (the observed variance exceeds the planned one)"
        )
    if clipped > MAX_CLIPPED_FRACTION:
        reasons.append(
            f"output {z}: {100 * clipped:.2f}% of values lie beyond the practical-mode clip "
            f"{plan.clip_at:.6g}; the declared variance does not hold"
        )
    return OutputDecision(
        output=z,
        estimate=estimate.value,
        standard_error=estimate.standard_error,
        interval=(estimate.value - deviation, estimate.value + deviation),
        certified_upper=upper,
        accept=not reasons,
        clipped_fraction=clipped,
        reason="; ".join(reasons),
    )
