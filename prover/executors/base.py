"""What every executor shares: task sources, the per-chunk training call, the ABC.

An executor trains chunks of (subset, seed) pairs and hands back each chunk's
results as it finishes.  It never touches the result store: the driver
(:func:`prover.executors.run.run`) writes every finished chunk, so on a
cluster only the driver needs the store's filesystem.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover import engine
from prover.store.keys import weight_digests
from prover.tasks.base import Task
from prover.tasks.device import Device, describe_device

__all__ = [
    "Chunk",
    "ChunkResult",
    "Executor",
    "TaskSource",
    "device_of",
    "resolve_task",
    "train_chunk",
]

TaskSource: TypeAlias = Task | Callable[[], Task]
"""A task, or a picklable zero-argument factory that builds it (e.g. from a spec).

Remote executors ship the source to every worker, which rebuilds the task and
checks its digest against the driver's, so a worker running other code or data
fails loudly instead of training a different function.
"""

Chunk: TypeAlias = tuple[NDArray[np.int8], NDArray[np.uint64]]
"""``(x int8 (m, N) pm-encoded, seeds uint64 (m,))``."""


@dataclass(frozen=True, kw_only=True)
class ChunkResult:
    """Results of one trained chunk of ``m`` models.

    Attributes:
        outputs: float64 ``(m, Z)``.
        weight_digests: uint8 ``(m, 32)``, SHA-256 of each model's float64 LE weights.
        weights: float64 ``(m, P)`` if requested and the task has weights, else None.
    """

    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]
    weights: NDArray[np.float64] | None


def resolve_task(source: TaskSource) -> Task:
    """The task itself, or the result of calling the factory.

    Raises:
        InvalidArgument: ``source`` is neither a Task nor a factory returning one.
    """
    if isinstance(source, Task):
        return source
    if callable(source):
        task = source()
        if isinstance(task, Task):
            return task
        raise InvalidArgument(f"task factory returned {type(task).__name__}, not a Task")
    raise InvalidArgument(f"expected a Task or a task factory, got {type(source).__name__}")


def check_digest(task: Task, expected: str) -> None:
    """Raise :class:`ProverError` unless ``task.digest == expected``."""
    if task.digest != expected:
        raise ProverError(
            f"task rebuilt on this worker has digest {task.digest}, the driver's is {expected}: "
            "workers must run the same pacda code and data"
        )


def train_chunk(
    task: Task,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    *,
    keep_weights: bool,
    device: str = "cpu",
) -> ChunkResult:
    """Train one chunk with the batched engine and digest its weights.

    This is the single place where executors call into training; the chunk is
    one vectorised batch (:func:`prover.engine.train`, which also enforces the
    task contract: shapes, finite outputs within ``[-b, b]``).

    Args:
        task: the task.
        x: pm-encoded subsets, int8 ``(m, N)``, ``m >= 1``.
        seeds: uint64 ``(m,)``.
        keep_weights: return the weights too (else only their digests).
        device: torch device for training (``"cpu"``, ``"cuda[:k]"``, ``"auto"``).

    Raises:
        ProverError: the task broke its contract.
    """
    batch = engine.train(task, x, seeds, chunk_size=max(len(x), 1), device=device)
    m = x.shape[0]
    outputs = np.asarray(batch.outputs, dtype=np.float64)
    if outputs.shape != (m, task.n_outputs):
        raise ProverError(
            f"task returned outputs of shape {outputs.shape}, expected ({m}, {task.n_outputs})"
        )
    weights = None if batch.weights is None else np.asarray(batch.weights, dtype=np.float64)
    return ChunkResult(
        outputs=outputs,
        weight_digests=weight_digests(weights, m),
        weights=weights if keep_weights else None,
    )


class Executor(abc.ABC):
    """Trains chunks somewhere (this process, a Ray cluster).

    Attributes:
        device: the torch device name chunks are trained on (``"cpu"``,
            ``"cuda"``, ``"cuda:K"`` or ``"auto"``); subclasses set it.
    """

    device: str = "cpu"

    @abc.abstractmethod
    def map_chunks(
        self,
        source: TaskSource,
        task: Task,
        chunks: Iterable[Chunk],
        *,
        keep_weights: bool,
    ) -> Iterator[tuple[int, ChunkResult]]:
        """Train every chunk; yield ``(chunk index, result)`` as each finishes.

        Results may arrive in any order; each index is yielded exactly once.

        Args:
            source: what remote workers rebuild the task from.
            task: the driver's instance of the same task (its digest is checked
                against every rebuilt copy).
            chunks: the work, consumed lazily.
            keep_weights: also return full weights.
        """

    def device_info(self) -> Device:
        """Class and description of :attr:`device`, as the Prover announces them."""
        return describe_device(self.device)

    def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release resources (default: nothing)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def device_of(executor: Executor | None) -> Device:
    """The device an executor trains on; ``None`` (training in this process) is the CPU."""
    return describe_device("cpu") if executor is None else executor.device_info()
