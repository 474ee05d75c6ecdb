"""What a statistic of the audit must provide: the :class:`Statistic` protocol.

An audit estimates ``err(a) = E[(f - g_a)^2] - min_b E[(f - g_b)^2]`` (the
distance of the committed scores from the optimal linear datamodel) from
values at challenge points and certifies an upper bound on it.  Everything
that depends on *which* estimate is used lives behind this protocol, so that
the Verifier (committed, local and paper audits), the Prover's self-check,
the benches and the sweeps reach a statistic only through
:mod:`protocol.stats.registry`:

* the challenge it asks for (:class:`ChallengeLayout`: pairs at the
  functional's nodes, whether the Verifier also trains points of its own,
  whether its spot checks are sized after the results arrive);
* which node-functional families (``estimators``) and planning modes it serves;
* its plan from a :class:`~protocol.plan_types.PlanRequest` (which already
  carries the pilot's moments), with the split of delta over its terms;
* its decision from the audit's numbers (:class:`AuditData`): the verdict and
  the certified upper bound with every term of it
  (:class:`~protocol.verdict.OutputDecision`);
* the assumptions it rests on, as text for the plan table, the report and docs;
* optionally, a screening of the result stream's prefixes
  (:meth:`Statistic.screen_looks`, :meth:`Statistic.screening_bounds`) and a
  rejection before any spot check (:meth:`Statistic.decide_early`).

A new statistic is one module implementing this protocol plus one
:func:`protocol.stats.registry.register` call.  Soundness is the statistic's
own responsibility: its decision must accept only if its certified bound,
which must hold with probability at least ``1 - delta`` whatever the Prover
did, is below epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.escalation import Escalation
from protocol.plan_types import DeltaShare, Estimator, Mode, Plan, PlanRequest
from protocol.verdict import Decision, pair_residuals

__all__ = [
    "AuditData",
    "ChallengeLayout",
    "PlannedSpotChecks",
    "Statistic",
    "committed_residuals",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ChallengeLayout:
    """The challenge a statistic asks for.

    Attributes:
        mode: what the Prover commits to and serves: ``committed`` (its scores
            are the model the residuals are taken against) or ``paper`` (values
            only; the Verifier estimates ``mse`` itself).
        local_trainings: the Verifier trains ``plan.local_trainings`` points of
            its own after the challenge (paper mode's ``mse`` estimate).
        staged_spot_checks: the spot checks are sized after the results arrive
            (:func:`protocol.decision_clipped.first_stage`), the results may be
            screened and rejected early, and later stages may follow a
            first-stage rejection; otherwise the plan's ``spot_checks`` are drawn.
    """

    mode: Mode
    local_trainings: bool = False
    staged_spot_checks: bool = False


@dataclass(frozen=True)
class AuditData:
    """The numbers an audit's decision sees, every array ``(rows, Z)``.

    Attributes:
        first_outputs, second_outputs: the Prover's values at both points of
            every challenge pair, ``(n_pairs, Z)``.
        first_predictions, second_predictions: ``g_a`` there (``None`` for
            statistics of values alone, e.g. paper mode's).
        verified_residuals: ``f - g_a`` on runs the Verifier trained itself
            (pilot and spot checks), ``(n_v, Z)``, or ``None``.
        escalated: a later stage of spot checks in force, or ``None``.
        centre: per-output constant subtracted before products (paper mode).
        local_outputs, local_predictions: the Verifier's own trainings after the
            challenge and ``g_a`` there (paper mode).
        first_points, second_points: the challenge's subsets at both points of
            every pair, int8 ``(n_pairs, N)`` (statistics that need ``x``, e.g.
            the degree-1 U-statistic's characters), or ``None``.
        spot_checks: how many spot checks were drawn (and agreed); ``None``:
            the plan's.
    """

    first_outputs: FloatArray
    second_outputs: FloatArray
    first_predictions: FloatArray | None = None
    second_predictions: FloatArray | None = None
    verified_residuals: FloatArray | None = None
    escalated: Escalation | None = None
    centre: FloatArray | None = None
    local_outputs: FloatArray | None = None
    local_predictions: FloatArray | None = None
    first_points: NDArray[np.int8] | None = None
    second_points: NDArray[np.int8] | None = None
    spot_checks: int | None = None


def committed_residuals(plan: Plan, data: AuditData) -> tuple[FloatArray, FloatArray]:
    """Residuals ``q = f - g_a`` at both points of every pair (committed-mode statistics).

    Raises:
        InvalidArgument: ``data`` lacks ``g_a`` at the challenge points.
    """
    if data.first_predictions is None or data.second_predictions is None:
        raise InvalidArgument(f"the {plan.statistic} statistic needs g_a at the challenge points")
    return pair_residuals(
        plan,
        first_outputs=data.first_outputs,
        second_outputs=data.second_outputs,
        first_predictions=data.first_predictions,
        second_predictions=data.second_predictions,
    )


class Statistic(Protocol):
    """A statistic the audit can decide with (see the module docstring)."""

    @property
    def name(self) -> str:
        """Registry name (``--statistic NAME``)."""
        ...

    @property
    def summary(self) -> str:
        """One line for ``--help`` and docs."""
        ...

    @property
    def layout(self) -> ChallengeLayout: ...

    @property
    def plans_within_cap(self) -> bool:
        """Its planner searches within ``max_prover_evaluations`` (else a plan above it is
        refused after planning)."""
        ...

    @property
    def estimators(self) -> tuple[Estimator, ...]:
        """Node-functional families it serves; the first is its default."""
        ...

    @property
    def plannings(self) -> tuple[str, ...]:
        """Planning modes it serves (``rigorous``, ``practical``)."""
        ...

    def check(self, request: PlanRequest) -> None:
        """Raise :class:`~protocol.errors.InvalidArgument` if it cannot serve ``request``."""
        ...

    def plan(self, request: PlanRequest) -> Plan:
        """The plan; :class:`~protocol.errors.InvalidArgument` names a term that does not fit."""
        ...

    def delta_split(self, plan: Plan) -> tuple[DeltaShare, ...]:
        """Where ``plan.request.delta`` goes (shares summing to at most delta)."""
        ...

    def assumptions(self, plan: Plan) -> tuple[str, ...]:
        """The assumptions its guarantee rests on beyond the task's declarations."""
        ...

    def decide(self, plan: Plan, data: AuditData) -> Decision:
        """The verdict on ``data`` under ``plan``: per output, estimate and certified bound."""
        ...

    def spot_checks(self, plan: Plan, data: AuditData) -> int:
        """How many spot checks the results in ``data`` call for (at most ``plan.spot_checks``).

        Called after the signed root and before any draw; the decision then
        sees the number drawn (``data.spot_checks``).  Statistics whose
        tolerated corruption is fixed by the plan return ``plan.spot_checks``.
        """
        ...

    def screen_looks(self, plan: Plan) -> tuple[int, ...]:
        """Pair counts of the result stream's prefixes it screens (empty: no screening)."""
        ...

    def screening_bounds(self, plan: Plan, data: AuditData, delta: float) -> FloatArray:
        """Lower confidence bounds on every output's err from a prefix of the results.

        ``data`` holds the first pairs of the stream; each bound holds with
        probability ``>= 1 - delta`` for an honest Prover (rejecting never
        weakens soundness; what it may cost completeness is ``delta`` per
        output and look).
        """
        ...

    def decide_early(self, plan: Plan, data: AuditData) -> Decision | None:
        """A rejection before any spot check, when no spot-check outcome could accept.

        ``data`` holds the challenge's results but no spot check.  ``None``:
        draw the spot checks (statistics without such a rule always return
        ``None``; the clipped gap's staged rule lives with its stages).
        """
        ...


class PlannedSpotChecks:
    """The optional steps of :class:`Statistic` for statistics without them.

    The plan's own spot checks, no screening of the stream and no rejection
    before the spot checks (the direct gap, paper mode's residual).
    """

    def spot_checks(self, plan: Plan, data: AuditData) -> int:
        return plan.spot_checks

    def screen_looks(self, plan: Plan) -> tuple[int, ...]:
        return ()

    def screening_bounds(self, plan: Plan, data: AuditData, delta: float) -> FloatArray:
        return np.zeros(plan.request.n_outputs)

    def decide_early(self, plan: Plan, data: AuditData) -> Decision | None:
        return None
