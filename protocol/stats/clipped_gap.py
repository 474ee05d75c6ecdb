"""The clipped direct gap (the default statistic): per-output clipped products of residuals.

The terms ``w_j / n_j clip(q q', c_z)`` at level ``c_z`` (a multiple of the
pilot's ``E[q_z^2]``) and the LP node functional (exact to degree 2);
accept an output iff its certified bound ``U_z`` (estimate, deviation,
clipping bias from the verified tail, tolerated corruption, tolerance,
downward bias) is below epsilon.  The maths: :mod:`protocol.clipped_gap`
(terms, tail, deviation), :mod:`protocol.plan_clipped` (the planner) and
:mod:`protocol.decision_clipped` (the verdict, the first stage's spot checks
and later stages).  The first stage holds
:data:`protocol.clipped_gap.FIRST_STAGE_SHARE` of delta; the later stages share
the rest.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol import clipped_gap as cg
from protocol import screening
from protocol.decision_clipped import clipped_verdict, verified_matrix
from protocol.errors import InvalidArgument
from protocol.plan_clipped import plan_clipped_gap
from protocol.plan_types import DeltaShare, Estimator, Plan, PlanRequest
from protocol.stats.base import AuditData, ChallengeLayout, committed_residuals
from protocol.verdict import Decision

__all__ = ["ClippedGap"]

FloatArray = NDArray[np.float64]


class ClippedGap:
    """The clipped direct gap (committed mode, practical planning, ``lp`` functional)."""

    name = "clipped-gap"
    summary = "clipped direct gap with the LP functional, spot checks sized from the results"
    layout = ChallengeLayout(mode="committed", staged_spot_checks=True)
    plans_within_cap = True
    estimators: tuple[Estimator, ...] = ("lp",)
    plannings: tuple[str, ...] = ("practical",)

    def check(self, request: PlanRequest) -> None:
        if (
            request.estimator not in self.estimators
            or request.planning not in self.plannings
            or request.mode != self.layout.mode
        ):
            raise InvalidArgument(
                "the lp estimator (clipped direct gap) serves committed mode with practical "
                "planning only"
            )

    def plan(self, request: PlanRequest) -> Plan:
        return plan_clipped_gap(request)

    def delta_split(self, plan: Plan) -> tuple[DeltaShare, ...]:
        z = plan.request.n_outputs
        first = plan.delta_spot + z * (plan.delta_sampling + plan.delta_tail)
        return (
            DeltaShare("spot checks", plan.delta_spot),
            DeltaShare("sampling, per output", plan.delta_sampling, z),
            DeltaShare("clipping tail, per output", plan.delta_tail, z),
            DeltaShare(f"{cg.LATER_STAGES} later stages", plan.request.delta - first),
        )

    def assumptions(self, plan: Plan) -> tuple[str, ...]:
        return plan.assumptions

    def spot_checks(self, plan: Plan, data: AuditData) -> int:
        return plan.spot_checks

    def screen_looks(self, plan: Plan) -> tuple[int, ...]:
        return screening.screen_looks(plan)

    def screening_bounds(self, plan: Plan, data: AuditData, delta: float) -> FloatArray:
        if data.first_predictions is None or data.second_predictions is None:
            raise InvalidArgument("screening needs g_a at the challenge points")
        return screening.screening_bounds(
            plan,
            first_outputs=data.first_outputs,
            second_outputs=data.second_outputs,
            first_predictions=data.first_predictions,
            second_predictions=data.second_predictions,
            delta=delta,
        )

    def decide_early(self, plan: Plan, data: AuditData) -> Decision | None:
        return None

    def decide(self, plan: Plan, data: AuditData) -> Decision:
        r1, r2 = committed_residuals(plan, data)
        verified = verified_matrix(data.verified_residuals, plan.request.n_outputs)
        verdicts = tuple(
            clipped_verdict(plan, z, r1[:, z], r2[:, z], verified, data.escalated)
            for z in range(plan.request.n_outputs)
        )
        return Decision(all(v.accept for v in verdicts), plan.threshold, verdicts, data.escalated)
