"""The Verifier's statistical core, free of transport: pilot, plan, decision.

One audit, whatever carries it (the gRPC driver :class:`verifier.Auditor`,
local mode :func:`verifier.local.certify_local`, the benchmarks under
``tests/bench``), goes through these functions in this order:

1. :func:`pilot_from_runs` — practical planning without a declared variance:
   the Verifier's own runs on private points give the residual moments, the
   clipping tail and Var(f); :func:`check_pilot` aborts when they already prove
   ``err >= epsilon`` (a cheap rejection, before any challenge);
2. :func:`plan_audit` — the plan (:func:`protocol.plan.make_plan`), refused when
   it needs more Prover evaluations than the configuration allows;
3. the challenge and the commitment checks (the caller's); while the results
   stream in, :class:`Screen` rejects bad scores from a prefix of them
   (:mod:`protocol.screening`: the Prover stops evaluating); clipped-gap plans
   then reject at once, without a spot check, when
   :func:`protocol.decision.hopeless_output` shows that no spot-check outcome
   could accept (a cheap rejection of bad scores), else the spot checks the
   results call for (:func:`protocol.decision.first_stage`: at most the
   plan's, fewer when the results sit well inside epsilon);
4. :func:`verified_residuals` and :func:`decide_committed_audit` /
   :func:`decide_paper_audit` — the verdict (:mod:`protocol.decision`);
5. clipped-gap plans, after a first-stage rejection: :func:`plan_escalation`
   and :func:`draw_more_spot_checks` — later stages of spot checks at a
   higher clip level when the data (e.g. a heavier tail than the pilot saw)
   call for it, then the decision again with the escalation.

The caller trains (or evaluates) every model; these functions only see numbers.
This module holds steps 1, 2 and 4 and re-exports the rest from private
modules: :class:`Screen` (:mod:`verifier._screen`), the pair arrays,
:class:`PredictedPairs` (the challenge's pairs with ``g_a`` at both points,
computed once per audit and passed along) and :func:`verified_residuals`
(:mod:`verifier._pairs`), :class:`Pilot`
(:mod:`verifier._pilot`), and the spot checks with their later stages
(:mod:`verifier._stages`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.decision import (
    Decision,
    Escalation,
    decide_committed,
    decide_paper,
)
from protocol.errors import StatisticalRejection
from protocol.plan import Plan, make_plan
from protocol.prg import ExpandedPairs
from prover.tasks.base import Task
from verifier._pairs import PredictedPairs as PredictedPairs
from verifier._pairs import pair_arrays as _pair_arrays
from verifier._pairs import plain_pairs, verified_residuals
from verifier._pairs import predicted_pairs as predicted_pairs
from verifier._pilot import Pilot
from verifier._screen import Screen
from verifier._stages import SpotCheck as SpotCheck
from verifier._stages import (
    draw_more_spot_checks,
    merge_spot_checks,
    no_spot_checks,
    plan_escalation,
    spot_check_and_decide,
)
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.planning import (
    paper_centre,
    pilot_gap_lower_bound,
    pilot_stats,
    plan_request,
    task_p,
)

__all__ = [
    "Pilot",
    "PredictedPairs",
    "Screen",
    "check_pilot",
    "decide_committed_audit",
    "decide_paper_audit",
    "draw_more_spot_checks",
    "merge_spot_checks",
    "no_spot_checks",
    "pilot_from_runs",
    "plan_audit",
    "plan_escalation",
    "predicted_pairs",
    "spot_check_and_decide",
    "verified_residuals",
]

FloatArray = NDArray[np.float64]


def pilot_from_runs(
    config: AuditConfig,
    task: Task,
    commitment: Commitment,
    x: NDArray[np.int8],
    outputs: FloatArray,
) -> Pilot:
    """Pilot statistics from the Verifier's own ``outputs`` ``(n, Z)`` at private points ``x``."""
    centre = paper_centre(commitment, p=task_p(task), bound=task.bound, practical=True)
    predicted = commitment.predict(x)
    stats = pilot_stats(outputs, predicted, mode=config.mode, centre=centre)
    variance = max(stats.second_moment * config.variance_inflation, 1e-12)
    return Pilot(stats, np.asarray(outputs - predicted), np.asarray(outputs), variance)


def check_pilot(config: AuditConfig, task: Task, pilot: Pilot) -> None:
    """Abort before any challenge when the Verifier's own runs already prove ``err >= eps``.

    Raises:
        StatisticalRejection: some output's pilot lower bound on err reaches epsilon.
    """
    delta = config.delta / (2.0 * task.n_outputs)
    low = pilot_gap_lower_bound(pilot.stats, delta)
    worst = int(np.argmax(low))
    epsilon = config.require_epsilon()
    if low[worst] >= epsilon:
        raise StatisticalRejection(
            f"output {worst}: the Verifier's own {pilot.stats.n} pilot runs put the mean "
            f"residual f - g_a at {pilot.stats.residual_mean[worst]:.6g}, so err >= (E q)^2 >= "
            f"{low[worst]:.6g} >= epsilon {epsilon:.6g} "
            f"(with probability >= 1 - {delta:.3g})"
        )


def plan_audit(
    config: AuditConfig,
    task: Task,
    commitment: Commitment,
    pilot: Pilot | None,
    *,
    local: bool = False,
) -> Plan:
    """The plan of an audit; :class:`StatisticalRejection` above ``max_prover_evaluations``.

    ``local``: local mode, the Verifier evaluates every challenge point itself, so
    clipped-gap plans tolerate no corruption and draw no spot check.
    """
    variance = pilot.variance if pilot is not None else config.variance
    plan = make_plan(
        plan_request(
            config,
            task=task,
            commitment=commitment,
            variance=variance,
            pilot=pilot.stats if pilot is not None else None,
            local=local,
        )
    )
    if plan.prover_evaluations > config.max_prover_evaluations:
        raise StatisticalRejection(
            f"the plan needs {plan.prover_evaluations:,d} Prover evaluations, more than "
            f"max_prover_evaluations={config.max_prover_evaluations:,d}: the committed scores' "
            "residuals are too large to certify at this epsilon (raise epsilon or the cap)"
        )
    return plan


def decide_committed_audit(
    plan: Plan,
    commitment: Commitment,
    pairs: ExpandedPairs | PredictedPairs,
    outputs: FloatArray,
    verified: FloatArray | None,
    escalated: Escalation | None = None,
    spot_checks: int | None = None,
) -> Decision:
    """Committed mode: the decision on the Prover's ``outputs`` ``(2 n_pairs, Z)`` (x, x').

    ``spot_checks``: how many were drawn and agreed (``None``: the plan's).

    ``g_a`` at the pairs: from :class:`PredictedPairs` (computed once per audit),
    or computed here for plain pairs.
    """
    a = _pair_arrays(commitment, pairs, outputs)
    points = plain_pairs(pairs)
    return decide_committed(
        plan,
        first_outputs=a["first_outputs"],
        second_outputs=a["second_outputs"],
        first_predictions=a["first_predictions"],
        second_predictions=a["second_predictions"],
        verified_residuals=verified,
        escalated=escalated,
        first_points=points.first,
        second_points=points.second,
        spot_checks=spot_checks,
    )


def decide_paper_audit(
    plan: Plan,
    commitment: Commitment,
    task: Task,
    outputs: FloatArray,
    local_x: NDArray[np.int8],
    local_outputs: FloatArray,
) -> Decision:
    """Paper mode: the decision with the Verifier's ``plan.local_trainings`` own runs."""
    centre = paper_centre(
        commitment,
        p=task_p(task),
        bound=task.bound,
        practical=plan.request.planning == "practical",
    )
    return decide_paper(
        plan,
        first_outputs=outputs[0::2],
        second_outputs=outputs[1::2],
        centre=centre,
        local_outputs=local_outputs,
        local_predictions=commitment.predict(local_x),
    )
