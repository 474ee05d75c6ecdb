"""Protocol-core benchmark (issue 2): estimator accuracy and planned cost.

Run: ``make bench`` or ``.venv/bin/pytest -m bench -s tests/bench/test_bench_protocol.py``.

Prints, on the same planted-spectrum functions:

1. at an equal budget of model evaluations, the RMSE (against the exact
   err(a)) of three statistics of the sub-optimality of committed scores:
   the 3-point residual (``mean (f-g)^2 - B_{>=2}`` with Saunshi nodes), the
   Chebyshev residual, and the direct gap (Chebyshev nodes on residuals);
2. for eps in {0.2, 0.1, 0.05, 0.02} x Var(f), the planned Prover evaluations
   and Verifier retrainings of ``paper`` and ``committed`` modes, for three
   dataset sizes N, with the fitted log-log slopes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.estimators import (
    NodeFunctional,
    PairSample,
    chebyshev_functional,
    direct_gap,
    residual_weight,
    three_point_functional,
)
from protocol.hypercube import sample_bp, sample_partner
from protocol.plan import PlanRequest, make_plan
from protocol.synthetic import PlantedSpectrum, SyntheticFunction

pytestmark = pytest.mark.bench

SPECTRA = {
    # Linear part explains ~90% of the variance, like logistic regression margins.
    "near-linear": ((0.1, 0.9, 0.06, 0.03, 0.01), (1, 40, 40, 20, 10), 0.2),
    # Much weight beyond degree 1.
    "nonlinear": ((0.1, 0.5, 0.25, 0.15, 0.1), (1, 40, 40, 20, 10), 0.3),
}
BUDGET = 40_000  # model evaluations per estimate (20,000 pairs)
REPS = 100


def _function(name: str, n_items: int = 60) -> SyntheticFunction:
    weights, terms, noise = SPECTRA[name]
    return SyntheticFunction.from_spec(
        PlantedSpectrum(
            n_items=n_items,
            p=0.5,
            degree_weights=weights,
            terms_per_degree=terms,
            noise=noise,
            structure_seed=17,
        )
    )


def _pairs(fn: SyntheticFunction, f: NodeFunctional, n_pairs: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    counts = f.allocation(n_pairs)
    xs, ys = [], []
    for rho, c in zip(f.nodes, counts, strict=True):
        x = sample_bp(rng, c, fn.n_items, fn.p)
        xs.append(x)
        ys.append(sample_partner(rng, x, fn.p, rho))
    x1, x2 = np.vstack(xs), np.vstack(ys)
    seeds = rng.integers(0, 2**63, size=(2, len(x1)), dtype=np.uint64)
    node = np.repeat(np.arange(len(counts)), counts)
    return node, x1, x2, fn.evaluate(x1, seeds[0])[:, 0], fn.evaluate(x2, seeds[1])[:, 0]


def test_rmse_at_equal_budget() -> None:
    rng = np.random.default_rng(2026)
    print(f"\nRMSE of err_hat vs exact err at {BUDGET:,d} evaluations, {REPS} repetitions")
    print(f"{'function':<12} {'statistic':<22} {'||w||_1':>8} {'bias':>10} {'sd':>10} {'RMSE':>10}")
    for name in SPECTRA:
        fn = _function(name)
        theta0, theta = fn.optimal_attribution()
        a0 = theta0[0] + 0.05
        a = theta[0] * 0.9  # committed scores with a known, small err
        err = float(fn.err(np.array([a0]), a[None])[0])
        b = fn.bound
        g = abs(a0) + float(np.abs(a).sum())
        stats = {
            "3-point residual": three_point_functional(0.25),
            "Chebyshev residual": chebyshev_functional(0.6, 4),
            "direct gap (Chebyshev)": chebyshev_functional(0.6, 4),
        }
        for label, functional in stats.items():
            values = []
            for _ in range(REPS):
                node, x1, x2, f1, f2 = _pairs(fn, functional, BUDGET // 2, rng)
                q1, q2 = f1 - a0 - x1 @ a, f2 - a0 - x2 @ a
                if label.startswith("direct"):
                    est = direct_gap(
                        functional,
                        PairSample(node, q1, q2),
                        output_range=2 * b,
                        residual_bound=b + g,
                    )
                    values.append(est.value)
                else:
                    c = a0 + float(a.sum()) * 0.0  # centre fixed before results
                    b2 = residual_weight(
                        functional, PairSample(node, f1 - c, f2 - c), output_bound=2 * b
                    )
                    mse = float(np.concatenate([q1**2, q2**2]).mean())
                    values.append(mse - b2.value)
            v = np.asarray(values)
            print(
                f"{name:<12} {label:<22} {functional.l1_norm:>8.2f} {v.mean() - err:>+10.5f} "
                f"{v.std(ddof=1):>10.5f} {math.sqrt(np.mean((v - err) ** 2)):>10.5f}"
            )
        print(f"{name:<12} exact err = {err:.5f}, Var(f) = {float(fn.variance()[0]):.4f}")


def _slope(eps: list[float], values: list[int]) -> float:
    return float(np.polyfit(np.log(eps), np.log(values), 1)[0])


@pytest.mark.parametrize("planning", ["rigorous", "practical"])
def test_planned_cost_versus_epsilon(planning: str) -> None:
    fractions = [0.2, 0.1, 0.05, 0.02]
    print(f"\nPlanned cost, planning={planning}, delta=0.05, Z=16 (eps as a fraction of Var(f))")
    print(
        f"{'N':>6} {'eps/Var':>8} {'mode':<10} {'Prover evals':>16} {'spot checks':>12} "
        f"{'local':>10} {'V retrain':>10}"
    )
    committed_by_n: dict[int, list[int]] = {}
    for n_items in (100, 1000, 10000):
        fn = _function("near-linear", n_items)
        var = float(fn.variance()[0])
        theta0, theta = fn.optimal_attribution()
        g = float(np.abs(theta0[0]) + np.abs(theta[0]).sum())
        rows: dict[str, list[int]] = {"committed": [], "paper": []}
        for frac in fractions:
            for mode, estimator in (("paper", "three-point"), ("committed", "chebyshev")):
                try:
                    plan = make_plan(
                        PlanRequest(
                            epsilon=frac * var,
                            delta=0.05,
                            bound=fn.bound,
                            n_outputs=16,
                            mode=mode,
                            planning=planning,
                            estimator=estimator,  # type: ignore[arg-type]
                            variance=var,
                            attribution_bound=g,
                        )
                    )
                except InvalidArgument as exc:  # e.g. rigorous paper mode at small eps
                    print(f"{n_items:>6} {frac:>8.2f} {mode:<10} infeasible: {exc}")
                    continue
                rows[mode].append(plan.verifier_retrainings)
                print(
                    f"{n_items:>6} {frac:>8.2f} {mode:<10} {plan.prover_evaluations:>16,d} "
                    f"{plan.spot_checks:>12,d} {plan.local_trainings:>10,d} "
                    f"{plan.verifier_retrainings:>10,d}"
                )
        committed_by_n[n_items] = rows["committed"]
        paper = _slope(fractions, rows["paper"]) if len(rows["paper"]) == 4 else math.nan
        print(
            f"{'':>6} slopes: committed {_slope(fractions, rows['committed']):+.3f}, "
            f"paper {paper:+.3f}"
        )
    # The plan never sees N: the same spectrum at any N costs the same.
    assert len({tuple(v) for v in committed_by_n.values()}) == 1
    slope = _slope(fractions, committed_by_n[100])
    print(f"committed-mode Verifier retrainings: log-log slope {slope:+.3f} (target -1.2..-0.8)")
    assert -1.2 <= slope <= -0.8
