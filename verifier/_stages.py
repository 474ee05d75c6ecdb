"""Spot checks and the decision after the signed root, with later stages (clipped gap).

Private to :mod:`verifier.core`, which re-exports :func:`spot_check_and_decide`,
:func:`plan_escalation`, :func:`merge_spot_checks`, :func:`no_spot_checks` and
:func:`draw_more_spot_checks` (steps 3 to 5 of the audit, see there).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from protocol.clipped_gap import LATER_STAGES
from protocol.decision import (
    Decision,
    Escalation,
    decide,
    escalation,
    first_stage,
    hopeless_output,
)
from protocol.plan import Plan
from protocol.prg import ExpandedPairs
from protocol.stats import AuditData, statistic_of
from verifier._pairs import PredictedPairs, pair_arrays, predicted_pairs, verified_residuals
from verifier._pilot import Pilot
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.spotcheck import SpotCheckResult, draw_spot_checks

__all__ = [
    "SpotCheck",
    "draw_more_spot_checks",
    "merge_spot_checks",
    "no_spot_checks",
    "plan_escalation",
    "spot_check_and_decide",
]

FloatArray = NDArray[np.float64]


def plan_escalation(
    config: AuditConfig,
    plan: Plan,
    commitment: Commitment,
    pairs: ExpandedPairs | PredictedPairs,
    outputs: FloatArray,
    verified: FloatArray | None,
    stage: int = 2,
) -> Escalation | None:
    """A later stage of spot checks that could still accept, within the configured cap.

    Clipped-gap plans only, after a rejection by the stage before: the
    :func:`protocol.decision.escalation` for ``stage`` whose total spot checks
    stay within ``config.escalation_factor * plan.spot_checks`` (``None``
    otherwise).  :class:`~verifier._pairs.PredictedPairs` bring their
    predictions (computed once per audit); plain pairs are predicted here.
    """
    if not statistic_of(plan).layout.staged_spot_checks or config.escalation_factor <= 1.0:
        return None
    cap = config.escalation_factor * plan.spot_checks
    esc = escalation(
        plan,
        **pair_arrays(commitment, pairs, outputs),
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


SpotCheck = Callable[[NDArray[np.int64]], SpotCheckResult]
"""``check(indices)``: open, retrain and compare these points; raise on any disagreement."""


def spot_check_and_decide(
    config: AuditConfig,
    plan: Plan,
    commitment: Commitment,
    pairs: ExpandedPairs | PredictedPairs,
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

    ``g_a`` is computed once at the challenge's pairs (or taken from
    :class:`~verifier._pairs.PredictedPairs`) and once at each set of spot checks.
    """
    predicted = predicted_pairs(commitment, pairs)
    run = _Stages(config, plan, commitment, predicted, outputs, pilot, rng, check, note)
    if not statistic_of(plan).layout.staged_spot_checks:  # the plan's own spot checks
        if config.early_rejection:
            early = run.reject_before_spot_checks()
            if early is not None:
                return early
        k = statistic_of(plan).spot_checks(plan, run.results_only())
        run.say(
            f"the results call for {k:,d} of the planned {plan.spot_checks:,d} spot checks",
            when=k < plan.spot_checks,
        )
        spot = check(draw_spot_checks(rng, plan.prover_evaluations, k))
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
            config, plan, commitment, predicted, outputs, run.verified(spot), stage_number
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
    pairs: PredictedPairs
    outputs: FloatArray
    pilot: Pilot | None
    rng: np.random.Generator
    check: SpotCheck
    note: Callable[[str], object] | None
    #: the last set of spot checks and its verified residuals (each set's computed once)
    _verified: list[tuple[SpotCheckResult, FloatArray | None]] = field(default_factory=list)

    @functools.cached_property
    def arrays(self) -> dict[str, FloatArray]:
        """The Prover's outputs and ``g_a`` at both points of every pair (predicted once)."""
        return pair_arrays(self.commitment, self.pairs, self.outputs)

    def say(self, text: str, *, when: bool = True) -> None:
        if self.note is not None and when:
            self.note(text)

    def verified(self, spot: SpotCheckResult) -> FloatArray | None:
        """The pilot's and ``spot``'s verified residuals (computed once per ``spot``)."""
        if self._verified and self._verified[0][0] is spot:
            return self._verified[0][1]
        verified = verified_residuals(
            self.commitment,
            self.pairs,
            pilot=self.pilot,
            spot_indices=spot.indices,
            spot_outputs=spot.own_outputs,
        )
        self._verified[:] = [(spot, verified)]
        return verified

    def decide(self, spot: SpotCheckResult, stage: Escalation | None = None) -> Decision:
        return decide(
            self.plan,
            self.data(self.verified(spot), spot_checks=len(spot.indices), stage=stage),
        )

    def data(
        self,
        verified: FloatArray | None,
        *,
        spot_checks: int,
        stage: Escalation | None = None,
    ) -> AuditData:
        """The challenge's results, points and ``g_a``, with these verified runs."""
        a = self.arrays
        return AuditData(
            first_outputs=a["first_outputs"],
            second_outputs=a["second_outputs"],
            first_predictions=a["first_predictions"],
            second_predictions=a["second_predictions"],
            verified_residuals=verified,
            escalated=stage,
            first_points=self.pairs.pairs.first,
            second_points=self.pairs.pairs.second,
            spot_checks=spot_checks,
        )

    def results_only(self) -> AuditData:
        """The challenge's results, points and ``g_a``, and the pilot's runs: no spot check."""
        pilot = None if self.pilot is None else self.pilot.residuals
        return self.data(pilot, spot_checks=0)

    def reject_before_spot_checks(self) -> tuple[Decision, SpotCheckResult] | None:
        """The statistic's own rejection before any spot check, if it has one and rejects."""
        decision = statistic_of(self.plan).decide_early(self.plan, self.results_only())
        if decision is None:
            return None
        self.say(decision.reason)
        return decision, no_spot_checks(self.plan.request.n_outputs)

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
