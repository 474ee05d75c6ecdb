"""A stage of spot checks of a clipped-gap plan (:mod:`protocol.clipped_gap`).

Its own module so that the verdict types (:mod:`protocol.verdict`) can name the
stage a verdict was reached at without importing the clipped-gap decision
(:mod:`protocol.decision_clipped`), which builds on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import clipped_gap as cg
from protocol.plan_types import Plan

__all__ = ["Escalation"]


@dataclass(frozen=True)
class Escalation:
    """A stage of spot checks sized after the Prover's results (clipped-gap plans).

    Attributes:
        multiple: the clip levels are ``multiple * plan.clip_levels``.
        tolerated: corrupted pairs its spot checks tolerate.
        spot_checks: total spot checks (earlier stages included) it needs.
        stage: 1 for the first stage sized from the data
            (:func:`protocol.decision_clipped.first_stage`; the plan's failure
            probabilities), 2, 3, ... for a later stage after a rejection
            (:func:`protocol.decision_clipped.escalation`; each its own,
            :func:`protocol.clipped_gap.stage_deltas`).
    """

    multiple: float
    tolerated: int
    spot_checks: int
    stage: int = 2

    def deltas(self, plan: Plan) -> tuple[float, float, float]:
        """This stage's failure probabilities: spot checks, sampling, tail."""
        return cg.stage_deltas(plan.delta_spot, plan.delta_sampling, plan.delta_tail, self.stage)
