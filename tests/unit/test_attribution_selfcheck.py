"""The self-check against exact err, the epsilon search, LDS, and the resumable pipeline.

Statistical bound: the spectrum below has degree <= 2, so the D = 2 functional
is unbiased and err_hat is a sum of ~4000 independent bounded pair terms; the
checked interval is err_hat +- 5.3 se (delta = 1e-6 union over Z = 2), so a
false failure has probability about 1e-6 under the normal approximation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from protocol.plan import PlanRequest, make_plan
from prover.attribution import AttributionConfig, attribute, linear_datamodeling_score
from prover.attribution.selfcheck import smallest_epsilons
from prover.store import ResultStore
from prover.tasks import build_task
from prover.tasks.specs import SpectrumSection, SyntheticSpec
from prover.tasks.synthetic import SyntheticTask

SPEC = SyntheticSpec(
    bound=8.0,
    n_outputs=2,
    spectrum=SpectrumSection(
        n_items=20,
        degree_weights=(0.2, 0.6, 0.2),
        terms_per_degree=(1, 15, 10),
        noise=0.3,
        structure_seed=11,
    ),
)


def synthetic_task() -> SyntheticTask:
    task = build_task(SPEC)
    assert isinstance(task, SyntheticTask)
    return task


def test_self_check_interval_covers_the_exact_err() -> None:
    task = synthetic_task()
    cfg = AttributionConfig(method="datamodel", samples=60, check_samples=8000, delta=1e-6, seed=4)
    res = attribute(task, cfg)
    assert res.check is not None
    f = task.function
    exact = f.err(res.scores.theta0, res.scores.theta)
    b2 = f.residual_weight()
    for z, o in enumerate(res.check.outputs):
        print(f"z={z}: exact err {exact[z]:.4f} in [{o.err_low:.4f}, {o.err_high:.4f}]")
        assert o.err_low <= exact[z] <= o.err_high
        assert abs(o.b_ge2 - b2[z]) <= 5.3 * o.b_ge2_se
        assert abs(o.mse - (b2[z] + exact[z])) <= 5.3 * o.mse_se * math.sqrt(2)
        assert o.err_high - o.err_low < 0.75 * o.variance  # informative
        assert 0.3 < o.lds <= 1.0
        assert o.eps_min > o.err_high
    assert res.check.lds == pytest.approx(np.mean([o.lds for o in res.check.outputs]))


def test_eps_min_is_the_least_grid_epsilon_whose_plan_covers_err_high() -> None:
    task = synthetic_task()
    res = attribute(task, AttributionConfig(method="datamodel", samples=200, check_samples=400))
    assert res.check is not None
    var = max(o.variance for o in res.check.outputs)
    assert res.check.estimator == "degree-1"  # the default statistic's
    moments = {k: tuple(v) if isinstance(v, list) else v for k, v in res.check.plan_moments.items()}
    assert set(moments) == {
        "second_moments", "fourth_moments", "tail_profile", "tail_spread", "tail_runs",
        "abs_tail_profile", "abs_tail_spread",
    }  # fmt: skip
    assert moments["tail_runs"] == 2 * res.check.n_pairs  # both points of every held-out pair

    def radius(eps: float) -> float:
        req = PlanRequest(
            epsilon=eps,
            delta=0.05,
            bound=task.bound,
            tolerance=task.output_tolerance,
            n_outputs=2,
            p=0.5,
            planning="practical",
            estimator="degree-1",  # the audit's default statistic, as the self-check plans it
            variance=var,
            attribution_bound=res.check.attribution_bound,
            n_items=task.n_items,
            **moments,
        )
        return make_plan(req).completeness_radius

    for o in res.check.outputs:
        assert radius(o.eps_min) >= o.err_high
        assert radius(o.eps_min / 1.02) < o.err_high


def test_smallest_epsilons_inverts_a_monotone_radius() -> None:
    calls: list[float] = []

    def radius(eps: float) -> float:
        calls.append(eps)
        return eps / 4.0 - 1e-3

    targets = np.array([1e-3, 2e-3, 0.5, 0.0, 1e6])
    got = smallest_epsilons(targets, radius, scale=100.0)
    for t, e in zip(targets[:3], got[:3], strict=True):
        want = 4.0 * (t + 1e-3)
        assert want <= e <= want * 1.02 + 1e-15
    assert got[3] <= 4.0 * 1e-3 * 1.02
    assert got[4] == math.inf
    assert len(calls) < 60


def test_lds_is_spearman_and_nan_for_constant_outputs() -> None:
    a = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    b = np.array([[10.0, 1.0], [20.0, 2.0], [25.0, 3.0], [40.0, 4.0]])
    lds = linear_datamodeling_score(a, b)
    assert lds[0] == pytest.approx(1.0) and math.isnan(lds[1])
    lds = linear_datamodeling_score(a[:, :1], -b[:, :1])
    assert lds[0] == pytest.approx(-1.0)


def test_pipeline_resumes_from_the_store_and_is_reproducible(tmp_path: Path) -> None:
    task = synthetic_task()
    cfg = AttributionConfig(method="empirical-influence", samples=300, check_samples=100)
    with ResultStore.open_for_task(tmp_path / "store", task) as store:
        first = attribute(task, cfg, store=store)
        again = attribute(task, cfg, store=store)
    assert first.n_trained > 0 and first.n_from_store == 0
    assert again.n_trained == 0 and again.n_from_store == first.n_trained
    np.testing.assert_array_equal(first.scores.theta, again.scores.theta)
    assert first.scores.digest() == again.scores.digest()
    meta = first.scores.meta
    assert meta["config"]["method"] == "empirical-influence"
    assert meta["task"]["digest"] == task.digest
    assert len(meta["self_check"]["outputs"]) == 2


def test_more_samples_reuse_the_earlier_runs(tmp_path: Path) -> None:
    task = synthetic_task()
    with ResultStore.open_for_task(tmp_path / "store", task) as store:
        attribute(
            task, AttributionConfig(method="datamodel", samples=100, check_samples=0), store=store
        )
        more = attribute(
            task, AttributionConfig(method="datamodel", samples=150, check_samples=0), store=store
        )
    assert (more.n_trained, more.n_from_store) == (50, 100)
    assert more.check is None and more.scores.meta["self_check"] is None
