"""Every registered statistic: the planner and the decision call the same deviation function.

A mismatch between the planner's sizing and the decision's statistic is a
silent soundness bug, so this checks it by spying on the one function each
statistic's deviation goes through, during a real plan and a real decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from protocol import clipped_gap as cg
from protocol import ustatistic as us
from protocol.decision import decide_committed, decide_paper
from protocol.plan import ESTIMATORS, Plan, PlanRequest, make_plan
from protocol.statistics import STATISTICS, PairStatistic
from protocol.stats import names, resolve

#: (mode, estimator) of every pair statistic (the residual twice: linear and NNLS fit).
CASES = {
    "gap": ("committed", "chebyshev"),
    "residual": ("paper", "three-point"),
    "residual-nnls": ("paper", "three-point-nnls"),
    "clipped-gap": ("committed", "lp"),
    "u-statistic": ("committed", "degree-1"),
}


def test_every_statistic_and_estimator_is_covered() -> None:
    assert set(CASES) == {*STATISTICS, "clipped-gap", "u-statistic"}
    served = {
        resolve(m, planning, e).name
        for m in ("committed", "paper")
        for planning in ("rigorous", "practical")
        for e in ESTIMATORS
        if (e in ("lp", "degree-1")) == ((m, planning) == ("committed", "practical"))
        and not (m == "committed" and e == "three-point-nnls")
    }
    assert served == set(names()) == {"clipped-gap", "gap", "residual", "u-statistic"}
    for name, (mode, estimator) in CASES.items():
        plan = _plan(mode, estimator)
        assert plan.statistic == name.removesuffix("-nnls")


def _plan(mode: str, estimator: str) -> Plan:
    return make_plan(
        PlanRequest(
            epsilon=2.0, delta=0.05, bound=3.0, tolerance=0.0, n_outputs=2, p=0.5, mode=mode,  # type: ignore[arg-type]
            planning="practical", estimator=estimator,  # type: ignore[arg-type]
            variance=1.0, attribution_bound=1.0, n_items=20,
        )
    )  # fmt: skip


def _decide(plan: Plan) -> None:
    rng = np.random.default_rng(0)
    n, z = plan.n_pairs, plan.request.n_outputs
    f1, f2 = rng.uniform(-1, 1, (n, z)), rng.uniform(-1, 1, (n, z))
    if plan.request.mode == "committed":
        zeros = np.zeros((n, z))
        x1, x2 = (np.where(rng.random((n, 20)) < 0.5, 1, -1).astype(np.int8) for _ in "ab")
        decide_committed(
            plan, first_outputs=f1, second_outputs=f2, first_predictions=zeros,
            second_predictions=zeros, first_points=x1, second_points=x2,
        )  # fmt: skip
    else:
        local = rng.uniform(-1, 1, (plan.local_trainings, z))
        decide_paper(
            plan, first_outputs=f1, second_outputs=f2, centre=np.zeros(z),
            local_outputs=local, local_predictions=np.zeros_like(local),
        )  # fmt: skip


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []
    ranges, deviation = PairStatistic.ranges, cg.deviation
    u_deviation = us.deviation

    def ranges_spy(self: PairStatistic, weights: Any, counts: Any, value_bound: float) -> Any:
        calls.append((self.name, (tuple(weights), value_bound)))
        return ranges(self, weights, counts, value_bound)

    def deviation_spy(planned_variance: Any, delta: float, observed: Any = None) -> Any:
        calls.append(("clipped-gap", delta))
        return deviation(planned_variance, delta, observed)

    def u_deviation_spy(variance: Any, delta: float) -> Any:
        calls.append(("u-statistic", delta))
        return u_deviation(variance, delta)

    monkeypatch.setattr(us, "deviation", u_deviation_spy)
    monkeypatch.setattr(PairStatistic, "ranges", ranges_spy)
    monkeypatch.setattr(cg, "deviation", deviation_spy)
    yield calls


@pytest.mark.parametrize("name", list(CASES))
def test_planner_and_decision_share_the_deviation(name: str, spy: list[tuple[str, Any]]) -> None:
    mode, estimator = CASES[name]
    plan = _plan(mode, estimator)
    planned = [c for c in spy if c[0] == name]
    spy.clear()
    _decide(plan)
    decided = [c for c in spy if c[0] == name]
    assert planned and decided, (name, len(planned), len(decided))
    # Same function with the same functional and bound (the plan's), at the plan's delta.
    assert {c[1] for c in decided} <= {c[1] for c in planned}
