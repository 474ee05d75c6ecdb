"""Benchmark: Ray executor vs in-process on 2,000 logreg models (issue 3, acceptance 3).

Run with ``.venv/bin/pytest -m bench -s tests/bench/test_bench_ray.py``.  Prints
wall times and the overhead ratio Ray / in-process (in-process timed with 2 and
with 1 torch thread; the ratio is taken against the faster), for a cold Ray run
(workers start and rebuild the task) and a warm one, and checks that every
executor gives the same outputs within the task's tolerance tau.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

import numpy as np
import pytest
import ray
import torch

from prover.executors import InProcessExecutor, RayExecutor, RunResult, run
from prover.tasks.base import Task
from prover.tasks.logreg import LogregTask
from prover.tasks.specs import LogregSpec

N_MODELS = 2000
CHUNK = 250
N_CPUS = 2


def _timed(fn: Callable[[], RunResult]) -> tuple[RunResult, float]:
    start = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - start


@pytest.mark.bench
def test_ray_overhead_on_2000_logreg_models() -> None:
    factory = functools.partial(LogregTask.from_spec, LogregSpec())
    task: Task = factory()
    rng = np.random.default_rng(np.random.SeedSequence(20240))
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(N_MODELS, task.n_items))
    seeds = rng.integers(0, 2**64, size=N_MODELS, dtype=np.uint64)

    def in_process(threads: int) -> float:
        torch.set_num_threads(threads)
        try:
            res, t = _timed(
                lambda: run(factory, x, seeds, executor=InProcessExecutor(), chunk_size=CHUNK)
            )
        finally:
            torch.set_num_threads(default_threads)
        results.append(res)
        return t

    default_threads = torch.get_num_threads()
    results: list[RunResult] = []
    load = os.getloadavg()[0]
    rows = [(f"in-process, {t} torch thread(s)", in_process(t)) for t in (N_CPUS, 1)]
    ray.init(num_cpus=N_CPUS, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor()
        for name in ("ray, cold (start + rebuild)", "ray, warm workers"):
            res, t = _timed(lambda: run(factory, x, seeds, executor=executor, chunk_size=CHUNK))
            results.append(res)
            rows.append((name, t))
    finally:
        ray.shutdown()

    tau = task.output_tolerance
    for res in results[1:]:
        np.testing.assert_allclose(res.outputs, results[0].outputs, rtol=0, atol=tau)
    agree = max(float(np.max(np.abs(r.outputs - results[0].outputs))) for r in results)
    same = all(np.array_equal(r.weight_digests, results[0].weight_digests) for r in results)
    base = min(rows[0][1], rows[1][1])  # the faster in-process setting: conservative for Ray
    print(
        f"\nRay vs in-process: {N_MODELS} logreg models (N={task.n_items}, Z={task.n_outputs}), "
        f"chunks of {CHUNK}, {N_CPUS} CPUs, load average before start {load:.2f}"
    )
    print(f"  {'executor':<34}{'wall s':>8}{'models/s':>10}{'ratio':>7}")
    for name, t in rows:
        print(f"  {name:<34}{t:>8.2f}{N_MODELS / t:>10.1f}{t / base:>7.2f}")
    print("  ratio = wall / the faster in-process wall (Ray overhead ratio)")
    print(f"  max |difference| between executors = {agree:.3g} (tau = {tau:g})")
    print(f"  identical weight digests across executors: {same}")
