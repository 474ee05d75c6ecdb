"""The default executor: train chunk after chunk in this process."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prover.executors.base import Chunk, ChunkResult, Executor, TaskSource, train_chunk
from prover.tasks.base import Task
from prover.tasks.device import parse_device

__all__ = ["InProcessExecutor"]


class InProcessExecutor(Executor):
    """Trains each chunk in the calling process, in order.

    Args:
        device: torch device for training (``"cpu"``, ``"cuda[:k]"``, ``"auto"``;
            :mod:`prover.tasks.device`).  The spelling is checked here; whether
            the device exists, when the first chunk is trained.

    Raises:
        InvalidArgument: a misspelt device.
    """

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = parse_device(device)

    def map_chunks(
        self,
        source: TaskSource,
        task: Task,
        chunks: Iterable[Chunk],
        *,
        keep_weights: bool,
    ) -> Iterator[tuple[int, ChunkResult]]:
        """See :meth:`Executor.map_chunks`; ``source`` is unused (``task`` is local)."""
        for i, (x, seeds) in enumerate(chunks):
            yield i, train_chunk(task, x, seeds, keep_weights=keep_weights, device=self.device)
