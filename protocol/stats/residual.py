"""Paper mode (Karchmer et al. 2025, Algorithm 1): ``err_hat = mse_hat - B_{>=2}_hat``.

``mse = E[(f - g_a)^2]`` comes from the Verifier's own ``plan.local_trainings``
trainings, ``B_{>=2}`` (the weight of the values' Fourier terms of degree 2 and
above) from the Prover's spot-checked values at correlated pairs, through the
node functional: per-pair term ``(y^2 + y'^2) / (2 n) - w_j / n_j y y'`` with
``y = f - c`` (``c`` a centre fixed before the results).  The three-point-nnls
estimator fits the degree weights by non-negative least squares, whose
leverage is its Lipschitz constant (:func:`protocol.estimators.nnls_lipschitz`).
Delta is split ``delta/2`` for the spot checks and ``delta/(4Z)`` for each of
the two sampling terms of every output.
"""

from __future__ import annotations

import math

import numpy as np

from protocol.concentration import bernstein_deviation
from protocol.errors import InvalidArgument
from protocol.estimators import (
    Estimate,
    PairSample,
    residual_weight,
    residual_weight_nnls,
)
from protocol.plan_types import DeltaShare, Estimator, Plan, PlanRequest
from protocol.statistics import STATISTICS, PairStatistic
from protocol.stats._linear import plan_linear_gap
from protocol.stats._linear_assumptions import linear_assumptions
from protocol.stats._linear_decision import clip_values, linear_verdict, realised_deviation
from protocol.stats.base import AuditData, ChallengeLayout, PlannedSpotChecks
from protocol.verdict import Decision, as_matrix, check_outputs

__all__ = ["PaperResidual"]

#: The NNLS fit of the degree weights (its leverage differs from the linear fit's).
NNLS_ESTIMATOR: Estimator = "three-point-nnls"


class PaperResidual(PlannedSpotChecks):
    """Algorithm 1's residual estimator (paper mode: the Verifier also trains)."""

    name = "residual"
    summary = "paper mode: mse from the Verifier's own trainings minus B_>=2 from pairs"
    layout = ChallengeLayout(mode="paper", local_trainings=True)
    plans_within_cap = False
    estimators: tuple[Estimator, ...] = ("chebyshev", "three-point", NNLS_ESTIMATOR)
    plannings: tuple[str, ...] = ("rigorous", "practical")

    @staticmethod
    def pair_statistic(request: PlanRequest) -> PairStatistic:
        nnls = request.estimator == NNLS_ESTIMATOR
        return STATISTICS["residual-nnls" if nnls else "residual"]

    def check(self, request: PlanRequest) -> None:
        if request.estimator not in self.estimators:
            raise InvalidArgument(
                f"the {self.name} statistic takes one of {', '.join(self.estimators)}, "
                f"not {request.estimator!r}"
            )

    def plan(self, request: PlanRequest) -> Plan:
        return plan_linear_gap(request, self.pair_statistic(request), paper=True)

    def delta_split(self, plan: Plan) -> tuple[DeltaShare, ...]:
        z = plan.request.n_outputs
        return (
            DeltaShare("spot checks", plan.delta_spot),
            DeltaShare("sampling (pairs), per output", plan.delta_sampling, z),
            DeltaShare("sampling (local mse), per output", plan.delta_sampling, z),
        )

    def assumptions(self, plan: Plan) -> tuple[str, ...]:
        return linear_assumptions(plan)

    def decide(self, plan: Plan, data: AuditData) -> Decision:
        n, Z = plan.n_pairs, plan.request.n_outputs
        if data.centre is None or data.local_outputs is None or data.local_predictions is None:
            raise InvalidArgument("paper mode needs the centre and the Verifier's local trainings")
        f1 = check_outputs("first_outputs", data.first_outputs, plan, n)
        f2 = check_outputs("second_outputs", data.second_outputs, plan, n)
        c = np.asarray(data.centre, dtype=np.float64).reshape(-1)
        if c.shape != (Z,) or not np.all(np.abs(c) <= plan.request.bound):
            raise InvalidArgument(f"centre must have shape ({Z},) within [-b, b]")
        if plan.clip_at is None and np.any(c != 0.0):
            raise InvalidArgument("rigorous paper-mode planning assumes centre 0")
        n_local = plan.local_trainings
        lf = check_outputs("local_outputs", data.local_outputs, plan, n_local)
        lg = as_matrix("local_predictions", data.local_predictions, n_local, Z)
        node = plan.node_of_pair()
        statistic = self.pair_statistic(plan.request)
        estimator = residual_weight_nnls if statistic.nnls else residual_weight
        verdicts = []
        for z in range(Z):
            y1, c1 = clip_values(plan, f1[:, z] - c[z])
            y2, c2 = clip_values(plan, f2[:, z] - c[z])
            sample = PairSample(node, y1, y2)
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
                deviation = realised_deviation(plan, statistic, sample) + bernstein_deviation(
                    float(np.var(sq, ddof=1)) / n_local, big / n_local, plan.delta_sampling
                )
            verdicts.append(linear_verdict(plan, z, est, deviation, (c1 + c2) / 2.0))
        return Decision(all(v.accept for v in verdicts), plan.threshold, tuple(verdicts))
