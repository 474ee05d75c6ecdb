"""The accept/abort rule, per output, for both protocol modes.

For every output z the Verifier computes ``err_hat_z`` (docs/design.md §1) and
accepts iff ``err_hat_z <= eps/2`` for every z (the plan's threshold) — or, for
the clipped direct gap of practical committed plans (``plan.clip_levels``), iff
the certified upper bound below is under epsilon (:func:`_clipped_verdict`).  Alongside it
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
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol import clipped_gap as cg
from protocol.concentration import empirical_bernstein_deviation
from protocol.errors import InvalidArgument, VerificationError
from protocol.estimators import (
    Estimate,
    PairSample,
    direct_gap,
    residual_weight,
    residual_weight_nnls,
)
from protocol.plan import Plan

__all__ = [
    "MAX_CLIPPED_FRACTION",
    "Decision",
    "Escalation",
    "OutputDecision",
    "decide_committed",
    "decide_paper",
    "escalation",
]

MAX_CLIPPED_FRACTION = 0.01
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class OutputDecision:
    """The verdict for one output.

    Attributes:
        output: index z.
        estimate: ``err_hat_z`` (squared output units).
        standard_error: its estimated standard deviation.
        interval: ``(estimate - t, estimate + t)`` with t the sampling deviation.
        certified_upper: upper bound on ``err_z`` (see module docstring).
        accept: ``estimate <= threshold`` (and, in practical planning, few clipped values).
        clipped_fraction: fraction of values winsorised (0 in rigorous planning).
        reason: empty when accepted, else why not.
    """

    output: int
    estimate: float
    standard_error: float
    interval: tuple[float, float]
    certified_upper: float
    accept: bool
    clipped_fraction: float
    reason: str


@dataclass(frozen=True)
class Decision:
    """All outputs' verdicts; ``accept`` iff every output accepts."""

    accept: bool
    threshold: float
    outputs: tuple[OutputDecision, ...]

    @property
    def reason(self) -> str:
        """Human-readable reason for an abort ("" on accept)."""
        return "; ".join(o.reason for o in self.outputs if not o.accept)


def _as_matrix(name: str, a: FloatArray, rows: int, cols: int) -> FloatArray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1 and cols == 1:
        arr = arr[:, None]
    if arr.shape != (rows, cols):
        raise InvalidArgument(f"{name} must have shape ({rows}, {cols}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise VerificationError(f"{name} contains NaN or infinite values")
    return arr


def _check_outputs(name: str, a: FloatArray, plan: Plan, rows: int) -> FloatArray:
    arr = _as_matrix(name, a, rows, plan.request.n_outputs)
    b = plan.request.bound
    if np.any(np.abs(arr) > b):
        worst = float(np.abs(arr).max())
        raise VerificationError(f"{name}: output {worst:.6g} lies outside the bound [-{b}, {b}]")
    return arr


def _clip(plan: Plan, a: FloatArray) -> tuple[FloatArray, float]:
    if plan.clip_at is None:
        return a, 0.0
    clipped = np.clip(a, -plan.clip_at, plan.clip_at)
    return clipped, float(np.mean(clipped != a)) if a.size else 0.0


def _practical_deviation(plan: Plan, sample: PairSample, terms: FloatArray) -> float:
    counts = sample.counts(len(plan.functional.nodes))
    var_sum = 0.0
    for j in range(len(counts)):
        t = terms[sample.node_index == j]
        if t.size >= 2:
            var_sum += t.size * float(np.var(t, ddof=1))
    w = np.abs(np.asarray(plan.functional.weights))
    max_dev = float((w / counts).max()) * 2.0 * plan.value_bound**2
    return empirical_bernstein_deviation(var_sum, max_dev, plan.delta_sampling)


def _verdict(
    plan: Plan, z: int, estimate: Estimate, deviation: float, clipped: float
) -> OutputDecision:
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


@dataclass(frozen=True)
class Escalation:
    """A second stage of spot checks at a higher clip level (clipped-gap plans).

    Attributes:
        multiple: the clip levels are ``multiple * plan.clip_levels``.
        tolerated: corrupted pairs the enlarged spot check tolerates.
        spot_checks: total spot checks (first stage included) it needs.
    """

    multiple: float
    tolerated: int
    spot_checks: int


@dataclass(frozen=True)
class _Terms:
    """The certified terms of one output at one clip level (before corruption)."""

    value: float
    deviation: float
    clip_bias: float
    observed_variance: float
    clipped: float
    leverage: float


def _clipped_terms(
    plan: Plan,
    z: int,
    q1: FloatArray,
    q2: FloatArray,
    verified: FloatArray | None,
    multiple: float,
    delta_sampling: float,
    delta_tail: float,
) -> _Terms:
    assert plan.clip_levels is not None and plan.planned_tails is not None
    assert plan.planned_variances is not None
    clip, w = plan.clip_levels[z] * multiple, plan.functional.weights
    products = cg.clipped_products(q1, q2, clip)
    value, _, node_var = cg.node_estimate(products, plan.node_of_pair(), w)
    observed = cg.observed_variance_sum(node_var, w, plan.pairs_per_node)
    dev = float(cg.deviation(plan.planned_variances[z], delta_sampling, observed))
    tail = plan.planned_tails[z] if multiple == 1.0 else 0.0
    if verified is not None and verified.size:
        tail = max(tail, cg.tail_mean_upper(verified[:, z] ** 2, clip, delta_tail))
    return _Terms(
        value=value,
        deviation=dev,
        clip_bias=float(cg.clip_bias(w, tail)),
        observed_variance=observed,
        clipped=float(np.mean(np.abs(q1 * q2) > clip)),
        leverage=float(cg.leverage(w, plan.pairs_per_node, clip)),
    )


def _clipped_verdict(
    plan: Plan,
    z: int,
    q1: FloatArray,
    q2: FloatArray,
    verified: FloatArray | None,
    escalation: Escalation | None = None,
) -> OutputDecision:
    """Clipped direct gap (:mod:`protocol.clipped_gap`): accept iff ``U_z < epsilon``.

    ``U_z = err_hat + dev + clip_bias + tolerance + bias_down + m* Lambda_z`` with
    the deviation and the tail at least their planned values (realised values
    can only raise them), so an accepted output certifies ``err_z < epsilon``.
    With an :class:`Escalation` the clip level, tolerated count and failure
    probabilities are the second stage's.
    """
    multiple, tolerated = 1.0, plan.tolerated_corruptions
    d_sampling, d_tail = plan.delta_sampling, plan.delta_tail
    if escalation is not None:
        multiple, tolerated = escalation.multiple, escalation.tolerated
        _, d_sampling, d_tail = cg.second_stage_deltas(plan.delta_spot, d_sampling, d_tail)
    t = _clipped_terms(plan, z, q1, q2, verified, multiple, d_sampling, d_tail)
    corruption = tolerated * t.leverage
    upper = (
        t.value + t.deviation + t.clip_bias + plan.tolerance_slack + abs(plan.bias_lower)
        + corruption
    )  # fmt: skip
    eps = plan.request.epsilon
    reason = ""
    if not upper < eps:
        reason = (
            f"output {z}: estimated err {t.value:.6g} exceeds the threshold "
            f"{t.value + eps - upper:.6g} (epsilon {eps:.6g} minus sampling {t.deviation:.3g}, "
            f"clipping {t.clip_bias:.3g} and corruption {corruption:.3g}): the certified upper "
            f"bound {upper:.6g} is not below epsilon"
        )
    return OutputDecision(
        output=z,
        estimate=t.value,
        standard_error=math.sqrt(t.observed_variance),
        interval=(t.value - t.deviation, t.value + t.deviation),
        certified_upper=upper,
        accept=not reason,
        clipped_fraction=t.clipped,
        reason=reason,
    )


def escalation(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
    verified_residuals: FloatArray | None,
) -> Escalation | None:
    """The cheapest second stage under which every output could still be accepted.

    For each clip multiple g of :data:`protocol.clipped_gap.ESCALATION_MULTIPLES`
    every output's margin ``epsilon - (err_hat + dev + clip_bias + tolerance +
    bias_down)`` at the second stage's failure probabilities must be positive;
    it buys ``m*_g = min_z floor(margin_z / Lambda_z)`` tolerated corruptions,
    which take ``k = ceil(2n ln(1/delta_spot2) / (m*_g + 1))`` spot checks in all.
    Soundness does not depend on the choice: the spot checks fail only if the
    first ``2n ln(1/delta_spot2) / |L|`` draws miss all |L| lies (one event,
    whatever g), and sampling and tail are split over the multiples.
    ``None`` when no multiple leaves every margin positive.
    """
    if plan.clip_levels is None:
        return None
    n, Z = plan.n_pairs, plan.request.n_outputs
    f1 = _check_outputs("first_outputs", first_outputs, plan, n)
    f2 = _check_outputs("second_outputs", second_outputs, plan, n)
    g1 = _as_matrix("first_predictions", first_predictions, n, Z)
    g2 = _as_matrix("second_predictions", second_predictions, n, Z)
    verified = _verified(verified_residuals, Z)
    d_spot, d_sampling, d_tail = cg.second_stage_deltas(
        plan.delta_spot, plan.delta_sampling, plan.delta_tail
    )
    eps, fixed = plan.request.epsilon, plan.tolerance_slack + abs(plan.bias_lower)
    best: Escalation | None = None
    for g in cg.ESCALATION_MULTIPLES:
        tolerated = math.inf
        for z in range(Z):
            q1, q2 = f1[:, z] - g1[:, z], f2[:, z] - g2[:, z]
            t = _clipped_terms(plan, z, q1, q2, verified, g, d_sampling, d_tail)
            margin = eps - (t.value + t.deviation + t.clip_bias + fixed)
            tolerated = min(tolerated, math.floor(margin / t.leverage) if margin > 0 else -1)
        if tolerated < 0:
            continue
        m = int(tolerated)
        n_points = 2 * n
        k = min(n_points, math.ceil(n_points * math.log(1.0 / d_spot) / (m + 1)))
        if best is None or k < best.spot_checks:
            best = Escalation(multiple=g, tolerated=m, spot_checks=k)
    return best


def _verified(verified_residuals: FloatArray | None, n_outputs: int) -> FloatArray | None:
    if verified_residuals is None:
        return None
    return np.asarray(verified_residuals, dtype=np.float64).reshape(-1, n_outputs)


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
        escalated: clipped-gap plans: decide at this second stage (its spot
            checks have been drawn and agreed) instead of the first.
    """
    if plan.request.mode != "committed":
        raise InvalidArgument("decide_committed needs a committed-mode plan")
    n, Z = plan.n_pairs, plan.request.n_outputs
    f1 = _check_outputs("first_outputs", first_outputs, plan, n)
    f2 = _check_outputs("second_outputs", second_outputs, plan, n)
    g1 = _as_matrix("first_predictions", first_predictions, n, Z)
    g2 = _as_matrix("second_predictions", second_predictions, n, Z)
    if plan.clip_levels is not None:
        verified = _verified(verified_residuals, Z)
        verdicts_c = [
            _clipped_verdict(plan, z, f1[:, z] - g1[:, z], f2[:, z] - g2[:, z], verified, escalated)
            for z in range(Z)
        ]
        return Decision(all(v.accept for v in verdicts_c), plan.threshold, tuple(verdicts_c))
    node = plan.node_of_pair()
    verdicts = []
    for z in range(Z):
        q1, c1 = _clip(plan, f1[:, z] - g1[:, z])
        q2, c2 = _clip(plan, f2[:, z] - g2[:, z])
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
            w = np.asarray(plan.functional.weights)
            counts = sample.counts(len(w))
            terms = w[node] / counts[node] * q1 * q2
            deviation = _practical_deviation(plan, sample, terms)
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
    f1 = _check_outputs("first_outputs", first_outputs, plan, n)
    f2 = _check_outputs("second_outputs", second_outputs, plan, n)
    c = np.asarray(centre, dtype=np.float64).reshape(-1)
    if c.shape != (Z,) or not np.all(np.abs(c) <= plan.request.bound):
        raise InvalidArgument(f"centre must have shape ({Z},) within [-b, b]")
    if plan.clip_at is None and np.any(c != 0.0):
        raise InvalidArgument("rigorous paper-mode planning assumes centre 0")
    n_local = plan.local_trainings
    lf = _check_outputs("local_outputs", local_outputs, plan, n_local)
    lg = _as_matrix("local_predictions", local_predictions, n_local, Z)
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
            w = np.asarray(plan.functional.weights)
            counts = sample.counts(len(w))
            terms = (y1**2 + y2**2) / (2 * n) - w[node] / counts[node] * y1 * y2
            big = (plan.request.bound + plan.request.g_bound) ** 2
            deviation = _practical_deviation(plan, sample, terms) + empirical_bernstein_deviation(
                float(np.var(sq, ddof=1)) / n_local, big / n_local, plan.delta_sampling
            )
        verdicts.append(_verdict(plan, z, est, deviation, (c1 + c2) / 2.0))
    return Decision(all(v.accept for v in verdicts), plan.threshold, tuple(verdicts))
