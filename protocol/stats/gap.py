"""The direct gap: ``err_hat = sum_j w_j hhat_j`` over residuals ``q = f - g_a`` (committed mode).

At node ``rho_j`` the pairs ``(x, x')`` are ``rho_j``-correlated, so
``E[q(x) q(x')] = sum_k rho_j^k B_k(q)`` with ``B_k`` the weight of the
residual's degree-k Fourier terms; the node functional's weights ``w``
combine the per-node means ``hhat_j`` into ``B_0 + B_1 = err(a)`` up to its
bias on the higher degrees (Chebyshev or three-point families).  The
decision and its certified bound: :mod:`protocol.stats._linear_decision`.
"""

from __future__ import annotations

from protocol.errors import InvalidArgument
from protocol.estimators import PairSample, direct_gap
from protocol.plan_types import DeltaShare, Estimator, Plan, PlanRequest
from protocol.statistics import STATISTICS
from protocol.stats._linear import plan_linear_gap
from protocol.stats._linear_assumptions import linear_assumptions
from protocol.stats._linear_decision import clip_values, linear_verdict, realised_deviation
from protocol.stats.base import (
    AuditData,
    ChallengeLayout,
    PlannedSpotChecks,
    committed_residuals,
)
from protocol.verdict import Decision

__all__ = ["DirectGap"]


class DirectGap(PlannedSpotChecks):
    """The direct gap statistic (committed mode, linear node functional)."""

    name = "gap"
    summary = "direct gap sum_j w_j mean(q q') of the residuals at correlated pairs"
    layout = ChallengeLayout(mode="committed")
    plans_within_cap = False
    estimators: tuple[Estimator, ...] = ("chebyshev", "three-point")
    plannings: tuple[str, ...] = ("rigorous", "practical")
    pair_statistic = STATISTICS["gap"]

    def check(self, request: PlanRequest) -> None:
        if request.estimator not in self.estimators:
            raise InvalidArgument(
                f"the {self.name} statistic takes the {' or '.join(self.estimators)} "
                f"estimator, not {request.estimator!r}"
            )

    def plan(self, request: PlanRequest) -> Plan:
        return plan_linear_gap(request, self.pair_statistic, paper=False)

    def delta_split(self, plan: Plan) -> tuple[DeltaShare, ...]:
        return (
            DeltaShare("spot checks", plan.delta_spot),
            DeltaShare("sampling, per output", plan.delta_sampling, plan.request.n_outputs),
        )

    def assumptions(self, plan: Plan) -> tuple[str, ...]:
        return linear_assumptions(plan)

    def decide(self, plan: Plan, data: AuditData) -> Decision:
        r1, r2 = committed_residuals(plan, data)
        node = plan.node_of_pair()
        verdicts = []
        for z in range(plan.request.n_outputs):
            q1, c1 = clip_values(plan, r1[:, z])
            q2, c2 = clip_values(plan, r2[:, z])
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
                deviation = realised_deviation(plan, self.pair_statistic, sample)
            verdicts.append(linear_verdict(plan, z, est, deviation, (c1 + c2) / 2.0))
        return Decision(all(v.accept for v in verdicts), plan.threshold, tuple(verdicts))
