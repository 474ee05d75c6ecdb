"""Shared plumbing of spec-built tasks (pure: no torch).

:class:`SpecTask` implements the bookkeeping part of :class:`~prover.tasks.base.Task`
from a validated spec and the dataset's content hash: ``digest``, ``bound``,
``p``, the tolerances (CPU and CUDA) and Z.  Subclasses supply ``n_items`` and the training.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec, task_digest
from prover.tasks.base import Task

__all__ = ["SpecTask", "check_batch_inputs"]

SpecT = TypeVar("SpecT", bound=TaskSpec)


def check_batch_inputs(
    x: NDArray[np.int8], seeds: NDArray[np.uint64], n_items: int
) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    """Validate a batch: x int8 ``(n, N)`` with entries in {-1, +1}, seeds uint64 ``(n,)``.

    Raises:
        InvalidArgument: a shape, dtype or value is wrong.
    """
    x = np.asarray(x)
    seeds = np.asarray(seeds)
    if x.ndim != 2 or x.shape[1] != n_items:
        raise InvalidArgument(f"x must have shape (n, {n_items}), got {x.shape}")
    if x.dtype != np.int8:
        raise InvalidArgument(f"x must be int8 in the pm encoding, got dtype {x.dtype}")
    if x.size and not np.all((x == 1) | (x == -1)):
        raise InvalidArgument("x must be pm-encoded: every entry -1 or +1")
    if seeds.shape != (x.shape[0],):
        raise InvalidArgument(f"seeds must have shape ({x.shape[0]},), got {seeds.shape}")
    if seeds.dtype != np.uint64:
        raise InvalidArgument(f"seeds must be uint64, got dtype {seeds.dtype}")
    return x, seeds


class SpecTask(Task, Generic[SpecT]):
    """A task whose identity is a spec plus a dataset content hash.

    Args:
        spec: the validated, resolved spec.
        dataset_digest: ``sha256:<hex>`` of the arrays the task trains and
            evaluates on (:func:`protocol.taskspec.array_digest`).
    """

    def __init__(self, spec: SpecT, dataset_digest: str) -> None:
        self._spec = spec
        self._dataset_digest = dataset_digest
        self._digest = task_digest(spec, dataset_digest)

    @property
    def spec(self) -> SpecT:
        """The resolved spec."""
        return self._spec

    @property
    def dataset_digest(self) -> str:
        """Content hash of the dataset arrays."""
        return self._dataset_digest

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def n_outputs(self) -> int:
        return self._spec.n_outputs

    @property
    def bound(self) -> float:
        return self._spec.bound

    @property
    def p(self) -> float:
        return float(self._spec.p)

    @property
    def output_tolerance(self) -> float:
        return self._spec.output_tolerance

    @property
    def weight_tolerance(self) -> float:
        return self._spec.weight_tolerance

    @property
    def cuda_output_tolerance(self) -> float:
        return self._spec.cuda_output_tolerance

    @property
    def cuda_weight_tolerance(self) -> float:
        return self._spec.cuda_weight_tolerance

    def __repr__(self) -> str:
        return f"{type(self).__name__}(digest={self._digest!r})"
