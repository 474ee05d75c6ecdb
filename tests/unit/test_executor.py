"""In-process executor and the run driver: store consultation, chunking, order, weights."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from protocol.canonical_json import sha256_digest
from protocol.errors import InvalidArgument, ProverError
from protocol.synthetic import PlantedSpectrum, SyntheticFunction
from prover.executors import InProcessExecutor, RunResult, run
from prover.progress import Progress, progress_enabled
from prover.store import ResultStore, weight_digests
from prover.tasks.base import Task, TrainedBatch

N_ITEMS = 12


class PlantedTask(Task):
    """A real task: the planted-spectrum function, counting what it is asked to train."""

    def __init__(self, spec: PlantedSpectrum) -> None:
        self.fn = SyntheticFunction.from_spec(spec)
        self._digest = sha256_digest(
            {"kind": "test-planted", "n": spec.n_items, "seed": spec.structure_seed}
        )
        self.trained = 0
        self.calls: list[int] = []

    digest = property(lambda self: self._digest)
    n_items = property(lambda self: self.fn.n_items)
    n_outputs = property(lambda self: self.fn.n_outputs)
    bound = property(lambda self: self.fn.bound)
    output_tolerance = property(lambda self: 0.0)
    weight_tolerance = property(lambda self: 0.0)

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        self.trained += len(x)
        self.calls.append(len(x))
        return TrainedBatch(outputs=self.fn.evaluate(x, seeds), weights=None)


class TinyLogreg(Task):
    """Logistic regression by full-batch gradient descent (float64), seeded init."""

    def __init__(self, *, n_items: int = N_ITEMS, dim: int = 3, n_outputs: int = 2) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(7))
        self.X = torch.tensor(rng.standard_normal((n_items, dim)))
        self.y = torch.tensor(np.sign(rng.standard_normal(n_items)) + 0.0)
        self.T = torch.tensor(rng.standard_normal((n_outputs, dim)))
        self._n, self._z = n_items, n_outputs
        self.trained = 0

    digest = property(lambda self: sha256_digest({"kind": "test-logreg", "n": self._n}))
    n_items = property(lambda self: self._n)
    n_outputs = property(lambda self: self._z)
    bound = property(lambda self: 10.0)
    output_tolerance = property(lambda self: 1e-10)
    weight_tolerance = property(lambda self: 1e-10)

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        self.trained += len(x)
        m = torch.tensor((x > 0).astype(np.float64))
        w = torch.tensor(
            np.stack([np.random.default_rng(int(s)).normal(0, 0.1, self.X.shape[1]) for s in seeds])
        ).reshape(len(x), self.X.shape[1])
        count = m.sum(1, keepdim=True).clamp(min=1.0)
        for _ in range(20):
            margin = (w @ self.X.T) * self.y
            g = -((m * self.y * torch.sigmoid(-margin)) @ self.X) / count + 0.01 * w
            w = w - 0.5 * g
        out = (w @ self.T.T).clamp(-self.bound, self.bound)
        return TrainedBatch(outputs=out.numpy(), weights=w.numpy())


def _planted(seed: int = 0) -> PlantedTask:
    return PlantedTask(
        PlantedSpectrum(
            n_items=N_ITEMS,
            p=0.5,
            degree_weights=(0.1, 1.0, 0.5),
            terms_per_degree=(1, 4, 3),
            noise=0.3,
            n_outputs=3,
            structure_seed=seed,
        )
    )


def _inputs(n: int, seed: int = 1) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, N_ITEMS))
    seeds = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    return x, seeds


def _open(path: Path, task: Task, **kw: object) -> ResultStore:
    return ResultStore.open_for_task(path, task, **kw)


def test_run_matches_direct_evaluation_in_input_order() -> None:
    task = _planted()
    x, seeds = _inputs(50)
    res = run(task, x, seeds, chunk_size=8, progress=False)
    np.testing.assert_array_equal(res.outputs, task.fn.evaluate(x, seeds))
    assert (res.n_trained, res.n_from_store) == (50, 0)
    assert task.calls == [8] * 6 + [2]
    np.testing.assert_array_equal(res.weight_digests, weight_digests(None, 50))


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_same_results_across_chunk_sizes(chunk_size: int) -> None:
    x, seeds = _inputs(120)
    ref = TinyLogreg().train_batch(x, seeds)
    res = run(TinyLogreg(), x, seeds, chunk_size=chunk_size, progress=False, with_weights=True)
    np.testing.assert_allclose(res.outputs, ref.outputs, rtol=0, atol=1e-10)
    assert res.weights is not None
    np.testing.assert_allclose(res.weights, ref.weights, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(res.weight_digests, weight_digests(res.weights, 120))


def test_repeated_runs_in_one_request_are_trained_once() -> None:
    task = _planted()
    x, seeds = _inputs(10)
    xx = np.concatenate([x, x[::-1], x[:3]])
    ss = np.concatenate([seeds, seeds[::-1], seeds[:3]])
    res = run(task, xx, ss, chunk_size=4, progress=False)
    assert task.trained == 10 and res.n_trained == 10
    np.testing.assert_array_equal(res.outputs, task.fn.evaluate(xx, ss))


def test_store_is_consulted_and_only_missing_runs_are_trained(tmp_path: Path) -> None:
    task = _planted()
    x, seeds = _inputs(60)
    with _open(tmp_path / "s", task) as store:
        first = run(task, x[:40], seeds[:40], store=store, chunk_size=16, progress=False)
        assert (first.n_trained, len(store)) == (40, 40)
        task.trained = 0
        both = run(task, x, seeds, store=store, chunk_size=16, progress=False)
    assert (task.trained, both.n_trained, both.n_from_store) == (20, 20, 40)
    np.testing.assert_array_equal(both.outputs, task.fn.evaluate(x, seeds))
    # A fresh process sees everything: nothing is trained again.
    task2 = _planted()
    with _open(tmp_path / "s", task2) as store:
        again = run(task2, x, seeds, store=store, chunk_size=16, progress=False)
    assert (task2.trained, again.n_from_store, again.n_trained) == (0, 60, 0)
    np.testing.assert_array_equal(again.outputs, both.outputs)


def test_weights_come_back_from_a_store_that_keeps_them(tmp_path: Path) -> None:
    x, seeds = _inputs(30)
    ref = TinyLogreg().train_batch(x, seeds)
    task = TinyLogreg()
    with _open(tmp_path / "s", task, store_weights=True) as store:
        run(task, x[:20], seeds[:20], store=store, chunk_size=8, progress=False)
        res = run(task, x, seeds, store=store, chunk_size=8, progress=False, with_weights=True)
    assert (res.n_from_store, res.n_trained) == (20, 10)
    assert res.weights is not None
    np.testing.assert_allclose(res.weights, ref.weights, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(res.weight_digests, weight_digests(res.weights, 30))
    batch = res.to_batch()
    assert batch.outputs.shape == (30, 2)


def test_weights_from_a_digest_only_store_are_refused(tmp_path: Path) -> None:
    task = TinyLogreg()
    x, seeds = _inputs(5)
    with _open(tmp_path / "s", task) as store:
        run(task, x, seeds, store=store, progress=False)
        with pytest.raises(ProverError, match="keeps only weight digests"):
            run(task, x, seeds, store=store, progress=False, with_weights=True)


def test_store_of_another_task_is_refused(tmp_path: Path) -> None:
    x, seeds = _inputs(5)
    with _open(tmp_path / "s", _planted(seed=0)) as store:
        other = _planted(seed=1)
        with pytest.raises(InvalidArgument, match="holds task sha256:"):
            run(other, x, seeds, store=store, progress=False)
    assert other.trained == 0


def test_factory_source_and_bad_sources() -> None:
    x, seeds = _inputs(9)
    res: RunResult = run(_planted, x, seeds, progress=False, executor=InProcessExecutor())
    np.testing.assert_array_equal(res.outputs, _planted().fn.evaluate(x, seeds))
    with pytest.raises(InvalidArgument, match="task factory returned int, not a Task"):
        run(lambda: 3, x, seeds)  # type: ignore[arg-type, return-value]
    with pytest.raises(InvalidArgument, match="expected a Task or a task factory, got str"):
        run("logreg", x, seeds)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_chunk_size(bad: object) -> None:
    x, seeds = _inputs(3)
    with pytest.raises(InvalidArgument, match="chunk_size must be an integer >= 1"):
        run(_planted(), x, seeds, chunk_size=bad)  # type: ignore[arg-type]


def test_bad_inputs_are_refused() -> None:
    task = _planted()
    x, seeds = _inputs(3)
    with pytest.raises(InvalidArgument, match=r"x must have shape \(n, 12\)"):
        run(task, x[:, :5], seeds)
    with pytest.raises(InvalidArgument, match="pm-encoded"):
        run(task, (x > 0).astype(np.int8), seeds)
    with pytest.raises(InvalidArgument, match=r"seeds must have shape \(3,\)"):
        run(task, x, seeds[:2])
    with pytest.raises(InvalidArgument, match="non-negative"):
        run(task, x, np.array([1, -1, 2]))


def test_progress_is_quiet_off_a_terminal_and_can_be_forced() -> None:
    quiet = io.StringIO()
    assert not progress_enabled(None, quiet)
    with Progress(total=10, enabled=None, stream=quiet) as bar:
        bar.update(10)
    assert quiet.getvalue() == "" and not bar.enabled

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_enabled(None, Tty())
    assert not progress_enabled(False, Tty())
    loud = io.StringIO()
    with Progress(total=10, initial=4, enabled=True, stream=loud) as bar:
        bar.update(6)
    text = loud.getvalue()
    assert "10/10" in text and "model/s" in text and "4 from store" in text
    assert bar.done == 10


def test_run_without_terminal_writes_nothing_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    x, seeds = _inputs(20)
    run(_planted(), x, seeds, chunk_size=5)
    assert capsys.readouterr().err == ""


class Diverging(PlantedTask):
    """Breaks the task contract on its second chunk: an output beyond the bound."""

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        batch = super().train_batch(x, seeds)
        if len(self.calls) == 2:
            batch.outputs[0, 0] = 2 * self.bound
        return batch


def test_a_broken_chunk_stops_the_run_and_is_not_stored(tmp_path: Path) -> None:
    task = Diverging(_planted().fn.spec)
    x, seeds = _inputs(30)
    with _open(tmp_path / "s", task) as store:
        with pytest.raises(ProverError, match="outside"):
            run(task, x, seeds, store=store, chunk_size=10, progress=False)
        assert len(store) == 10
        assert store.lookup(x, seeds).found.tolist() == [True] * 10 + [False] * 20
