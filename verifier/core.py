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
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.clipped_gap import LATER_STAGES
from protocol.decision import (
    Decision,
    Escalation,
    decide_committed,
    decide_paper,
    escalation,
    first_stage,
    hopeless_output,
)
from protocol.errors import StatisticalRejection
from protocol.plan import Plan, make_plan
from protocol.prg import ExpandedPairs
from protocol.screening import Screening, look_delta, screen_looks, screening_bounds
from prover.tasks.base import Task
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.planning import (
    PilotStats,
    paper_centre,
    pilot_gap_lower_bound,
    pilot_stats,
    plan_request,
    task_p,
)
from verifier.spotcheck import SpotCheckResult, draw_spot_checks

__all__ = [
    "Pilot",
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
    "spot_check_and_decide",
    "verified_residuals",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Pilot:
    """The pilot of an audit: statistics, the verified residuals and the planned variance."""

    stats: PilotStats
    residuals: FloatArray
    outputs: FloatArray
    variance: float


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
    if low[worst] >= config.epsilon:
        raise StatisticalRejection(
            f"output {worst}: the Verifier's own {pilot.stats.n} pilot runs put the mean "
            f"residual f - g_a at {pilot.stats.residual_mean[worst]:.6g}, so err >= (E q)^2 >= "
            f"{low[worst]:.6g} >= epsilon {config.epsilon:.6g} "
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


def verified_residuals(
    commitment: Commitment,
    pairs: ExpandedPairs,
    *,
    pilot: Pilot | None,
    spot_indices: NDArray[np.int64] | None,
    spot_outputs: FloatArray | None,
) -> FloatArray | None:
    """``f - g_a`` on every run the Verifier trained itself (pilot and spot checks)."""
    parts = [] if pilot is None else [pilot.residuals]
    if spot_indices is not None and spot_outputs is not None and len(spot_indices):
        idx = np.asarray(spot_indices, dtype=np.int64)
        pair = idx // 2
        x = np.where((idx % 2 == 1)[:, None], pairs.second[pair], pairs.first[pair])
        parts.append(np.asarray(spot_outputs - commitment.predict(x)))
    return np.concatenate(parts) if parts else None


def decide_committed_audit(
    plan: Plan,
    commitment: Commitment,
    pairs: ExpandedPairs,
    outputs: FloatArray,
    verified: FloatArray | None,
    escalated: Escalation | None = None,
) -> Decision:
    """Committed mode: the decision on the Prover's ``outputs`` ``(2 n_pairs, Z)`` (x, x')."""
    return decide_committed(
        plan, **_pair_arrays(commitment, pairs, outputs), verified_residuals=verified,
        escalated=escalated,
    )  # fmt: skip


def _pair_arrays(
    commitment: Commitment, pairs: ExpandedPairs, outputs: FloatArray
) -> dict[str, FloatArray]:
    """The Prover's outputs and ``g_a`` at both points of every pair (challenge layout)."""
    return {
        "first_outputs": outputs[0::2],
        "second_outputs": outputs[1::2],
        "first_predictions": commitment.predict(pairs.first),
        "second_predictions": commitment.predict(pairs.second),
    }


class Screen:
    """The screening of one challenge's result stream (:mod:`protocol.screening`).

    :meth:`observe` is called as results arrive; at each look whose prefix has
    arrived it bounds every output's err from below and returns the
    :class:`~protocol.screening.Screening` that rejects, if any (the caller
    stops the stream and aborts).  No looks when ``config.early_rejection`` is
    off or the plan has no clip levels.
    """

    def __init__(
        self, config: AuditConfig, plan: Plan, commitment: Commitment, pairs: ExpandedPairs
    ) -> None:
        self.plan, self.commitment, self.pairs = plan, commitment, pairs
        self.looks = list(screen_looks(plan)) if config.early_rejection else []
        self.looked: list[int] = []

    def observe(self, outputs: FloatArray, points_received: int) -> Screening | None:
        """Screen every look whose prefix lies within the first ``points_received`` rows."""
        while self.looks and 2 * self.looks[0] <= points_received:
            m = self.looks.pop(0)
            self.looked.append(m)
            prefix = ExpandedPairs(
                self.pairs.first[:m],
                self.pairs.second[:m],
                self.pairs.first_seeds[:m],
                self.pairs.second_seeds[:m],
            )
            delta = look_delta(self.plan)
            bounds = screening_bounds(
                self.plan, **_pair_arrays(self.commitment, prefix, outputs[: 2 * m]), delta=delta
            )
            z = int(np.argmax(bounds))
            if bounds[z] >= self.plan.request.epsilon:
                self.looks.clear()
                return Screening(output=z, pairs=m, lower_bound=float(bounds[z]), delta=delta)
        return None


def plan_escalation(
    config: AuditConfig,
    plan: Plan,
    commitment: Commitment,
    pairs: ExpandedPairs,
    outputs: FloatArray,
    verified: FloatArray | None,
    stage: int = 2,
) -> Escalation | None:
    """A later stage of spot checks that could still accept, within the configured cap.

    Clipped-gap plans only, after a rejection by the stage before: the
    :func:`protocol.decision.escalation` for ``stage`` whose total spot checks
    stay within ``config.escalation_factor * plan.spot_checks`` (``None``
    otherwise).
    """
    if plan.clip_levels is None or config.escalation_factor <= 1.0:
        return None
    cap = config.escalation_factor * plan.spot_checks
    esc = escalation(
        plan,
        **_pair_arrays(commitment, pairs, outputs),
        verified_residuals=verified,
        max_spot_checks=cap,
        stage=stage,
    )
    if esc is None or esc.spot_checks > cap:
        return None
    return esc


def merge_spot_checks(first: SpotCheckResult, second: SpotCheckResult) -> SpotCheckResult:
    """Two stages of spot checks as one result, by point index."""
    indices = np.concatenate([first.indices, second.indices])
    order = np.argsort(indices, kind="stable")
    return SpotCheckResult(
        indices=indices[order],
        output_diff=np.concatenate([first.output_diff, second.output_diff])[order],
        weight_diff=np.concatenate([first.weight_diff, second.weight_diff])[order],
        own_outputs=np.concatenate([first.own_outputs, second.own_outputs])[order],
    )


def no_spot_checks(n_outputs: int) -> SpotCheckResult:
    """The result of drawing no spot check at all (an audit rejected before them)."""
    return SpotCheckResult(
        indices=np.zeros(0, dtype=np.int64),
        output_diff=np.zeros(0),
        weight_diff=np.zeros(0),
        own_outputs=np.zeros((0, n_outputs)),
    )


def draw_more_spot_checks(
    rng: np.random.Generator, n_points: int, drawn: NDArray[np.int64], k: int
) -> NDArray[np.int64]:
    """``k`` more point indices, uniform without replacement among those not yet ``drawn``."""
    rest = np.setdiff1d(np.arange(n_points, dtype=np.int64), drawn, assume_unique=False)
    k = min(k, rest.size)
    return np.sort(rng.choice(rest, size=k, replace=False).astype(np.int64))


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


SpotCheck = Callable[[NDArray[np.int64]], SpotCheckResult]
"""``check(indices)``: open, retrain and compare these points; raise on any disagreement."""


def spot_check_and_decide(
    config: AuditConfig,
    plan: Plan,
    commitment: Commitment,
    pairs: ExpandedPairs,
    outputs: FloatArray,
    *,
    pilot: Pilot | None,
    rng: np.random.Generator,
    check: SpotCheck,
    note: Callable[[str], object] | None = None,
) -> tuple[Decision, SpotCheckResult]:
    """Committed mode after the signed root: spot checks, decision, and later stages.

    Rejects at once when no spot-check outcome could accept
    (:func:`protocol.decision.hopeless_output`); otherwise draws the spot checks
    the results call for (:func:`protocol.decision.first_stage`, at most
    ``plan.spot_checks``) from the Verifier's private ``rng``, has ``check``
    verify them (a disagreement raises and ends the audit), decides;
    a clipped-gap plan rejected at the first stage may buy up to
    :data:`protocol.clipped_gap.LATER_STAGES` later stages
    (:func:`plan_escalation`), each with more spot checks at a clip level
    chosen from the data so far, until one accepts or none can.  Returns the
    decision and every spot check made.
    """
    run = _Stages(config, plan, commitment, pairs, outputs, pilot, rng, check, note)
    if plan.clip_levels is None:  # plans other than the clipped gap: the planned spot checks
        spot = check(draw_spot_checks(rng, plan.prover_evaluations, plan.spot_checks))
        return run.decide(spot), spot
    if config.early_rejection:
        early = run.reject_early()
        if early is not None:
            return early
    stage = first_stage(plan, **run.arrays)
    run.say(
        f"the results call for {stage.spot_checks:,d} of the planned {plan.spot_checks:,d} "
        f"spot checks (tolerating {stage.tolerated:,d} corrupted pairs)",
        when=stage.spot_checks < plan.spot_checks,
    )
    spot = check(draw_spot_checks(rng, plan.prover_evaluations, stage.spot_checks))
    decision = run.decide(spot, stage)
    for stage_number in range(2, 2 + LATER_STAGES):
        if decision.accept:
            break
        esc = plan_escalation(
            config, plan, commitment, pairs, outputs, run.verified(spot), stage_number
        )
        if esc is None:
            break
        run.say(
            f"stage {stage_number}: clip x{esc.multiple:g}, {esc.spot_checks:,d} spot checks in all"
        )
        spot = run.more(spot, esc.spot_checks)
        decision = run.decide(spot, esc)
    return decision, spot


@dataclass(frozen=True)
class _Stages:
    """What every stage of :func:`spot_check_and_decide` shares."""

    config: AuditConfig
    plan: Plan
    commitment: Commitment
    pairs: ExpandedPairs
    outputs: FloatArray
    pilot: Pilot | None
    rng: np.random.Generator
    check: SpotCheck
    note: Callable[[str], object] | None

    @functools.cached_property
    def arrays(self) -> dict[str, FloatArray]:
        """The Prover's outputs and ``g_a`` at both points of every pair, computed once."""
        return _pair_arrays(self.commitment, self.pairs, self.outputs)

    def say(self, text: str, *, when: bool = True) -> None:
        if self.note is not None and when:
            self.note(text)

    def verified(self, spot: SpotCheckResult) -> FloatArray | None:
        return verified_residuals(
            self.commitment,
            self.pairs,
            pilot=self.pilot,
            spot_indices=spot.indices,
            spot_outputs=spot.own_outputs,
        )

    def decide(self, spot: SpotCheckResult, stage: Escalation | None = None) -> Decision:
        return decide_committed(
            self.plan, **self.arrays, verified_residuals=self.verified(spot), escalated=stage
        )

    def more(self, spot: SpotCheckResult, total: int) -> SpotCheckResult:
        """``spot`` and enough fresh draws to make ``total`` spot checks."""
        k_more = total - len(spot.indices)
        if k_more <= 0:
            return spot
        extra = draw_more_spot_checks(self.rng, self.plan.prover_evaluations, spot.indices, k_more)
        return merge_spot_checks(spot, self.check(extra))

    def reject_early(self) -> tuple[Decision, SpotCheckResult] | None:
        """The rejection, with no spot check, when no spot-check outcome could accept."""
        hopeless = hopeless_output(self.plan, **self.arrays)
        if hopeless is None:
            return None
        none = no_spot_checks(self.plan.request.n_outputs)
        decision = self.decide(none)
        if decision.accept:  # hopeless_output bounds every certified bound from below
            raise AssertionError("hopeless_output disagrees with the decision")
        self.say(
            f"output {hopeless}: rejected before any spot check (no outcome of the spot "
            "checks could bring its certified bound below epsilon)"
        )
        return decision, none
