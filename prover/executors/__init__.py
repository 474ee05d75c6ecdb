"""Where models get trained: in this process (default) or on a Ray cluster.

:func:`run` is the entry point: it consults a :class:`~prover.store.ResultStore`,
trains only missing runs in chunks on an :class:`Executor`, commits each finished
chunk, and returns results in input order.  ``RayExecutor`` is imported lazily
so Ray stays an optional dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prover.executors.base import ChunkResult, Executor, TaskSource, resolve_task, train_chunk
from prover.executors.inprocess import InProcessExecutor
from prover.executors.run import RunResult, run

if TYPE_CHECKING:
    from prover.executors.ray_executor import RayExecutor

__all__ = [
    "ChunkResult",
    "Executor",
    "InProcessExecutor",
    "RayExecutor",
    "RunResult",
    "TaskSource",
    "resolve_task",
    "run",
    "train_chunk",
]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from prover.executors.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
