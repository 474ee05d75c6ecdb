"""The clipped direct gap's verdict and its second stage (:mod:`protocol.clipped_gap`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol import clipped_gap as cg
from protocol.escalation import Escalation
from protocol.plan_types import Plan
from protocol.verdict import OutputDecision, pair_residuals

__all__ = [
    "Escalation",
    "clipped_verdict",
    "escalation",
    "first_stage",
    "hopeless_output",
    "verified_matrix",
]

FloatArray = NDArray[np.float64]

#: The second stage may spend up to this many times the cheapest option's spot
#: checks on a higher clip level (:func:`escalation`).
ROBUST_COST = 2.0


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
        _, d_sampling, d_tail = escalation.deltas(plan)
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
    stage: int = 2,
) -> Escalation | None:
    """A later stage (``stage`` 2, 3, ...) under which every output could still be accepted.

    For each clip multiple g of :data:`protocol.clipped_gap.ESCALATION_MULTIPLES`
    every output's margin ``epsilon - (err_hat + dev + 2 clip_bias + tolerance +
    bias_down)`` at the stage's failure probabilities must be positive (the
    clipping term counted twice: the stage's own spot checks re-estimate the
    tail, and a heavy tail seen once is likely seen again); it buys
    ``m*_g = min_z floor(margin_z / Lambda_z)`` tolerated corruptions, which
    take ``k = ceil(2n ln(1/delta_spot_s) / (m*_g + 1))`` spot checks in all.
    Among those it takes the highest clip that costs at most
    :data:`ROBUST_COST` times the cheapest and at most ``max_spot_checks``
    (the cheapest if none qualifies), raised to the lowest clip above every
    verified ``q^2`` when that fits within ``max_spot_checks``: an earlier
    stage fails on a heavy tail, and a larger sample sees more of it, so a
    clip the tail already crosses would likely fail again.

    Soundness does not depend on the choice: the stage's spot checks fail only
    if the first ``2n ln(1/delta_spot_s) / |L|`` draws of the Verifier's random
    order miss all |L| lies (one event per stage, whatever g and however the
    data chose the number of draws), and sampling and tail are split over the
    multiples and the stages (:func:`protocol.clipped_gap.stage_deltas`).
    ``None`` when no multiple leaves every margin positive.
    """
    if plan.clip_levels is None:
        return None
    n, Z = plan.n_pairs, plan.request.n_outputs
    r1, r2 = pair_residuals(
        plan,
        first_outputs=first_outputs,
        second_outputs=second_outputs,
        first_predictions=first_predictions,
        second_predictions=second_predictions,
    )
    verified = verified_matrix(verified_residuals, Z)
    d_spot, d_sampling, d_tail = cg.stage_deltas(
        plan.delta_spot, plan.delta_sampling, plan.delta_tail, stage
    )
    options: list[Escalation] = []
    for g in cg.ESCALATION_MULTIPLES:
        tolerated = _tolerated_at(plan, g, r1, r2, verified, d_sampling, d_tail)
        if tolerated >= 0:
            m = int(tolerated)
            k = min(2 * n, math.ceil(2 * n * math.log(1.0 / d_spot) / (m + 1)))
            options.append(Escalation(multiple=g, tolerated=m, spot_checks=k, stage=stage))
    return _robust_choice(plan, options, verified, max_spot_checks) if options else None


def _tolerated_at(
    plan: Plan,
    multiple: float,
    r1: FloatArray,
    r2: FloatArray,
    verified: FloatArray | None,
    delta_sampling: float,
    delta_tail: float,
) -> float:
    """Corruptions tolerated at clip ``multiple``: ``min_z floor(margin_z / Lambda_z)``.

    ``-1`` when some output's margin is not positive; ``inf`` with no outputs.
    """
    eps, fixed = plan.request.epsilon, plan.tolerance_slack + abs(plan.bias_lower)
    tolerated = math.inf
    for z in range(plan.request.n_outputs):
        t = _clipped_terms(
            plan, z, r1[:, z], r2[:, z], verified, multiple, delta_sampling, delta_tail
        )
        # The stage's own spot checks re-estimate the tail: reserve as much
        # again as it charges now, so that they rarely undo the choice.
        margin = eps - (t.value + t.deviation + 2.0 * t.clip_bias + fixed)
        tolerated = min(tolerated, math.floor(margin / t.leverage) if margin > 0 else -1)
    return tolerated


def _robust_choice(
    plan: Plan,
    options: list[Escalation],
    verified: FloatArray | None,
    max_spot_checks: float,
) -> Escalation:
    """The highest clip within :data:`ROBUST_COST` x the cheapest, raised above the verified tail.

    See :func:`escalation`.
    """
    assert plan.clip_levels is not None
    cheapest = min(options, key=lambda e: e.spot_checks)
    limit = min(max_spot_checks, ROBUST_COST * cheapest.spot_checks)
    affordable = [e for e in options if e.spot_checks <= limit]
    choice = max(affordable, key=lambda e: e.multiple) if affordable else cheapest
    if verified is None or not verified.size:
        return choice
    # a tail already seen: clip above every verified q^2 if the cap allows
    largest = (verified**2).max(axis=0)
    clips = np.asarray(plan.clip_levels)
    above = [
        e
        for e in options
        if e.spot_checks <= max_spot_checks and bool(np.all(e.multiple * clips > largest))
    ]
    if above:
        lowest = min(above, key=lambda e: e.multiple)
        if lowest.multiple > choice.multiple:
            return lowest
    return choice


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
    Z = plan.request.n_outputs
    r1, r2 = pair_residuals(
        plan,
        first_outputs=first_outputs,
        second_outputs=second_outputs,
        first_predictions=first_predictions,
        second_predictions=second_predictions,
    )
    eps, fixed = plan.request.epsilon, plan.tolerance_slack + abs(plan.bias_lower)
    for z in range(Z):
        q1, q2 = r1[:, z], r2[:, z]
        lowest = math.inf
        for g in cg.ESCALATION_MULTIPLES:
            t = _clipped_terms(plan, z, q1, q2, None, g, plan.delta_sampling, plan.delta_tail)
            lowest = min(lowest, t.value + t.deviation + t.clip_bias + fixed)
        if lowest >= eps:
            return z
    return None


def first_stage(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
) -> Escalation:
    """The first stage's spot checks, sized from the Prover's results (at most the plan's).

    The plan buys enough spot checks for the worst honest case it must pass
    (err at the completeness radius, the statistic at its upper deviation).
    Once the results are in, the Verifier knows each output's actual margin
    ``epsilon - (err_hat + dev + 2 clip_bias + tolerance + bias_down)`` at the
    planned clip level (the clipping term counted twice: with fewer spot checks
    its verified bound is wider); it tolerates ``m* = max(planned m*,
    min_z floor(margin_z / Lambda_z))`` corrupted pairs and draws
    ``k = min(planned k, ceil(2n ln(1/delta_spot) / (m* + 1)))``.

    Soundness is unchanged: the results, and so ``m*``, are fixed before the
    private spot-check indices are drawn, so if more than ``m*`` pairs are
    corrupted the ``k`` uniform draws all miss them with probability at most
    ``delta_spot``; otherwise corruption moves the statistic by at most
    ``m* Lambda``, which the decision charges.  Honest results far inside
    epsilon thus cost fewer spot checks than the plan's worst case.
    """
    assert plan.clip_levels is not None
    n, Z = plan.n_pairs, plan.request.n_outputs
    r1, r2 = pair_residuals(
        plan,
        first_outputs=first_outputs,
        second_outputs=second_outputs,
        first_predictions=first_predictions,
        second_predictions=second_predictions,
    )
    eps, fixed = plan.request.epsilon, plan.tolerance_slack + abs(plan.bias_lower)
    tolerated = math.inf
    for z in range(Z):
        q1, q2 = r1[:, z], r2[:, z]
        t = _clipped_terms(plan, z, q1, q2, None, 1.0, plan.delta_sampling, plan.delta_tail)
        margin = eps - (t.value + t.deviation + 2.0 * t.clip_bias + fixed)
        tolerated = min(tolerated, math.floor(margin / t.leverage) if margin > 0 else -1)
    m = max(plan.tolerated_corruptions, int(tolerated))
    n_points = 2 * n
    k = min(n_points, math.ceil(n_points * math.log(1.0 / plan.delta_spot) / (m + 1)))
    return Escalation(1.0, m, min(plan.spot_checks, k), stage=1)
