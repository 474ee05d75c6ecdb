"""The batched training engine: many models, bounded memory.

:func:`iter_train` cuts the (subset, seed) pairs into chunks of at most
``chunk_size`` models and trains each chunk as one vectorised computation
(:meth:`Task.train_batch_on`), yielding results chunk by chunk, so peak memory
is set by ``chunk_size`` and not by the number of models; feed it a lazy
iterable of blocks to keep the inputs bounded too.  :func:`train` collects
everything into one :class:`TrainedBatch`.

Chunking never changes a result beyond the task's tolerances: every built-in
task computes each model independently of its batch-mates (see each task's
docstring and ``tests/unit/test_tasks_agreement.py``).

Devices: ``"cpu"`` (default), ``"cuda"`` / ``"cuda:k"`` (an error if CUDA is
absent or the task is CPU-only), or ``"auto"`` (CUDA when available and the
task lists it in ``Task.device_types``, else CPU); see
:mod:`prover.tasks.device`.  Results on a GPU agree with the CPU only within
the task's CUDA tolerances (``Task.tolerances_on("cuda")``), which can exceed
the CPU-declared tau.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover.tasks.base import Task, TrainedBatch
from prover.tasks.common import check_batch_inputs
from prover.tasks.device import resolve_device

__all__ = ["DEFAULT_CHUNK_SIZE", "iter_train", "resolve_engine_device", "train"]

#: Models per chunk: large enough to amortise per-step overhead, small enough
#: that a logreg chunk's (chunk, N) float64 work arrays stay in cache.
DEFAULT_CHUNK_SIZE = 512

Progress = Callable[[int], object]
"""Called with the number of models finished after each chunk (e.g. ``tqdm.update``)."""


def resolve_engine_device(device: str, task: Task | None = None) -> str:
    """Resolve ``"auto"``: ``"cuda"`` if torch sees a GPU and ``task`` supports it, else CPU.

    Other names pass through unchanged (the task validates them).
    """
    if device != "auto":
        return device
    return resolve_device("auto", task=task).name


def _check_result(task: Task, batch: TrainedBatch, m: int) -> TrainedBatch:
    """Enforce the task contract on one chunk's results."""
    outputs = np.asarray(batch.outputs, dtype=np.float64)
    if outputs.shape != (m, task.n_outputs):
        raise ProverError(
            f"task returned outputs of shape {outputs.shape}, expected ({m}, {task.n_outputs})"
        )
    bad = ~np.isfinite(outputs) | (np.abs(outputs) > task.bound)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ProverError(
            f"model {row} of a chunk has outputs {outputs[row]} outside [-{task.bound}, "
            f"{task.bound}] or non-finite (training diverged?)"
        )
    weights = batch.weights
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if not np.isfinite(weights).all():
            raise ProverError("task returned non-finite weights (training diverged?)")
    return TrainedBatch(outputs=outputs, weights=weights)


def iter_train(
    task: Task,
    blocks: Iterable[tuple[NDArray[np.int8], NDArray[np.uint64]]],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str = "cpu",
    progress: Progress | None = None,
) -> Iterator[TrainedBatch]:
    """Train every (subset, seed) pair, yielding results chunk by chunk, in order.

    Args:
        task: the task.
        blocks: ``(x int8 (m, N) pm-encoded, seeds uint64 (m,))`` blocks; consumed
            lazily, each cut into chunks of at most ``chunk_size`` models.
        chunk_size: models trained together in one vectorised computation.
        device: ``"cpu"``, ``"cuda[:k]"`` or ``"auto"``.
        progress: called with the number of models of each finished chunk.

    Yields:
        One :class:`TrainedBatch` per chunk: outputs float64 ``(m, Z)`` within
        ``[-b, b]``, weights float64 ``(m, P)`` or ``None``.

    Raises:
        InvalidArgument: bad inputs, chunk size or device.
        ProverError: the task broke its contract (shape, range, NaN).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgument(f"chunk_size must be a positive integer, got {chunk_size!r}")
    dev = resolve_engine_device(device, task)
    for x, seeds in blocks:
        x, seeds = check_batch_inputs(x, seeds, task.n_items)
        for start in range(0, len(x), chunk_size):
            stop = min(start + chunk_size, len(x))
            batch = task.train_batch_on(x[start:stop], seeds[start:stop], device=dev)
            yield _check_result(task, batch, stop - start)
            if progress is not None:
                progress(stop - start)


def train(
    task: Task,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TrainedBatch:
    """Train ``len(x)`` models in chunks and return all results, in input order.

    Args:
        task: the task.
        x: int8 ``(n, N)`` pm-encoded subsets.
        seeds: uint64 ``(n,)`` training seeds.
        chunk_size: models per vectorised chunk (bounds the training memory).
        device: ``"cpu"``, ``"cuda[:k]"`` or ``"auto"``.
        progress: called with the number of models of each finished chunk.

    Returns:
        outputs float64 ``(n, Z)``; weights float64 ``(n, P)``, or ``None`` when
        the task has no weights (or ``n == 0``).
    """
    x, seeds = check_batch_inputs(x, seeds, task.n_items)
    blocks = [(x, seeds)]
    chunks = list(iter_train(task, blocks, chunk_size=chunk_size, device=device, progress=progress))
    if not chunks:
        return TrainedBatch(outputs=np.zeros((0, task.n_outputs)), weights=None)
    outputs = np.concatenate([c.outputs for c in chunks])
    has_weights = {c.weights is not None for c in chunks}
    if len(has_weights) > 1:
        raise ProverError("task returned weights for some chunks and None for others")
    weights = None
    if has_weights == {True}:
        weights = np.concatenate([c.weights for c in chunks if c.weights is not None])
    return TrainedBatch(outputs=outputs, weights=weights)
