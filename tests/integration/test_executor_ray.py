"""Ray executor on a local Ray instance: same results as in-process, store and digest checks.

One Ray instance (2 CPUs, no dashboard) is shared by the module.  The test
tasks live in this module, which workers cannot import, so it is registered
with cloudpickle to travel by value -- what a user does for a task that is not
installed on the cluster (installed tasks travel by reference).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from numpy.typing import NDArray

from protocol.canonical_json import sha256_digest
from protocol.errors import InvalidArgument, ProverError
from prover.executors import InProcessExecutor, RayExecutor, run
from prover.store import ResultStore
from prover.tasks.base import Task, TrainedBatch

N_ITEMS = 30


class TinyLogreg(Task):
    """Logistic regression by full-batch gradient descent (float64), seeded init."""

    def __init__(self, *, n_items: int = N_ITEMS, dim: int = 4, n_outputs: int = 3) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(7))
        self.X = torch.tensor(rng.standard_normal((n_items, dim)))
        self.y = torch.tensor(np.sign(rng.standard_normal(n_items)) + 0.0)
        self.T = torch.tensor(rng.standard_normal((n_outputs, dim)))
        self._n, self._z = n_items, n_outputs

    @property
    def digest(self) -> str:
        return sha256_digest({"kind": "test-logreg", "n": self._n, "z": self._z})

    n_items = property(lambda self: self._n)
    n_outputs = property(lambda self: self._z)
    bound = property(lambda self: 10.0)
    output_tolerance = property(lambda self: 1e-10)
    weight_tolerance = property(lambda self: 1e-10)

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        m = torch.tensor((x > 0).astype(np.float64))
        w = torch.tensor(
            np.stack([np.random.default_rng(int(s)).normal(0, 0.1, self.X.shape[1]) for s in seeds])
        ).reshape(len(x), self.X.shape[1])
        count = m.sum(1, keepdim=True).clamp(min=1.0)
        for _ in range(30):
            margin = (w @ self.X.T) * self.y
            g = -((m * self.y * torch.sigmoid(-margin)) @ self.X) / count + 0.01 * w
            w = w - 0.5 * g
        out = (w @ self.T.T).clamp(-self.bound, self.bound)
        return TrainedBatch(outputs=out.numpy(), weights=w.numpy())


class PidLogreg(TinyLogreg):
    """A task whose digest differs in every process: a worker rebuilding it must refuse."""

    @property
    def digest(self) -> str:
        return sha256_digest({"kind": "test-pid", "pid": os.getpid()})


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield RayExecutor()
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _inputs(n: int, seed: int = 3) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, N_ITEMS))
    return x, rng.integers(0, 2**64, size=n, dtype=np.uint64)


def test_ray_matches_in_process(ray_executor: RayExecutor) -> None:
    x, seeds = _inputs(400)
    task = TinyLogreg()
    local = run(task, x, seeds, chunk_size=400, progress=False, with_weights=True)
    remote = run(
        task, x, seeds, executor=ray_executor, chunk_size=23, progress=False, with_weights=True
    )
    assert remote.weights is not None and local.weights is not None
    np.testing.assert_allclose(remote.outputs, local.outputs, rtol=0, atol=task.output_tolerance)
    np.testing.assert_allclose(remote.weights, local.weights, rtol=0, atol=task.weight_tolerance)
    assert remote.n_trained == 400


def test_ray_with_factory_and_store_resumes(ray_executor: RayExecutor, tmp_path: Path) -> None:
    x, seeds = _inputs(300, seed=4)
    factory = functools.partial(TinyLogreg, n_items=N_ITEMS)
    task = factory()
    with ResultStore.open_for_task(tmp_path / "s", task) as store:
        part = run(factory, x[:120], seeds[:120], store=store, executor=InProcessExecutor())
        full = run(factory, x, seeds, store=store, executor=ray_executor, chunk_size=32)
        assert (full.n_from_store, full.n_trained, len(store)) == (120, 180, 300)
    np.testing.assert_array_equal(full.outputs[:120], part.outputs)
    ref = task.train_batch(x, seeds)
    np.testing.assert_allclose(full.outputs, ref.outputs, rtol=0, atol=task.output_tolerance)
    with ResultStore.open_for_task(tmp_path / "s", task, mode="r") as reader:
        np.testing.assert_array_equal(reader.lookup(x, seeds).outputs, full.outputs)


def test_worker_with_a_different_task_refuses(ray_executor: RayExecutor) -> None:
    x, seeds = _inputs(10)
    with pytest.raises(ProverError, match="task rebuilt on this worker has digest sha256:"):
        run(PidLogreg, x, seeds, executor=ray_executor, chunk_size=5)


def test_bad_executor_settings() -> None:
    with pytest.raises(InvalidArgument, match="num_cpus_per_chunk must be > 0, got 0"):
        RayExecutor(num_cpus_per_chunk=0)
    with pytest.raises(InvalidArgument, match="num_gpus_per_chunk must be >= 0, got -1"):
        RayExecutor(num_gpus_per_chunk=-1)
    with pytest.raises(InvalidArgument, match="max_in_flight must be >= 1, got 0"):
        RayExecutor(max_in_flight=0)
