"""Benchmarks of the attribution methods (issue 4, acceptance 2 and 4).

Run: ``.venv/bin/pytest -m bench -s tests/bench/test_bench_attribution.py``.

* ``test_bench_logreg_methods`` (acceptance 2): the example ``logreg`` task
  (N = 400, Z = 16) with M = 20,000 fitting retrainings and 8,000 held-out
  retrainings for the self-check, shared by the three methods through one
  result store.  Prints per method the estimated err relative to Var(f)
  (worst and mean over outputs), the worst upper end of the err interval, the
  mean LDS and the largest smallest-acceptable epsilon.  Asserts that the
  ``datamodel`` estimate is below 2% of Var(f) for every output.
* ``test_bench_datamodel_fit_scale`` (acceptance 4): wall time and peak memory
  of fitting a ridge datamodel for N = 1000, Z = 16, M = 50,000 on a synthetic
  function (so the exact err is printed too).  Peak memory is tracemalloc's
  peak of numpy allocations during the fit, next to the inputs' size; the
  solver's own footprint is O(N^2) (a few N x N Gram/eigenvector matrices),
  never O(M N) in float64.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from protocol.synthetic import PlantedSpectrum, SyntheticFunction
from prover.attribution import AttributionConfig, Streams, attribute, draw_fit_design
from prover.attribution.datamodel import fit_datamodel
from prover.store import ResultStore
from prover.tasks.registry import load_task

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench


def test_bench_logreg_methods(tmp_path: Path) -> None:
    task_path = REPO / "examples" / "tasks" / "logreg.toml"
    task = load_task(task_path)
    rows = []
    with ResultStore.open_for_task(tmp_path / "store", task, durable=False) as store:
        for method in ("datamodel", "empirical-influence", "influence-function"):
            cfg = AttributionConfig(
                method=method,  # type: ignore[arg-type]
                samples=0 if method == "influence-function" else 20_000,
                check_samples=32_000,
                seed=0,
            )
            t0 = time.perf_counter()
            res = attribute(task, cfg, base_dir=task_path.parent, store=store, progress=False)
            wall = time.perf_counter() - t0
            assert res.check is not None
            rel = np.array([o.err / o.variance for o in res.check.outputs])
            high = np.array([o.err_high / o.variance for o in res.check.outputs])
            eps = max(o.eps_min for o in res.check.outputs)
            rows.append((method, rel, high, res.check.lds, eps, wall, res))
    print(f"\nlogreg (N={task.n_items}, Z={task.n_outputs}), M=20,000, 16,000 held-out pairs")
    print(
        f"{'method':<20} {'max err/Var':>11} {'mean err/Var':>12} {'max err_hi/Var':>14} "
        f"{'mean LDS':>8} {'max eps_min':>11} {'wall s':>7}"
    )
    for method, rel, high, lds, eps, wall, _ in rows:
        print(
            f"{method:<20} {rel.max():>11.2%} {rel.mean():>12.2%} {high.max():>14.2%} "
            f"{lds:>8.4f} {eps:>11.4g} {wall:>7.1f}"
        )
    for method, *_, res in rows:
        print(f"\n{method}:\n{res.check.table()}")
    datamodel_rel = rows[0][1]
    assert np.all(datamodel_rel < 0.02), datamodel_rel


def test_bench_datamodel_fit_scale() -> None:
    n, z, m = 1000, 16, 50_000
    spec = PlantedSpectrum(
        n_items=n,
        p=0.5,
        degree_weights=(0.1, 1.0, 0.2, 0.05),
        terms_per_degree=(1, 200, 100, 50),
        noise=0.3,
        n_outputs=z,
        structure_seed=1,
    )
    f = SyntheticFunction.from_spec(spec)
    x, seeds = draw_fit_design(Streams(0), m, n, 0.5)
    y = np.concatenate(
        [f.evaluate(x[i : i + 5000], seeds[i : i + 5000]) for i in range(0, m, 5000)]
    )
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    fit = fit_datamodel(x, y, p=0.5, rng=np.random.default_rng(0))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    err = f.err(fit.theta0, fit.theta)
    predicted = f.residual_weight() * (n + 1) / m
    print(
        f"\ndatamodel fit N={n} Z={z} M={m}: wall {wall:.1f} s (CPU {cpu:.1f} s), peak traced "
        f"memory "
        f"{peak / 2**20:.0f} MiB (inputs: x {x.nbytes / 2**20:.0f} MiB int8, "
        f"y {y.nbytes / 2**20:.1f} MiB; one N x N float64 = {n * n * 8 / 2**20:.1f} MiB)"
    )
    print(
        f"exact err: mean {err.mean():.4g}, max {err.max():.4g} "
        f"(B>=2 (N+1)/M = {predicted.mean():.4g}); err/Var max {(err / f.variance()).max():.3%}"
    )
    assert peak < 16 * n * n * 8 + 64 * 2**20  # O(N^2) + a few blocks, no M x N float64
