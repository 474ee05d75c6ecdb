"""Plan an audit: :func:`make_plan` asks the statistics' registry (:mod:`protocol.stats`).

The request and plan types live in :mod:`protocol.plan_types`; the planners
with their statistics: the linear gap planner (direct gap, paper residual) in
:mod:`protocol.stats._linear` and the clipped gap's in
:mod:`protocol.plan_clipped`.
"""

from __future__ import annotations

from protocol.plan_types import (
    ESTIMATORS,
    BudgetItem,
    DeltaShare,
    Estimator,
    Mode,
    Plan,
    Planning,
    PlanRequest,
)
from protocol.stats.registry import make_plan

__all__ = [
    "ESTIMATORS",
    "BudgetItem",
    "DeltaShare",
    "Estimator",
    "Mode",
    "Plan",
    "PlanRequest",
    "Planning",
    "make_plan",
]
