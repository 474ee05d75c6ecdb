"""The clipped direct gap's verdict and its second stage (:mod:`protocol.clipped_gap`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol import clipped_gap as cg
from protocol.plan import Plan
from protocol.verdict import OutputDecision, as_matrix, check_outputs

__all__ = ["Escalation", "clipped_verdict", "escalation", "hopeless_output", "verified_matrix"]

FloatArray = NDArray[np.float64]

#: The second stage may spend up to this many times the cheapest option's spot
#: checks on a higher clip level (:func:`escalation`).
ROBUST_COST = 2.0


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
    # The plan planned the tail at its own clip level only; at a second-stage level
    # the bound rests on the verified runs alone (pilot and every spot check).
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


def clipped_verdict(
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
    max_spot_checks: float = math.inf,
) -> Escalation | None:
    """The cheapest second stage under which every output could still be accepted.

    For each clip multiple g of :data:`protocol.clipped_gap.ESCALATION_MULTIPLES`
    every output's margin ``epsilon - (err_hat + dev + 2 clip_bias + tolerance +
    bias_down)`` at the second stage's failure probabilities must be positive
    (the clipping term counted twice: the second stage's own spot checks
    re-estimate the tail, and a heavy tail seen once is likely seen again);
    it buys ``m*_g = min_z floor(margin_z / Lambda_z)`` tolerated corruptions,
    which take ``k = ceil(2n ln(1/delta_spot2) / (m*_g + 1))`` spot checks in all.
    Among those it takes the highest clip that costs at most
    :data:`ROBUST_COST` times the cheapest and at most ``max_spot_checks``
    (a first stage fails on a heavy tail, and the second stage's larger
    sample sees more of it: a higher clip is what keeps it from failing
    again); the cheapest multiple if none qualifies.  Soundness does not depend on the choice:
    the spot checks fail only if the first ``2n ln(1/delta_spot2) / |L|``
    draws miss all |L| lies (one event, whatever g), and sampling and tail are
    split over the multiples.  ``None`` when no multiple leaves every margin
    positive.
    """
    if plan.clip_levels is None:
        return None
    n, Z = plan.n_pairs, plan.request.n_outputs
    f1 = check_outputs("first_outputs", first_outputs, plan, n)
    f2 = check_outputs("second_outputs", second_outputs, plan, n)
    g1 = as_matrix("first_predictions", first_predictions, n, Z)
    g2 = as_matrix("second_predictions", second_predictions, n, Z)
    verified = verified_matrix(verified_residuals, Z)
    d_spot, d_sampling, d_tail = cg.second_stage_deltas(
        plan.delta_spot, plan.delta_sampling, plan.delta_tail
    )
    eps, fixed = plan.request.epsilon, plan.tolerance_slack + abs(plan.bias_lower)
    options: list[Escalation] = []
    for g in cg.ESCALATION_MULTIPLES:
        tolerated = math.inf
        for z in range(Z):
            q1, q2 = f1[:, z] - g1[:, z], f2[:, z] - g2[:, z]
            t = _clipped_terms(plan, z, q1, q2, verified, g, d_sampling, d_tail)
            # The second stage's own spot checks re-estimate the tail: reserve as
            # much again as it charges now, so that they rarely undo the choice.
            margin = eps - (t.value + t.deviation + 2.0 * t.clip_bias + fixed)
            tolerated = min(tolerated, math.floor(margin / t.leverage) if margin > 0 else -1)
        if tolerated < 0:
            continue
        m = int(tolerated)
        n_points = 2 * n
        k = min(n_points, math.ceil(n_points * math.log(1.0 / d_spot) / (m + 1)))
        options.append(Escalation(multiple=g, tolerated=m, spot_checks=k))
    if not options:
        return None
    cheapest = min(options, key=lambda e: e.spot_checks)
    limit = min(max_spot_checks, ROBUST_COST * cheapest.spot_checks)
    affordable = [e for e in options if e.spot_checks <= limit]
    return max(affordable, key=lambda e: e.multiple) if affordable else cheapest


def verified_matrix(verified_residuals: FloatArray | None, n_outputs: int) -> FloatArray | None:
    if verified_residuals is None:
        return None
    return np.asarray(verified_residuals, dtype=np.float64).reshape(-1, n_outputs)


def hopeless_output(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
) -> int | None:
    """An output that no spot-check outcome can accept, or ``None``: a cheap rejection.

    Before any spot check the Verifier can bound every certified upper bound it
    could compute later from below: at the first stage's clip level
    ``U >= err_hat + dev + ||w||_1 T_planned + tolerance + bias_down`` (the
    decision's tail is at least the planned one, its deviation at least the
    planned one, and corruption is charged ``>= 0``), and at a second stage's
    multiple ``g`` the same without the tail, with the first stage's (larger)
    failure probabilities.  If for some output that lower bound reaches
    epsilon at every level, the audit rejects whatever the spot checks show,
    so they are skipped: rejecting bad scores costs the Verifier its pilot
    only.  Rejecting never weakens soundness; an honest Prover accepted by the
    full procedure is never rejected here, since each bound is below the
    corresponding ``U``.
    """
    if plan.clip_levels is None:
        return None
    n, Z = plan.n_pairs, plan.request.n_outputs
    f1 = check_outputs("first_outputs", first_outputs, plan, n)
    f2 = check_outputs("second_outputs", second_outputs, plan, n)
    g1 = as_matrix("first_predictions", first_predictions, n, Z)
    g2 = as_matrix("second_predictions", second_predictions, n, Z)
    eps, fixed = plan.request.epsilon, plan.tolerance_slack + abs(plan.bias_lower)
    for z in range(Z):
        q1, q2 = f1[:, z] - g1[:, z], f2[:, z] - g2[:, z]
        lowest = math.inf
        for g in cg.ESCALATION_MULTIPLES:
            t = _clipped_terms(plan, z, q1, q2, None, g, plan.delta_sampling, plan.delta_tail)
            lowest = min(lowest, t.value + t.deviation + t.clip_bias + fixed)
        if lowest >= eps:
            return z
    return None
