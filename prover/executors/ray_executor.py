"""Ray executor: train chunks on a Ray cluster (or a local Ray instance).

The driver puts the task *source* (a picklable Task or factory) into Ray's
object store once; each worker process rebuilds the task the first time it
sees a digest, checks the digest against the driver's, keeps it for later
chunks, and returns only outputs and weight digests (plus weights when asked).
The driver writes the store, so workers need neither the store's filesystem
nor write access: this works unchanged on a multi-machine cluster, provided
every node has the same pacda (and the task's data) installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import ray
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from prover.executors.base import (
    Chunk,
    ChunkResult,
    Executor,
    TaskSource,
    check_digest,
    resolve_task,
    train_chunk,
)
from prover.tasks.base import Task

__all__ = ["RayExecutor"]

# Per worker process: the task last built, keyed by digest (one at a time bounds memory).
_WORKER_TASK: dict[str, Task] = {}


def _train_on_worker(
    box: list[Any],
    digest: str,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    keep_weights: bool,
    device: str,
) -> ChunkResult:
    """Remote body: rebuild (once per worker and digest) and train one chunk.

    ``box`` holds the ObjectRef of the task source inside a list so Ray does
    not fetch and unpickle it for every chunk, only on a cache miss.
    """
    task = _WORKER_TASK.get(digest)
    if task is None:
        task = resolve_task(ray.get(box[0]))
        check_digest(task, digest)
        _WORKER_TASK.clear()
        _WORKER_TASK[digest] = task
    x, seeds = _writable(x), _writable(seeds)
    return train_chunk(task, x, seeds, keep_weights=keep_weights, device=device)


def _writable(array: NDArray[Any]) -> NDArray[Any]:
    """``array``, or a writable copy of it when it is read-only.

    Ray hands large array arguments to a worker as read-only views of its
    shared-memory object store; a task that turns them into tensors
    (``torch.as_tensor``, ``torch.from_numpy``) would share that memory and
    torch warns ("The given NumPy array is not writable").  A chunk's subsets
    and seeds are small next to its training, so the worker copies them once
    here instead of every task copying its own.
    """
    return array if array.flags.writeable else array.copy()


_remote_train: Any = None


def _remote() -> Any:
    global _remote_train
    if _remote_train is None:
        _remote_train = ray.remote(_train_on_worker)
    return _remote_train


class RayExecutor(Executor):
    """Trains chunks as Ray tasks, at most ``max_in_flight`` at once.

    Args:
        address: Ray cluster address: ``"auto"`` (a running cluster), an
            address such as ``"ray://host:10001"``, or ``None`` (Ray's default:
            ``RAY_ADDRESS`` if set, else start a local instance).  Ignored when
            Ray is already initialised in this process.
        num_cpus_per_chunk: CPUs Ray reserves per chunk task.
        num_gpus_per_chunk: GPUs Ray reserves per chunk task (use with
            ``device="cuda"``).
        device: torch device the workers train on.
        max_in_flight: chunks submitted but not yet collected; default twice the
            cluster's CPUs (bounds driver memory; keeps workers busy).
        init_kwargs: extra arguments for ``ray.init``.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus_per_chunk: float = 1.0,
        num_gpus_per_chunk: float = 0.0,
        device: str = "cpu",
        max_in_flight: int | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not num_cpus_per_chunk > 0:
            raise InvalidArgument(f"num_cpus_per_chunk must be > 0, got {num_cpus_per_chunk}")
        if num_gpus_per_chunk < 0:
            raise InvalidArgument(f"num_gpus_per_chunk must be >= 0, got {num_gpus_per_chunk}")
        if max_in_flight is not None and max_in_flight < 1:
            raise InvalidArgument(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._owns_ray = False
        if not ray.is_initialized():
            ray.init(address=address, **dict(init_kwargs or {}))
            self._owns_ray = True
        self.num_cpus_per_chunk = num_cpus_per_chunk
        self.num_gpus_per_chunk = num_gpus_per_chunk
        self.device = device
        if max_in_flight is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
            max_in_flight = max(2, 2 * int(cpus / num_cpus_per_chunk))
        self.max_in_flight = max_in_flight

    def map_chunks(
        self,
        source: TaskSource,
        task: Task,
        chunks: Iterable[Chunk],
        *,
        keep_weights: bool,
    ) -> Iterator[tuple[int, ChunkResult]]:
        """See :meth:`Executor.map_chunks`; results arrive in completion order."""
        remote = _remote().options(
            num_cpus=self.num_cpus_per_chunk, num_gpus=self.num_gpus_per_chunk
        )
        box = [ray.put(source)]
        digest = task.digest
        work = enumerate(chunks)
        pending: dict[Any, int] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    item = next(work, None)
                    if item is None:
                        exhausted = True
                        break
                    i, (x, seeds) = item
                    pending[remote.remote(box, digest, x, seeds, keep_weights, self.device)] = i
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    yield pending.pop(ref), ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
