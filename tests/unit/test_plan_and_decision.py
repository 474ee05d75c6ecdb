"""Planner terms, refusals, and the decision rule on a planted-spectrum task."""

from __future__ import annotations

import numpy as np
import pytest

from protocol.decision import decide_committed, decide_paper
from protocol.errors import InvalidArgument, VerificationError
from protocol.plan import PlanRequest, make_plan
from protocol.prg import expand_pairs, expand_points
from protocol.synthetic import PlantedSpectrum, SyntheticFunction

FN = SyntheticFunction.from_spec(
    PlantedSpectrum(
        n_items=30,
        p=0.5,
        degree_weights=(0.05, 0.8, 0.1, 0.05),
        terms_per_degree=(1, 15, 20, 10),
        noise=0.2,
        n_outputs=2,
        structure_seed=7,
    )
)
VAR = float(FN.variance().max())
THETA0, THETA = FN.optimal_attribution()
G = float(np.max(np.abs(THETA0) + np.abs(THETA).sum(axis=1)))


def _request(**kw: object) -> PlanRequest:
    base: dict[str, object] = dict(
        epsilon=0.5 * VAR,
        delta=0.05,
        bound=FN.bound,
        n_outputs=2,
        planning="practical",
        variance=VAR,
        attribution_bound=G,
    )
    base.update(kw)
    return PlanRequest(**base)  # type: ignore[arg-type]


def test_table_itemises_every_term() -> None:
    plan = make_plan(_request())
    text = plan.table()
    for term in (
        "corruption budget",
        "bias (downward)",
        "tolerance slack",
        "sampling (Prover)",
        "slack",
        "Verifier spot checks",
        "completeness",
    ):
        assert term in text
    total = (
        plan.corruption_budget
        + abs(plan.bias_lower)
        + plan.tolerance_slack
        + plan.sampling_error
        + plan.slack
    )
    assert total == pytest.approx(plan.threshold)
    assert plan.slack >= 0
    assert plan.local_trainings == 0 and plan.verifier_retrainings == plan.spot_checks


def test_paper_plan_has_local_trainings() -> None:
    plan = make_plan(_request(mode="paper", estimator="three-point", epsilon=2 * VAR))
    assert plan.local_trainings > 0
    assert "sampling (local mse)" in plan.table()


def test_tolerance_too_large_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match=r"^tolerance: the tolerance slack"):
        make_plan(_request(tolerance=0.5))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"epsilon": -1.0}, "epsilon must be finite and > 0"),
        ({"delta": 1.5}, r"delta must lie in \(0, 1\)"),
        ({"variance": None}, "practical planning needs a declared or pilot variance"),
        ({"mode": "fast"}, "mode must be 'committed' or 'paper'"),
        ({"estimator": "three-point-nnls"}, "serves paper mode only"),
    ],
)
def test_bad_requests(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_plan(_request(**kw))


def _committed_inputs(scale: float, seed: bytes) -> tuple[object, dict[str, np.ndarray]]:
    plan = make_plan(_request())
    pairs = expand_pairs(seed, np.arange(plan.n_pairs), FN.n_items, FN.p, plan.rho_of_pair())
    a0, a = THETA0 * scale, THETA * scale
    return plan, dict(
        first_outputs=FN.evaluate(pairs.first, pairs.first_seeds),
        second_outputs=FN.evaluate(pairs.second, pairs.second_seeds),
        first_predictions=a0 + pairs.first @ a.T,
        second_predictions=a0 + pairs.second @ a.T,
    )


def test_committed_accepts_optimal_and_rejects_shrunken_scores() -> None:
    plan, honest = _committed_inputs(1.0, bytes(32))
    decision = decide_committed(plan, **honest)  # type: ignore[arg-type]
    assert decision.accept, decision.reason
    for out in decision.outputs:  # certified bound holds: true err is 0
        assert out.certified_upper >= 0.0 and out.interval[0] <= out.estimate <= out.interval[1]
    plan, cheat = _committed_inputs(0.2, bytes(32))
    true_err = FN.err(THETA0 * 0.2, THETA * 0.2)
    assert np.all(true_err >= plan.request.epsilon)
    decision = decide_committed(plan, **cheat)  # type: ignore[arg-type]
    assert not decision.accept
    assert (
        "output 0: estimated err" in decision.reason and "exceeds the threshold" in decision.reason
    )
    for out, err in zip(decision.outputs, true_err, strict=True):
        assert out.certified_upper >= err


def test_out_of_range_and_nan_outputs_abort() -> None:
    plan, inputs = _committed_inputs(1.0, bytes(32))
    bad = dict(inputs)
    bad["first_outputs"] = inputs["first_outputs"].copy()
    bad["first_outputs"][3, 1] = 2 * FN.bound
    with pytest.raises(VerificationError, match="lies outside the bound"):
        decide_committed(plan, **bad)  # type: ignore[arg-type]
    bad["first_outputs"][3, 1] = np.nan
    with pytest.raises(VerificationError, match="NaN or infinite"):
        decide_committed(plan, **bad)  # type: ignore[arg-type]
    bad = dict(inputs)
    bad["second_outputs"] = inputs["second_outputs"][:-1]
    with pytest.raises(InvalidArgument, match="second_outputs must have shape"):
        decide_committed(plan, **bad)  # type: ignore[arg-type]


def test_paper_mode_accepts_optimal_and_rejects_zero_scores() -> None:
    plan = make_plan(_request(mode="paper", estimator="chebyshev", epsilon=0.8 * VAR))
    assert np.all(FN.err(0 * THETA0, 0 * THETA) >= plan.request.epsilon)
    seed = bytes(range(32))
    pairs = expand_pairs(seed, np.arange(plan.n_pairs), FN.n_items, FN.p, plan.rho_of_pair())
    local = expand_points(seed, np.arange(plan.local_trainings), FN.n_items, FN.p)
    f1 = FN.evaluate(pairs.first, pairs.first_seeds)
    f2 = FN.evaluate(pairs.second, pairs.second_seeds)
    lf = FN.evaluate(local.x, local.seeds)
    verdicts = []
    for scale in (1.0, 0.0):
        a0, a = THETA0 * scale, THETA * scale
        centre = np.clip(a0 + 0.0, -FN.bound, FN.bound)
        verdicts.append(
            decide_paper(
                plan,
                first_outputs=f1,
                second_outputs=f2,
                centre=centre,
                local_outputs=lf,
                local_predictions=a0 + local.x @ a.T,
            )
        )
    assert verdicts[0].accept, verdicts[0].reason
    assert not verdicts[1].accept
