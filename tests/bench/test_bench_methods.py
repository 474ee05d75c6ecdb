"""Attribution methods compared on ``logreg`` and ``mlp`` (issue 12): err, LDS, models, wall time.

Run: ``.venv/bin/pytest -m bench -s tests/bench/test_bench_methods.py``
(results in ``docs/methods.md``; CSVs in ``out/methods/methods_<task>.csv``).

For each example task (``examples/tasks/logreg.toml``: N = 400, P = 31;
``examples/tasks/mlp.toml``: N = 1000, P = 2410; Z = 16 margins each) and each
method, in one process, one after the other, with no result store (so every
method pays for its own trainings):

* ``datamodel``: ridge on M retrainings (M = 2,000 for ``logreg``, 1,500 for
  ``mlp``; it needs M >= N + 2);
* ``influence-function``: one reference model; exact Hessian (``logreg``) or
  conjugate gradients with damping 0.05 (``mlp``);
* ``trak``: 5 ensemble models, projection to k = 512 (none for ``logreg``,
  whose P = 31 < k), damping chosen per output, calibrated on M = 200 retrainings.

Every method's scores are then evaluated on the same fresh held-out design
(its own seed; 1,000 pairs for ``logreg``, 300 for ``mlp``; 2 models per
rho-correlated pair, the self-check's Chebyshev
functional): ``mse = E[(f - g)^2]`` (all held-out points, each marginally B_p),
``err`` (the direct gap estimate of ``mse - B_{>=2}``, docs/design.md §1), both
relative to Var(f) and averaged over the Z outputs, the worst ``err/Var``, and
the LDS (Spearman correlation of g and f per output, averaged).  "models" counts
every training of the fit (the ensemble and the reference model included, the
held-out ones not); "wall" is the fit's wall time and "x dm" its ratio to the
first (smaller-M) datamodel's, measured in the same run.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prover.attribution import (
    AttributionConfig,
    Streams,
    attribute,
    check_functional,
    draw_check_pairs,
    run_self_check,
)
from prover.engine import train
from prover.tasks.registry import load_task

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.bench, pytest.mark.timeout(2 * 3600)]

#: task -> (datamodel Ms, held-out pairs)
SIZES = {"logreg": ((500, 2000), 1000), "mlp": ((1100, 4000), 300)}
TRAK_SAMPLES = 200
EVAL_SEED = 12


def _evaluate(task: Any, n_pairs: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    functional = check_functional(AttributionConfig(method="datamodel", samples=0), task.p)
    design = draw_check_pairs(Streams(EVAL_SEED), functional, n_pairs, task.n_items, task.p)
    x, seeds = design.points()
    out = train(task, x, seeds).outputs
    n = design.n_pairs  # the functional's allocation may round n_pairs up
    return functional, design, out[:n], out[n:]


def held_out_metrics(
    task: Any, scores: Any, functional: Any, design: Any, first: np.ndarray, second: np.ndarray
) -> dict[str, float]:
    """Mean ``mse/Var``, ``err/Var``, worst ``err/Var``, ``B_{>=2}/Var`` and LDS of ``scores``."""
    check = run_self_check(
        scores.theta0, scores.theta, design, first, second, functional,
        bound=task.bound, tolerance=task.output_tolerance, p=task.p, delta=0.05,
    )  # fmt: skip
    var = np.array([o.variance for o in check.outputs])
    err = np.array([o.err for o in check.outputs]) / var
    mse = np.array([o.mse for o in check.outputs]) / var
    return {
        "mse_var": float(mse.mean()),
        "err_var": float(err.mean()),
        "max_err_var": float(err.max()),
        "b_ge2_var": float(np.mean(np.array([o.b_ge2 for o in check.outputs]) / var)),
        "lds": check.lds,
    }


def _run(task_name: str) -> list[dict[str, Any]]:
    path = REPO / "examples" / "tasks" / f"{task_name}.toml"
    task = load_task(path)
    m_dm, n_pairs = SIZES[task_name]
    t0 = time.perf_counter()
    functional, design, first, second = _evaluate(task, n_pairs)
    print(
        f"\n{task_name}: {2 * design.n_pairs} held-out models in {time.perf_counter() - t0:.0f} s"
    )
    runs = [
        *[("datamodel", m, 0) for m in m_dm],
        ("influence-function", 0, 1),
        ("trak", TRAK_SAMPLES, 5),
    ]
    rows: list[dict[str, Any]] = []
    for method, samples, extra in runs:
        cfg = AttributionConfig(method=method, samples=samples, check_samples=0, seed=0)
        t0 = time.perf_counter()
        res = attribute(task, cfg, base_dir=path.parent, progress=False)
        wall = time.perf_counter() - t0
        rows.append(
            {"task": task_name, "method": method, "samples": samples,
             "models": res.n_trained + extra, "wall_s": wall,
             **held_out_metrics(task, res.scores, functional, design, first, second)}
        )  # fmt: skip
        print(f"  {method}: {rows[-1]}", flush=True)
    for row in rows:
        row["wall_ratio"] = row["wall_s"] / rows[0]["wall_s"]
    return rows


@pytest.mark.parametrize("task_name", list(SIZES))
def test_bench_methods(task_name: str) -> None:
    rows = _run(task_name)
    header = (
        f"{'task':<7} {'method':<19} {'M':>5} {'models':>6} {'wall s':>7} {'x dm':>5} "
        f"{'mse/Var':>8} {'err/Var':>8} {'max err/Var':>11} {'LDS':>6}"
    )
    print("\n" + header)
    for r in rows:
        print(
            f"{r['task']:<7} {r['method']:<19} {r['samples']:>5} {r['models']:>6} "
            f"{r['wall_s']:>7.1f} {r['wall_ratio']:>5.2f} {r['mse_var']:>8.3f} "
            f"{r['err_var']:>8.3f} {r['max_err_var']:>11.3f} {r['lds']:>6.3f}"
        )
    out = REPO / "out" / "methods"
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"methods_{task_name}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # Sanity floors only (every method ranks better than chance): the table is the result.
    assert all(r["lds"] > 0.2 for r in rows), rows
