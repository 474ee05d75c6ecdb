"""The clipped direct gap: its bounds by exact enumeration, the LP functionals, plan and decision.

Exact enumeration on N = 6 items: every pair (x, x') with its probability under
B_p and the rho-partner law, for functions with heavy rare values, so that each
inequality the statistic's accounting rests on is checked, not assumed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocol import clipped_gap as cg
from protocol.decision import (
    Escalation,
    decide_committed,
    escalation,
    first_stage,
    hopeless_output,
)
from protocol.decision_clipped import ROBUST_COST
from protocol.errors import InvalidArgument
from protocol.fourier import cube_points, cube_probabilities
from protocol.hypercube import partner_probabilities, rho_max
from protocol.lp_functional import LP_BETAS, lp_functional
from protocol.plan import PlanRequest, make_plan

N = 6


def pair_law(p: float, rho: float) -> np.ndarray:
    """``P(x, x')`` over all 2^N x 2^N pairs (x ~ B_p, x' its rho-partner)."""
    x = cube_points(N).astype(np.int64)
    px = cube_probabilities(N, p)
    up_from_minus, up_from_plus = partner_probabilities(p, rho)
    up = np.where(x[:, None, :] > 0, up_from_plus, up_from_minus)  # P(x'_i = +1 | x_i)
    match = np.where(x[None, :, :] > 0, up, 1.0 - up)
    return np.asarray(px[:, None] * match.prod(axis=2))


def heavy_function(rng: np.random.Generator) -> np.ndarray:
    """Residual-like values: Gaussian bulk and a few rare, large values."""
    q = rng.normal(0.0, 0.5, size=2**N)
    q[rng.choice(2**N, size=3, replace=False)] = rng.choice([-1.0, 1.0], size=3) * 6.0
    return q


CASES = [(p, rho) for p in (0.3, 0.5) for rho in (-rho_max(p), -0.3, 0.0, 0.4, 0.8, 1.0)]


@pytest.mark.parametrize(("p", "rho"), CASES)
def test_clipping_bias_is_within_the_single_run_tail(p: float, rho: float) -> None:
    """``|E clip(q q') - E q q'| <= E[(q^2 - C)_+]`` (the convexity bound), exactly."""
    rng = np.random.default_rng(7)
    law = pair_law(p, rho)
    px = cube_probabilities(N, p)
    for _ in range(5):
        q = heavy_function(rng)
        prod = q[:, None] * q[None, :]
        for clip in (0.25, 1.0, 4.0, 20.0):
            bias = float((law * (np.clip(prod, -clip, clip) - prod)).sum())
            tail = float((px * np.maximum(q**2 - clip, 0.0)).sum())
            assert abs(bias) <= tail + 1e-12, (p, rho, clip, bias, tail)


@pytest.mark.parametrize(("p", "rho"), CASES)
def test_product_second_moment_bound(p: float, rho: float) -> None:
    """``E[q^2 q'^2] <= m2^2 + |rho| (m4 - m2^2)`` for every function (noise stability of q^2)."""
    rng = np.random.default_rng(11)
    law = pair_law(p, rho)
    px = cube_probabilities(N, p)
    for _ in range(10):
        q = heavy_function(rng) + rng.normal(size=2**N) * rng.uniform(0, 2)
        exact = float((law * (q[:, None] ** 2) * (q[None, :] ** 2)).sum())
        m2, m4 = float((px * q**2).sum()), float((px * q**4).sum())
        assert exact <= float(cg.node_second_moment_bound(rho, m2, m4)) + 1e-12


def test_chi2_tail_mean_matches_monte_carlo() -> None:
    z = np.random.default_rng(3).normal(size=2_000_000) ** 2
    for kappa in (0.5, 3.0, 10.0):
        mc = float(np.maximum(z - kappa, 0.0).mean())
        assert cg.chi2_tail_mean(kappa) == pytest.approx(mc, rel=0.05, abs=1e-4)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_lp_functionals_have_no_downward_bias(p: float) -> None:
    low = -rho_max(p)
    previous = math.inf
    for beta in LP_BETAS:
        f = lp_functional(beta, low)
        assert min(f.nodes) >= low and max(f.nodes) <= 1.0
        w, r = np.asarray(f.weights), np.asarray(f.nodes)
        assert [float((w * r**k).sum()) for k in range(3)] == pytest.approx([1, 1, 0], abs=1e-9)
        lo, hi = f.bias_range(1.0)  # every degree up to 4096
        assert lo >= -1e-6 and hi <= beta + 1e-6  # round-off of HiGHS, charged by the planner
        assert f.l1_norm <= previous + 1e-9  # a larger upward allowance never costs more
        previous = f.l1_norm


def _request(**kw: object) -> PlanRequest:
    base: dict[str, object] = {
        "epsilon": 0.08,
        "delta": 0.05,
        "bound": 30.0,
        "tolerance": 1e-9,
        "n_outputs": 4,
        "p": 0.5,
        "mode": "committed",
        "planning": "practical",
        "estimator": "lp",
        "attribution_bound": 10.0,
        "variance": 0.14,
        "second_moments": (0.14, 0.05, 0.03, 0.1),
        "fourth_moments": (0.06, 0.008, 0.003, 0.03),
    }
    base.update(kw)
    return PlanRequest(**base)  # type: ignore[arg-type]


def test_plan_spends_epsilon_exactly_and_meets_the_radius() -> None:
    plan = make_plan(_request())
    assert plan.clip_levels is not None and plan.statistic == "clipped-gap"
    eps = plan.request.epsilon
    assert plan.completeness_radius >= 0.1 * eps * (1 - 1e-9)
    assert abs(plan.slack) < 1e-12  # the margin is spent, nothing left over
    assert plan.prover_evaluations <= plan.request.max_prover_evaluations
    n_points = plan.prover_evaluations
    need = math.ceil(n_points * math.log(1 / plan.delta_spot) / (plan.tolerated_corruptions + 1))
    assert min(n_points, need) <= plan.spot_checks <= n_points
    assert plan.assumptions and "normal approximation" in plan.table()


def test_evaluation_cap_and_refusals() -> None:
    capped = make_plan(_request(max_prover_evaluations=20_000))
    assert capped.prover_evaluations <= 20_000
    with pytest.raises(InvalidArgument, match=r"^sampling: no clipped-gap plan"):
        make_plan(_request(max_prover_evaluations=40))
    with pytest.raises(InvalidArgument, match="lp estimator"):
        make_plan(_request(mode="paper"))
    with pytest.raises(InvalidArgument, match="completeness_radius"):
        _request(completeness_radius=0.08)


def _honest(plan_rng: np.random.Generator, n: int, z: int, sd: float) -> tuple[np.ndarray, ...]:
    q1 = plan_rng.normal(0.0, sd, size=(n, z))
    q2 = plan_rng.normal(0.0, sd, size=(n, z))
    zeros = np.zeros((n, z))
    return q1, q2, zeros, zeros


def test_decision_terms_are_the_planned_terms() -> None:
    """With observed variance and tail below the planned ones, U - err_hat is the plan's margin.

    The planner's deviation and the decision's are one function
    (:func:`protocol.clipped_gap.deviation`): the decision can only be stricter.
    """
    plan = make_plan(_request())
    f1, f2, g1, g2 = _honest(np.random.default_rng(5), plan.n_pairs, 4, 0.01)
    d = decide_committed(
        plan, first_outputs=f1, second_outputs=f2, first_predictions=g1, second_predictions=g2
    )
    assert d.accept
    margins = [o.certified_upper - o.estimate for o in d.outputs]
    assert max(margins) == pytest.approx(plan.request.epsilon - plan.threshold, rel=1e-12)
    assert all(o.certified_upper < plan.request.epsilon for o in d.outputs)


def test_observed_variance_and_verified_tail_raise_the_bound() -> None:
    plan = make_plan(_request())
    assert plan.clip_levels is not None
    f1, f2, g1, g2 = _honest(np.random.default_rng(6), plan.n_pairs, 4, 0.01)
    base = decide_committed(
        plan, first_outputs=f1, second_outputs=f2, first_predictions=g1, second_predictions=g2
    )
    noisy = np.random.default_rng(7).normal(0.0, 1.2, size=f1.shape)  # variance above plan
    louder = decide_committed(
        plan, first_outputs=noisy, second_outputs=noisy[::-1], first_predictions=g1,
        second_predictions=g2,
    )  # fmt: skip
    heavy = np.zeros((400, 4))
    heavy[:8] = 30.0  # verified runs far beyond the clip level
    tailed = decide_committed(
        plan, first_outputs=f1, second_outputs=f2, first_predictions=g1, second_predictions=g2,
        verified_residuals=heavy,
    )  # fmt: skip
    for o0, o1, o2 in zip(base.outputs, louder.outputs, tailed.outputs, strict=True):
        assert o1.interval[1] - o1.estimate > o0.interval[1] - o0.estimate
        assert o2.certified_upper - o2.estimate > o0.certified_upper - o0.estimate
    assert not tailed.accept


def test_escalation_buys_a_higher_clip_level_for_a_heavy_tail() -> None:
    """A tail the pilot missed: the first stage rejects, a second stage could accept."""
    plan = make_plan(_request(epsilon=0.12))
    assert plan.clip_levels is not None and plan.spot_checks < plan.prover_evaluations
    f1, f2, g1, g2 = _honest(np.random.default_rng(8), plan.n_pairs, 4, 0.05)
    verified = np.random.default_rng(9).normal(0.0, 0.05, size=(3000, 4))
    verified[:10, :] = 5.0 * np.sqrt(plan.clip_levels)  # rare: q^2 = 25 C, below 32 C
    kw = {"first_outputs": f1, "second_outputs": f2, "first_predictions": g1,
          "second_predictions": g2, "verified_residuals": verified}  # fmt: skip
    first = decide_committed(plan, **kw)  # type: ignore[arg-type]
    assert not first.accept
    esc = escalation(plan, **kw)  # type: ignore[arg-type]
    assert esc is not None and esc.multiple > 1.0 and esc.spot_checks > plan.spot_checks
    second = decide_committed(plan, escalated=esc, **kw)  # type: ignore[arg-type]
    assert second.accept, second.reason
    worse = {**kw, "first_outputs": f1 + 3.0, "second_outputs": f2 + 3.0}  # err ~ 9 >> eps
    assert escalation(plan, **worse) is None  # type: ignore[arg-type]


def test_escalation_prefers_a_higher_clip_within_twice_the_cheapest() -> None:
    """The chosen second stage clips at the highest level costing <= ROBUST_COST x the cheapest."""
    plan = make_plan(_request(epsilon=0.12))
    assert plan.clip_levels is not None
    f1, f2, g1, g2 = _honest(np.random.default_rng(8), plan.n_pairs, 4, 0.05)
    verified = np.random.default_rng(9).normal(0.0, 0.05, size=(3000, 4))
    verified[:10, :] = 5.0 * np.sqrt(plan.clip_levels)
    kw = {"first_outputs": f1, "second_outputs": f2, "first_predictions": g1,
          "second_predictions": g2, "verified_residuals": verified}  # fmt: skip
    esc = escalation(plan, **kw)  # type: ignore[arg-type]
    assert esc is not None
    cheapest = escalation(plan, max_spot_checks=0, **kw)  # type: ignore[arg-type]
    assert cheapest is not None  # none affordable: the cheapest option itself
    assert esc.multiple >= cheapest.multiple
    assert esc.spot_checks <= ROBUST_COST * cheapest.spot_checks
    # a second stage sized with the clipping term counted twice accepts
    assert decide_committed(plan, escalated=esc, **kw).accept  # type: ignore[arg-type]


@pytest.mark.parametrize("err_over_eps", [0.0, 0.5, 0.9, 1.2, 3.0])
def test_hopeless_output_never_rejects_what_spot_checks_could_accept(err_over_eps: float) -> None:
    """The cheap rejection fires only when every stage's certified bound reaches epsilon.

    A constant offset ``c`` per output gives ``err_hat ~ c^2``; for every offset
    the first stage (any verified tail) and every second stage, with no corruption
    tolerated (the most favourable spot-check outcome), must reject whenever
    :func:`hopeless_output` names an output, and it must name one for scores far
    beyond epsilon.
    """
    plan = make_plan(_request())
    eps = plan.request.epsilon
    f1, f2, g1, g2 = _honest(np.random.default_rng(11), plan.n_pairs, 4, 0.02)
    shift = math.sqrt(err_over_eps * eps)
    arrays = {"first_outputs": f1 + shift, "second_outputs": f2 + shift,
              "first_predictions": g1, "second_predictions": g2}  # fmt: skip
    hopeless = hopeless_output(plan, **arrays)  # type: ignore[arg-type]
    best_first = decide_committed(plan, **arrays)  # type: ignore[arg-type]
    stages = [
        decide_committed(plan, escalated=Escalation(g, 0, plan.prover_evaluations), **arrays)  # type: ignore[arg-type]
        for g in cg.ESCALATION_MULTIPLES
    ]
    could_accept = best_first.accept or any(d.accept for d in stages)
    if hopeless is not None:
        assert not could_accept
    if err_over_eps >= 3.0:
        assert hopeless is not None
    if err_over_eps == 0.0:
        assert hopeless is None and best_first.accept


def test_first_stage_buys_fewer_spot_checks_for_results_well_inside_epsilon() -> None:
    """Honest results far below the radius tolerate more corruption; worse ones the plan's."""
    plan = make_plan(_request())
    good = _honest(np.random.default_rng(12), plan.n_pairs, 4, 0.01)
    kw = dict(zip(("first_outputs", "second_outputs", "first_predictions",
                   "second_predictions"), good, strict=True))  # fmt: skip
    stage = first_stage(plan, **kw)  # type: ignore[arg-type]
    assert stage.stage == 1 and stage.multiple == 1.0
    assert stage.tolerated > plan.tolerated_corruptions
    assert stage.spot_checks < plan.spot_checks
    n_points = plan.prover_evaluations
    assert stage.spot_checks == math.ceil(
        n_points * math.log(1 / plan.delta_spot) / (stage.tolerated + 1)
    )
    d = decide_committed(plan, escalated=stage, **kw)  # type: ignore[arg-type]
    assert d.accept
    # the certified bound charges the larger tolerated count: corruption m* Lambda
    plain = decide_committed(plan, **kw)  # type: ignore[arg-type]
    for o_stage, o_plan in zip(d.outputs, plain.outputs, strict=True):
        assert o_stage.certified_upper > o_plan.certified_upper
        assert o_stage.certified_upper < plan.request.epsilon
    # results near epsilon: the plan's own count, never more than planned
    shift = math.sqrt(0.8 * plan.request.epsilon)
    near = {**kw, "first_outputs": good[0] + shift, "second_outputs": good[1] + shift}
    worse = first_stage(plan, **near)  # type: ignore[arg-type]
    assert worse.tolerated == plan.tolerated_corruptions
    assert worse.spot_checks <= plan.spot_checks


def test_table_shows_where_all_of_epsilon_goes() -> None:
    """One output: the table's terms add up to epsilon (100%), each rounded to 3 digits."""
    plan = make_plan(_request(n_outputs=1, second_moments=(0.14,), fourth_moments=(0.06,)))
    text = plan.table()
    rows = [line for line in text.splitlines() if line.rstrip().endswith("%") or "%  " in line]
    shares = [float(line.split("%")[0].split()[-1]) for line in rows]
    names = ("completeness radius", "honest sampling noise", "upward bias allowance",
             "clipping shift", "sampling", "clipping bias", "corruption", "tolerance")  # fmt: skip
    for name in names:
        assert any(line.strip().startswith(name) for line in rows), name
    assert sum(shares) == pytest.approx(100.0, abs=0.5)
    assert f"up to {plan.spot_checks:,d}" in text
    assert "e-1" not in text.split("where epsilon goes")[1].split("practical-mode")[0]


def test_local_mode_plan_tolerates_no_corruption_and_trains_fewer_points() -> None:
    """The Verifier evaluates every point itself: no spot checks, no corruption charged."""
    committed = make_plan(_request())
    local = make_plan(_request(verifier_trains_all=True))
    assert local.spot_checks == 0 and local.tolerated_corruptions == 0
    assert local.corruption_budget == 0.0
    # a committed plan's pair count is feasible for local mode too (its margin covers
    # corruption), so the cheapest local plan is at most as large
    assert local.prover_evaluations <= committed.prover_evaluations
    assert "evaluates every point itself" in local.table()


@pytest.mark.parametrize("estimator", ["lp", "chebyshev"])
def test_accepted_outputs_certify_a_bound_below_epsilon(estimator: str) -> None:
    """Issue 11: on accept, every output's certified bound is below epsilon (120 decisions).

    Honest residuals with variances from well below to above the planned one and
    a mean shift up to err = 0.75 eps: whatever the decision accepts, it certifies
    below epsilon, because it charges at least the planned deviation by the rule
    the plan was sized with.
    """
    extra = {} if estimator == "lp" else {"second_moments": None, "fourth_moments": None}
    plan = make_plan(_request(estimator=estimator, **extra))
    eps, accepted = plan.request.epsilon, 0
    for seed in range(120):
        sd = 0.1 + 0.3 * (seed % 6) / 5
        f1, f2, g1, g2 = _honest(np.random.default_rng(seed), plan.n_pairs, 4, sd)
        shift = math.sqrt(eps * (seed % 4) / 4)
        d = decide_committed(plan, first_outputs=f1 + shift, second_outputs=f2 + shift,
                             first_predictions=g1, second_predictions=g2)  # fmt: skip
        if d.accept:
            accepted += 1
            assert max(o.certified_upper for o in d.outputs) < eps
    assert 20 <= accepted <= 100  # both verdicts occur: the check is not vacuous
