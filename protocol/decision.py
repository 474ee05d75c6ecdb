"""The accept/abort rule: the verdict of the statistic that made the plan.

:func:`decide` hands the audit's numbers (:class:`protocol.stats.AuditData`)
to the plan's statistic (:mod:`protocol.stats`); :func:`decide_committed` and
:func:`decide_paper` are the same with the two modes' inputs as keywords.
Each statistic documents its rule and certified bound: the clipped gap in
:mod:`protocol.stats.clipped_gap`, the direct gap and paper residual in
:mod:`protocol.stats._linear_decision`.  The clipped gap's staged spot checks
(:func:`first_stage`, :func:`escalation`, :func:`hopeless_output`) are
re-exported from :mod:`protocol.decision_clipped`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.decision_clipped import (
    Escalation,
    escalation,
    first_stage,
    hopeless_output,
)
from protocol.errors import InvalidArgument
from protocol.plan_types import Plan
from protocol.stats._linear_decision import MAX_CLIPPED_FRACTION
from protocol.stats.base import AuditData
from protocol.stats.registry import statistic_of
from protocol.verdict import Decision, OutputDecision

__all__ = [
    "MAX_CLIPPED_FRACTION",
    "Decision",
    "Escalation",
    "OutputDecision",
    "decide",
    "decide_committed",
    "decide_paper",
    "escalation",
    "first_stage",
    "hopeless_output",
]

FloatArray = NDArray[np.float64]


def decide(plan: Plan, data: AuditData) -> Decision:
    """The verdict of the statistic that made ``plan`` (:mod:`protocol.stats`)."""
    return statistic_of(plan).decide(plan, data)


def decide_committed(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
    verified_residuals: FloatArray | None = None,
    escalated: Escalation | None = None,
    first_points: NDArray[np.int8] | None = None,
    second_points: NDArray[np.int8] | None = None,
    spot_checks: int | None = None,
) -> Decision:
    """Committed mode: the plan's statistic on residuals ``q = f - g_a``.

    Args:
        plan: the plan in force (a committed-mode statistic's).
        first_outputs, second_outputs: Prover outputs at x and x', ``(n_pairs, Z)``.
        first_predictions, second_predictions: ``g_a`` at x and x', ``(n_pairs, Z)``.
        verified_residuals: clipped-gap plans: ``f - g_a`` on runs the Verifier
            trained itself (pilot and spot checks), ``(n_v, Z)``; they bound the
            clipping tail.  ``None``: the planned tail only.
        escalated: clipped-gap plans: decide at this stage (its spot
            checks have been drawn and agreed) instead of the plan's own first stage.
        first_points, second_points: the challenge's subsets at x and x',
            int8 ``(n_pairs, N)`` (the u-statistic needs them).
        spot_checks: how many spot checks were drawn and agreed (``None``: the plan's).
    """
    if statistic_of(plan).layout.mode != "committed":
        raise InvalidArgument("decide_committed needs a committed-mode plan")
    data = AuditData(
        first_outputs=first_outputs,
        second_outputs=second_outputs,
        first_predictions=first_predictions,
        second_predictions=second_predictions,
        verified_residuals=verified_residuals,
        escalated=escalated,
        first_points=first_points,
        second_points=second_points,
        spot_checks=spot_checks,
    )
    return decide(plan, data)


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
        plan: the plan in force (a paper-mode statistic's).
        first_outputs, second_outputs: Prover outputs at x and x', ``(n_pairs, Z)``.
        centre: constant per output subtracted before products, fixed before
            results arrived (0 in rigorous planning), ``(Z,)``.
        local_outputs: the Verifier's own trainings' outputs, ``(n_local, Z)``.
        local_predictions: ``g_a`` at those points, ``(n_local, Z)``.
    """
    if statistic_of(plan).layout.mode != "paper":
        raise InvalidArgument("decide_paper needs a paper-mode plan")
    data = AuditData(
        first_outputs=first_outputs,
        second_outputs=second_outputs,
        centre=centre,
        local_outputs=local_outputs,
        local_predictions=local_predictions,
    )
    return decide(plan, data)
