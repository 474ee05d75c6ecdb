"""The accept/abort rule, per output, for both protocol modes.

For every output z the Verifier computes ``err_hat_z`` (docs/design.md §1) and
accepts iff ``err_hat_z <= eps/2`` for every z (the plan's threshold) — or, for
the clipped direct gap of practical committed plans (``plan.clip_levels``), iff
the certified upper bound below is under epsilon
(:func:`protocol.decision_clipped.clipped_verdict`).  Alongside it
reports a two-sided interval at the plan's per-output confidence and a
*certified upper bound*

    err_z <= err_hat_z + sampling + |bias_down| + corruption budget + tolerance slack,

which holds with probability ``>= 1 - delta`` jointly over all outputs (union
bound, ``delta/(2Z)`` per output for sampling and ``delta/2`` for the spot
checks), provided every spot check agreed.  In ``rigorous`` planning the
sampling term is the planned Hoeffding deviation; in ``practical`` planning
it is an empirical-Bernstein deviation from the observed per-node variances,
and values beyond ``clip_sigmas`` standard deviations are winsorised — if more
than :data:`MAX_CLIPPED_FRACTION` of them were, the practical-mode assumption
is violated and the output aborts.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from protocol.concentration import bernstein_deviation
from protocol.decision_clipped import (
    Escalation,
    clipped_verdict,
    escalation,
    first_stage,
    hopeless_output,
    verified_matrix,
)
from protocol.errors import InvalidArgument
from protocol.estimators import (
    Estimate,
    PairSample,
    direct_gap,
    residual_weight,
    residual_weight_nnls,
)
from protocol.plan import Plan
from protocol.statistics import STATISTICS, statistic_for
from protocol.verdict import (
    Decision,
    OutputDecision,
    as_matrix,
    check_outputs,
    pair_residuals,
)

__all__ = [
    "MAX_CLIPPED_FRACTION",
    "Decision",
    "Escalation",
    "OutputDecision",
    "decide_committed",
    "decide_paper",
    "escalation",
    "first_stage",
    "hopeless_output",
]

MAX_CLIPPED_FRACTION = 0.01
FloatArray = NDArray[np.float64]


def _clip(plan: Plan, a: FloatArray) -> tuple[FloatArray, float]:
    if plan.clip_at is None:
        return a, 0.0
    clipped = np.clip(a, -plan.clip_at, plan.clip_at)
    return clipped, float(np.mean(clipped != a)) if a.size else 0.0


def _practical_deviation(plan: Plan, sample: PairSample) -> float:
    """Realised deviation of the plan's statistic (:mod:`protocol.statistics`)."""
    r = plan.request
    statistic = STATISTICS[statistic_for(r.mode, r.estimator)]
    weights = plan.functional.weights
    terms = statistic.terms(weights, sample.node_index, sample.first, sample.second)
    return statistic.realised_deviation(
        weights, sample.node_index, terms, value_bound=plan.value_bound, delta=plan.delta_sampling
    )


def _verdict(
    plan: Plan, z: int, estimate: Estimate, deviation: float, clipped: float
) -> OutputDecision:
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


def decide_committed(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
    verified_residuals: FloatArray | None = None,
    escalated: Escalation | None = None,
) -> Decision:
    """Committed mode: direct gap statistic on residuals ``q = f - g_a``.

    Args:
        plan: the plan in force (``mode == "committed"``).
        first_outputs, second_outputs: Prover outputs at x and x', ``(n_pairs, Z)``.
        first_predictions, second_predictions: ``g_a`` at x and x', ``(n_pairs, Z)``.
        verified_residuals: clipped-gap plans: ``f - g_a`` on runs the Verifier
            trained itself (pilot and spot checks), ``(n_v, Z)``; they bound the
            clipping tail.  ``None``: the planned tail only.
        escalated: clipped-gap plans: decide at this stage (its spot
            checks have been drawn and agreed) instead of the plan's own first stage.
    """
    if plan.request.mode != "committed":
        raise InvalidArgument("decide_committed needs a committed-mode plan")
    Z = plan.request.n_outputs
    r1, r2 = pair_residuals(
        plan,
        first_outputs=first_outputs,
        second_outputs=second_outputs,
        first_predictions=first_predictions,
        second_predictions=second_predictions,
    )
    if plan.clip_levels is not None:
        verified = verified_matrix(verified_residuals, Z)
        verdicts_c = [
            clipped_verdict(plan, z, r1[:, z], r2[:, z], verified, escalated) for z in range(Z)
        ]
        return Decision(
            all(v.accept for v in verdicts_c), plan.threshold, tuple(verdicts_c), escalated
        )
    node = plan.node_of_pair()
    verdicts = []
    for z in range(Z):
        q1, c1 = _clip(plan, r1[:, z])
        q2, c2 = _clip(plan, r2[:, z])
        sample = PairSample(node, q1, q2)
        est = direct_gap(
            plan.functional,
            sample,
            output_range=plan.output_range,
            residual_bound=plan.value_bound,
        )
        if plan.clip_at is None:
            deviation = plan.sampling_error
        else:
            deviation = _practical_deviation(plan, sample)
        verdicts.append(_verdict(plan, z, est, deviation, (c1 + c2) / 2.0))
    return Decision(all(v.accept for v in verdicts), plan.threshold, tuple(verdicts))


def decide_paper(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    centre: FloatArray,
    local_outputs: FloatArray,
    local_predictions: FloatArray,
) -> Decision:
    """Paper mode: ``err_hat = mse_hat - B_{>=2}_hat`` (Karchmer et al. 2025, Alg. 1).

    Args:
        plan: the plan in force (``mode == "paper"``).
        first_outputs, second_outputs: Prover outputs at x and x', ``(n_pairs, Z)``.
        centre: constant per output subtracted before products, fixed before
            results arrived (0 in rigorous planning), ``(Z,)``.
        local_outputs: the Verifier's own trainings' outputs, ``(n_local, Z)``.
        local_predictions: ``g_a`` at those points, ``(n_local, Z)``.
    """
    if plan.request.mode != "paper":
        raise InvalidArgument("decide_paper needs a paper-mode plan")
    n, Z = plan.n_pairs, plan.request.n_outputs
    f1 = check_outputs("first_outputs", first_outputs, plan, n)
    f2 = check_outputs("second_outputs", second_outputs, plan, n)
    c = np.asarray(centre, dtype=np.float64).reshape(-1)
    if c.shape != (Z,) or not np.all(np.abs(c) <= plan.request.bound):
        raise InvalidArgument(f"centre must have shape ({Z},) within [-b, b]")
    if plan.clip_at is None and np.any(c != 0.0):
        raise InvalidArgument("rigorous paper-mode planning assumes centre 0")
    n_local = plan.local_trainings
    lf = check_outputs("local_outputs", local_outputs, plan, n_local)
    lg = as_matrix("local_predictions", local_predictions, n_local, Z)
    node = plan.node_of_pair()
    nnls = plan.request.estimator == "three-point-nnls"
    verdicts = []
    for z in range(Z):
        y1, c1 = _clip(plan, f1[:, z] - c[z])
        y2, c2 = _clip(plan, f2[:, z] - c[z])
        sample = PairSample(node, y1, y2)
        estimator = residual_weight_nnls if nnls else residual_weight
        b2 = estimator(plan.functional, sample, output_bound=plan.value_bound)
        sq = (lf[:, z] - lg[:, z]) ** 2
        mse = float(sq.mean())
        mse_se = float(np.std(sq, ddof=1)) / math.sqrt(n_local) if n_local > 1 else 0.0
        est = Estimate(
            mse - b2.value,
            math.hypot(b2.standard_error, mse_se),
            b2.leverage,
            b2.n_evaluations + n_local,
        )
        if plan.clip_at is None:
            deviation = plan.sampling_error + plan.sampling_error_mse
        else:
            big = (plan.request.bound + plan.request.g_bound) ** 2
            deviation = _practical_deviation(plan, sample) + bernstein_deviation(
                float(np.var(sq, ddof=1)) / n_local, big / n_local, plan.delta_sampling
            )
        verdicts.append(_verdict(plan, z, est, deviation, (c1 + c2) / 2.0))
    return Decision(all(v.accept for v in verdicts), plan.threshold, tuple(verdicts))
