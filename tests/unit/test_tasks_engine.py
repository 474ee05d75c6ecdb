"""The batched engine: chunking, streaming, progress, devices and the task contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from protocol.hypercube import sample_bp
from protocol.taskspec import TaskSpec
from prover.engine import iter_train, resolve_engine_device, train
from prover.tasks import SpecTask, TrainedBatch, build_task
from prover.tasks.specs import LogregSpec, LogregTrain, SpectrumSection, SyntheticSpec

SYNTH = SyntheticSpec(
    bound=3.0,
    n_outputs=2,
    spectrum=SpectrumSection(
        n_items=10, degree_weights=(0.1, 0.5, 0.2), terms_per_degree=(1, 5, 3), noise=0.2
    ),
)


def draw(n: int, n_items: int, seed: int) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    rng = np.random.default_rng(seed)
    return sample_bp(rng, n, n_items, 0.5), rng.integers(0, 2**63, size=n, dtype=np.uint64)


def test_train_concatenates_chunks_in_order_and_reports_progress() -> None:
    task = build_task(SYNTH)
    x, seeds = draw(23, 10, 0)
    done: list[int] = []
    out = train(task, x, seeds, chunk_size=5, progress=done.append)
    assert done == [5, 5, 5, 5, 3]
    assert np.array_equal(out.outputs, task.train_batch(x, seeds).outputs)
    assert out.weights is None


def test_iter_train_streams_lazy_blocks_in_bounded_chunks() -> None:
    task = build_task(LogregSpec(train=LogregTrain(steps=5)))
    consumed: list[int] = []

    def blocks() -> Iterator[tuple[NDArray[np.int8], NDArray[np.uint64]]]:
        for b in range(3):
            consumed.append(b)
            yield draw(7, task.n_items, b)

    stream = iter_train(task, blocks(), chunk_size=4)
    first = next(stream)
    assert consumed == [0]  # later blocks are not drawn before they are needed
    sizes = [len(first.outputs)] + [len(c.outputs) for c in stream]
    assert sizes == [4, 3, 4, 3, 4, 3]
    assert first.weights is not None and first.weights.shape == (4, 31)


def test_train_of_zero_models() -> None:
    task = build_task(SYNTH)
    out = train(task, np.zeros((0, 10), np.int8), np.zeros(0, np.uint64))
    assert out.outputs.shape == (0, 2)


@pytest.mark.parametrize(
    ("x", "seeds", "message"),
    [
        (np.ones((2, 9), np.int8), np.zeros(2, np.uint64), r"x must have shape \(n, 10\)"),
        (np.ones((2, 10), np.int64), np.zeros(2, np.uint64), "x must be int8 in the pm encoding"),
        (np.zeros((2, 10), np.int8), np.zeros(2, np.uint64), "x must be pm-encoded"),
        (np.ones((2, 10), np.int8), np.zeros(3, np.uint64), r"seeds must have shape \(2,\)"),
        (np.ones((2, 10), np.int8), np.zeros(2, np.int64), "seeds must be uint64"),
    ],
)
def test_bad_inputs_are_refused(
    x: NDArray[np.int8], seeds: NDArray[np.uint64], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        train(build_task(SYNTH), x, seeds)


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True])
def test_bad_chunk_size_is_refused(chunk_size: object) -> None:
    x, seeds = draw(2, 10, 1)
    with pytest.raises(InvalidArgument, match="chunk_size must be a positive integer"):
        train(build_task(SYNTH), x, seeds, chunk_size=chunk_size)  # type: ignore[arg-type]


def test_devices() -> None:
    x, seeds = draw(2, 10, 2)
    assert resolve_engine_device("cpu") == "cpu"
    assert resolve_engine_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_engine_device("auto", build_task(SYNTH)) == "cpu"  # a numpy-only task
    train(build_task(SYNTH), x, seeds, device="auto")
    with pytest.raises(InvalidArgument, match="runs only on the CPU, got 'cuda'"):
        train(build_task(SYNTH), x, seeds, device="cuda")  # numpy task: CPU only
    logreg = build_task(LogregSpec(train=LogregTrain(steps=3)))
    xl, sl = draw(2, logreg.n_items, 3)
    with pytest.raises(InvalidArgument, match="unknown device 'tpu"):
        train(logreg, xl, sl, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgument, match="CUDA is not available"):
            train(logreg, xl, sl, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["logreg", "mlp", "ablation"])
def test_cuda_agrees_with_cpu(kind: str) -> None:  # pragma: no cover - GPU only
    from tests.unit.test_tasks_agreement import draw as draw_task
    from tests.unit.test_tasks_agreement import small_task

    task = small_task(kind)
    x, seeds = draw_task(task, 8, 4)
    cpu = train(task, x, seeds, device="cpu")
    gpu = train(task, x, seeds, device="cuda")
    np.testing.assert_allclose(gpu.outputs, cpu.outputs, rtol=0, atol=1e-6)


class BrokenTask(SpecTask[SyntheticSpec]):
    """A plugin that breaks the contract: outputs outside the bound, then NaN."""

    spec_class: ClassVar[type[TaskSpec] | None] = SyntheticSpec

    def __init__(self, value: float) -> None:
        super().__init__(SYNTH, "sha256:" + "0" * 64)
        self.value = value

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        return cls(0.0)

    @property
    def n_items(self) -> int:
        return 10

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        return TrainedBatch(outputs=np.full((len(x), 2), self.value), weights=None)


@pytest.mark.parametrize("value", [3.5, float("nan")])
def test_contract_violations_are_prover_errors(value: float) -> None:
    x, seeds = draw(3, 10, 5)
    with pytest.raises(
        ProverError, match=r"model 0 of a chunk has outputs .* outside \[-3.0, 3.0\]"
    ):
        train(BrokenTask(value), x, seeds)
