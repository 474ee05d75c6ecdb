"""Practical-mode assumptions of the linear pair statistics (direct gap, paper residual)."""

from __future__ import annotations

from protocol.plan_types import Plan

__all__ = ["linear_assumptions"]


def linear_assumptions(plan: Plan) -> tuple[str, ...]:
    """What a practical linear plan assumes; rigorous plans assume nothing beyond the task."""
    if plan.clip_at is None:
        return ()
    return (
        f"the planned values' second moment is at most {plan.request.variance:.4g} "
        "(declared, or the Verifier's own pilot times its inflation)",
        f"at most 1% of values lie beyond the clip {plan.clip_at:.4g} "
        f"({plan.request.clip_sigmas:g} standard deviations; checked, else abort)",
        "the degree > D tail of the residuals is at most that second moment",
    )
