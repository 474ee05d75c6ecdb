"""Acceptance sweep of the default statistic (the degree-1 U-statistic) over several spectra.

Run (about 10 minutes at 200 audits per point on 2 cores)::

    PACDA_USWEEP_SEEDS=200 .venv/bin/pytest -m bench -s tests/bench/test_bench_ustat_sweep.py

Environment: ``PACDA_USWEEP_SEEDS`` (audits per point, default 200),
``PACDA_USWEEP_OUT`` (default ``out/ustat_sweep``), ``PACDA_WORKERS`` (default 2),
``PACDA_USWEEP_SPECTRA`` (a comma-separated subset of :data:`SPECTRA`),
``PACDA_USWEEP_STATISTICS`` (default ``u-statistic``; e.g.
``u-statistic,clipped-gap`` for both side by side).

Every audit goes through the real Verifier core exactly as the acceptance
sweep (:mod:`tests.bench.test_bench_acceptance`, whose pool, commitments and
:func:`~tests.bench.test_bench_acceptance.audit_once` it reuses): the pilot
on the Verifier's own runs, :func:`verifier.core.plan_audit`, honest answers
to the challenge, :func:`verifier.core.spot_check_and_decide` (the
statistic's spot-check count, its early rejection, its decision).  Scores are
``a* + t u`` with exact err = ``(err/eps) x eps`` at every point of
:data:`SWEEP` (0 to 3).

Spectra (synthetic tasks with a planted p-biased spectrum, exact err):

* ``p0.5`` — p = 0.5, weight on degrees 1 and 2, seed noise (the acceptance
  sweep's task);
* ``p0.3-high`` — p = 0.3, half the weight above degree 2 (degrees 3 and 4);
* ``p0.5-high`` — p = 0.5, most weight at degree 5, little noise;
* ``heavy`` — p = 0.3, one degree-4 term: its character is ``1.53^4 = 5.5``
  with probability 0.008 and small otherwise, a few large, rare outputs (a
  spiky, heavy-tailed output distribution), plus two strong items.

Writes ``ustat_sweep.csv`` (statistic, spectrum, err/eps, audits, accepts,
rate with its Wilson 95% interval, mean Verifier retrainings and Prover
evaluations) and ``ustat_sweep.json``.  Checks, per statistic and spectrum:
at err = 0 and err <= the completeness radius the rate is >= 1 - delta within
the Wilson interval, at err >= eps <= delta within it, and every accepted
audit's certified bound (read from the decision) is >= the exact err.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from protocol.hypercube import bias_moments
from prover.tasks.registry import load_task_text
from prover.tasks.synthetic import SyntheticTask
from tests.bench.test_bench_acceptance import Pool, audit_once, epsilon
from verifier.commitment import Commitment
from verifier.config import AuditConfig

pytestmark = [pytest.mark.bench, pytest.mark.timeout(4 * 3600)]

DELTA = 0.05
EPS_FRACTION = 0.5  # epsilon / Var(f)
SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
ROOT_SEED = 20261207

#: name -> (p, n_items, degree_weights, terms_per_degree, noise)
SPECTRA: dict[str, tuple[float, int, tuple[float, ...], tuple[int, ...], float]] = {
    "p0.5": (0.5, 8, (0.0, 0.8, 0.2), (0, 1, 1), 0.3),
    "p0.3-high": (0.3, 10, (0.0, 0.5, 0.0, 0.25, 0.25), (0, 2, 0, 1, 1), 0.3),
    "p0.5-high": (0.5, 12, (0.0, 0.3, 0.0, 0.0, 0.0, 0.7), (0, 2, 0, 0, 0, 2), 0.05),
    "heavy": (0.3, 10, (0.0, 0.6, 0.0, 0.0, 0.4), (0, 2, 0, 0, 1), 0.1),
}


def task_of(name: str) -> SyntheticTask:
    """The synthetic task of spectrum ``name``, its bound the provable one rounded up."""
    p, n_items, weights, terms, noise = SPECTRA[name]
    spectrum = (
        f"n_items = {n_items}\ndegree_weights = {list(weights)}\n"
        f"terms_per_degree = {list(terms)}\nnoise = {noise}\nstructure_seed = 3\n"
    )
    head = '[task]\nkind = "synthetic"\np = {p}\nbound = {b}\noutput_tolerance = 1e-12\n'
    head += "weight_tolerance = 0.0\nn_outputs = 1\n\n[task.spectrum]\n"
    probe = load_task_text(head.format(p=p, b=1e6) + spectrum)
    assert isinstance(probe, SyntheticTask)
    bound = math.ceil(probe.function.bound * 1000.0) / 1000.0
    task = load_task_text(head.format(p=p, b=bound) + spectrum)
    assert isinstance(task, SyntheticTask)
    return task


@dataclass(frozen=True)
class Outcome:
    statistic: str
    spectrum: str
    point: int
    accept: bool
    certified_ok: bool  # accepted => certified bound >= exact err (True when rejected)
    verifier_retrainings: int
    prover_evaluations: int
    radius: float


def run_seed(args: tuple[str, str, np.random.SeedSequence]) -> list[Outcome]:
    """Every sweep point of one (statistic, spectrum) for one seed (a shared pool)."""
    statistic, name, seed = args
    task = task_of(name)
    eps = epsilon(task, EPS_FRACTION)
    pool_seed, private_seed = seed.spawn(2)
    pool = Pool(task, np.random.default_rng(pool_seed))
    rng = np.random.default_rng(private_seed)
    cfg = AuditConfig(epsilon=eps, delta=DELTA, statistic=statistic)
    out = []
    for point, (theta0, theta, err) in enumerate(commitments_at(task, eps)):
        commitment = Commitment.unsigned(theta0, theta, source="planted")
        accept, plan, retrainings, evaluations, upper = audit_once_with_bound(
            task, cfg, commitment, pool, rng
        )
        out.append(
            Outcome(
                statistic, name, point, accept, (not accept) or upper >= err, retrainings,
                evaluations, math.nan if plan is None else plan.completeness_radius / eps,
            )
        )  # fmt: skip
    return out


def commitments_at(task: SyntheticTask, eps: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``(theta0, theta, exact err)`` at every point of :data:`SWEEP` (pm encoding, Z = 1).

    The top contributor's score grows by ``t / sigma`` and theta_0 moves by
    ``-mu t / sigma`` (E[g_a] unchanged, any p): ``err = t^2`` exactly.
    """
    fn = task.function
    theta0, theta = fn.optimal_attribution()
    mu, sigma = bias_moments(fn.p)
    top = int(np.argmax(np.abs(theta[0])))
    sign = 1.0 if theta[0, top] >= 0 else -1.0
    out = []
    for ratio in SWEEP:
        t = math.sqrt(ratio * eps)
        th, th0 = theta.copy(), theta0.copy()
        th[0, top] += sign * t / sigma
        th0[0] -= mu * sign * t / sigma
        err = float(fn.err(th0, th)[0])
        assert math.isclose(err, t * t, rel_tol=1e-9, abs_tol=1e-12), (err, t * t)
        out.append((th0, th, err))
    return out


def audit_once_with_bound(task, cfg, commitment, pool, rng):  # type: ignore[no-untyped-def]
    """:func:`audit_once`, plus the largest certified bound of the decision (``inf`` if none)."""
    import verifier._stages as stages

    seen: list[float] = []
    decide = stages.decide

    def spy(plan, data):  # type: ignore[no-untyped-def]
        d = decide(plan, data)
        seen.append(max(o.certified_upper for o in d.outputs))
        return d

    stages.decide = spy
    try:
        accept, plan, retrainings, evaluations = audit_once(task, cfg, commitment, pool, rng)
    finally:
        stages.decide = decide
    return accept, plan, retrainings, evaluations, seen[-1] if seen else math.inf


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def test_ustat_acceptance_sweep() -> None:
    seeds = int(os.environ.get("PACDA_USWEEP_SEEDS", "200"))
    workers = int(os.environ.get("PACDA_WORKERS", "2"))
    out = Path(os.environ.get("PACDA_USWEEP_OUT", "out/ustat_sweep"))
    out.mkdir(parents=True, exist_ok=True)
    spectra = os.environ.get("PACDA_USWEEP_SPECTRA", ",".join(SPECTRA)).split(",")
    statistics = os.environ.get("PACDA_USWEEP_STATISTICS", "u-statistic").split(",")
    children = np.random.SeedSequence(ROOT_SEED).spawn(seeds)
    jobs = [(s, name, child) for s in statistics for name in spectra for child in children]
    t0 = time.perf_counter()
    outcomes: list[Outcome] = []
    if workers == 1:
        for job in jobs:
            outcomes.extend(run_seed(job))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            for batch in ex.map(run_seed, jobs, chunksize=4):
                outcomes.extend(batch)
    rows = []
    failures = []
    for s in statistics:
        for name in spectra:
            for point, ratio in enumerate(SWEEP):
                mine = [
                    o for o in outcomes if (o.statistic, o.spectrum, o.point) == (s, name, point)
                ]
                k = sum(o.accept for o in mine)
                lo, hi = wilson(k, len(mine))
                radius = float(np.nanmean([o.radius for o in mine]))
                row = {
                    "statistic": s, "spectrum": name, "err_over_eps": ratio, "audits": len(mine),
                    "accepts": k, "rate": k / len(mine), "wilson_low": lo, "wilson_high": hi,
                    "radius_over_eps": radius,
                    "verifier_retrainings": float(np.mean([o.verifier_retrainings for o in mine])),
                    "prover_evaluations": float(np.mean([o.prover_evaluations for o in mine])),
                    "certified_below_err": sum(not o.certified_ok for o in mine),
                }  # fmt: skip
                rows.append(row)
                if row["certified_below_err"]:
                    failures.append(f"{s} {name} {ratio}: an accepted bound below the exact err")
                if ratio <= radius and hi < 1 - DELTA:
                    failures.append(f"{s} {name} {ratio}: honest rate {k}/{len(mine)} < 1 - delta")
                if ratio >= 1.0 and lo > DELTA:
                    failures.append(
                        f"{s} {name} {ratio}: rate {k}/{len(mine)} > delta at err >= eps"
                    )
    with (out / "ustat_sweep.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "ustat_sweep.json").write_text(
        json.dumps({"seeds": seeds, "delta": DELTA, "eps_fraction": EPS_FRACTION,
                    "spectra": {k: SPECTRA[k] for k in spectra}, "rows": rows}, indent=1) + "\n"
    )  # fmt: skip
    print(f"\n{len(outcomes):,d} audits in {time.perf_counter() - t0:.0f}s")
    print(f"{'statistic':<12} {'spectrum':<10} {'err/eps':>7} {'accept':>12} {'wilson 95%':>16} "
          f"{'V':>8} {'P':>9}")  # fmt: skip
    for r in rows:
        print(
            f"{r['statistic']:<12} {r['spectrum']:<10} {r['err_over_eps']:>7.2f} "
            f"{r['accepts']:>5}/{r['audits']:<6} [{r['wilson_low']:.3f}, {r['wilson_high']:.3f}] "
            f"{r['verifier_retrainings']:>8.0f} {r['prover_evaluations']:>9.0f}"
        )
    assert not failures, "\n".join(failures)
