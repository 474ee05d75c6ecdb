"""What an audit will cost, known before any challenge is sent (the ``on_plan`` hook).

The gRPC driver (:class:`verifier.Auditor`) and local mode
(:func:`verifier.local.certify_local`) call ``on_plan(preview)`` once, right
after planning: the commitment has been received and the pilot trained, but
no challenge seed has been drawn or sent.  The hook may print the preview,
ask for confirmation, or raise :class:`PlanDeclined` to stop the audit there;
that exception propagates out of ``run`` / ``certify_local`` unchanged (no
report is made: nothing was audited).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.plan import Plan
from protocol.stats import statistic_of
from verifier.config import AuditConfig

__all__ = ["PlanDeclined", "PlanHook", "PlanPreview", "format_seconds", "preview_plan"]


class PlanDeclined(Exception):
    """Raised by an ``on_plan`` hook to stop an audit before its challenge.

    Attributes:
        plan_only: the caller only wanted the plan (``--plan-only``), so stopping is success.
    """

    def __init__(self, message: str, *, plan_only: bool = False) -> None:
        super().__init__(message)
        self.plan_only = plan_only


@dataclass(frozen=True)
class PlanPreview:
    """The plan in force and what carrying it out costs.

    Attributes:
        plan: the plan.
        epsilon: the absolute epsilon planned for.
        epsilon_relative: ``R`` when epsilon was set as ``R x max_z Var(f_z)`` of the pilot.
        pilot_variance: ``max_z Var(f_z)`` of the pilot's outputs (``None`` without a pilot).
        pilot_trainings: the Verifier's pilot trainings, already done.
        retrainings: Verifier trainings still to come, at most (the planned spot
            checks, which the first stage may reduce, and local trainings; in
            local mode every point of the plan).
        prover_evaluations: models the Prover trains for the challenge (0 in local mode).
        second_stage: at most this many more spot checks, drawn in later stages
            only after a first-stage rejection of a clipped-gap plan (not in
            ``retrainings``; in :attr:`worst_case_retrainings`, the headline).
        seconds_per_training: the pilot's measured wall time per model (``None``
            without a pilot).
    """

    plan: Plan
    epsilon: float
    epsilon_relative: float | None
    pilot_variance: float | None
    pilot_trainings: int
    retrainings: int
    prover_evaluations: int
    second_stage: int
    seconds_per_training: float | None

    @property
    def verifier_retrainings(self) -> int:
        """The expected case: every training of the Verifier, the pilot included, no later stage."""
        return self.pilot_trainings + self.retrainings

    @property
    def worst_case_retrainings(self) -> int:
        """The most the audit can cost the Verifier: pilot, every spot check, every later stage."""
        return self.verifier_retrainings + self.second_stage

    @property
    def estimated_seconds(self) -> float | None:
        """The Verifier's remaining training time at the pilot's speed (``None`` if unmeasured)."""
        if self.seconds_per_training is None:
            return None
        return self.retrainings * self.seconds_per_training

    def summary(self) -> str:
        """Readable lines: epsilon, the counts with the pilot included, the time estimate."""
        lines = ["cost of this audit (fixed before any challenge is sent):"]
        if self.epsilon_relative is not None and self.pilot_variance is not None:
            lines.append(
                f"  epsilon                  {self.epsilon:.6g} = {self.epsilon_relative:g} x "
                f"max_z Var(f_z) {self.pilot_variance:.6g} (the Verifier's "
                f"{self.pilot_trainings:,d} pilot trainings)"
            )
        plan = self.plan
        parts = [f"pilot {self.pilot_trainings:,d} (done)"]
        if self.prover_evaluations:
            parts.append(f"spot checks up to {plan.spot_checks:,d}")
            if plan.local_trainings:
                parts.append(f"local trainings {plan.local_trainings:,d}")
        else:
            parts.append(f"local evaluations {self.retrainings:,d}")
        at_most = "at most " if self.prover_evaluations else ""
        if self.second_stage:  # the headline is the worst case, the expected one beside it
            parts.append(f"later stages up to {self.second_stage:,d}")
            lines.append(
                f"  Verifier retrainings     at most {self.worst_case_retrainings:,d} = "
                + " + ".join(parts)
            )
            lines.append(
                f"                           expected {self.verifier_retrainings:,d}: the later "
                "stages run only after a first-stage rejection"
            )
        else:
            lines.append(
                f"  Verifier retrainings     {at_most}{self.verifier_retrainings:,d} = "
                + " + ".join(parts)
            )
        if self.prover_evaluations:
            lines.append(f"  Prover evaluations       {self.prover_evaluations:,d}")
        else:
            lines.append("  Prover evaluations       0 (local mode: no Prover)")
        est = self.estimated_seconds
        if est is not None and self.seconds_per_training is not None:
            lines.append(
                f"  estimated Verifier time  {format_seconds(est)} of training at the pilot's "
                f"{self.seconds_per_training * 1e3:.3g} ms per model"
                + ("; the Prover's time depends on its hardware" if self.prover_evaluations else "")
            )
        return "\n".join(lines)


PlanHook = Callable[[PlanPreview], object]
"""``on_plan(preview)``: called once after planning, before any challenge; may raise
:class:`PlanDeclined`."""


def format_seconds(seconds: float) -> str:
    """``~42 s``, ``~3.5 min``, ``~2.1 h``."""
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.1f} min"
    return f"~{seconds / 3600:.1f} h"


def preview_plan(
    config: AuditConfig,
    plan: Plan,
    *,
    pilot_trainings: int,
    pilot_seconds: float | None,
    pilot_variance: float | None,
    local: bool = False,
) -> PlanPreview:
    """The preview of ``plan`` under ``config`` (``local``: the Verifier evaluates every point)."""
    if local:
        retrainings, prover, second = plan.prover_evaluations, 0, 0
    else:
        retrainings, prover = plan.verifier_retrainings, plan.prover_evaluations
        second = 0
        if statistic_of(plan).layout.staged_spot_checks and config.escalation_factor > 1.0:
            second = max(0, int(config.escalation_factor * plan.spot_checks) - plan.spot_checks)
    per = (
        pilot_seconds / pilot_trainings
        if pilot_seconds is not None and pilot_trainings > 0
        else None
    )
    return PlanPreview(
        plan=plan,
        epsilon=config.require_epsilon(),
        epsilon_relative=config.epsilon_relative,
        pilot_variance=pilot_variance,
        pilot_trainings=pilot_trainings,
        retrainings=retrainings,
        prover_evaluations=prover,
        second_stage=second,
        seconds_per_training=per,
    )
