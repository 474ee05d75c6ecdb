"""The task interface: what a model output function f(x; r) is to the Prover.

A task fixes the dataset, model, training recipe and Z scalar outputs
(docs/design.md §1).  ``train_batch`` trains one model per row of ``x`` with the
matching 64-bit seed, evaluates the Z outputs and clips them to ``[-b, b]``.
Training a model alone must agree with the same model trained inside any batch
within ``output_tolerance`` (outputs) and ``weight_tolerance`` (weights).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec

__all__ = ["Task", "TrainedBatch"]


@dataclass(frozen=True)
class TrainedBatch:
    """Result of training a batch of n models.

    Attributes:
        outputs: float64 ``(n, Z)``, clipped to ``[-bound, bound]``.
        weights: float64 ``(n, P)`` flat trained parameters, or ``None`` for
            tasks with nothing trained (``synthetic``).
    """

    outputs: NDArray[np.float64]
    weights: NDArray[np.float64] | None

    def __post_init__(self) -> None:
        if self.outputs.ndim != 2:
            raise InvalidArgument(f"outputs must be (n, Z), got shape {self.outputs.shape}")
        if self.weights is not None and (
            self.weights.ndim != 2 or self.weights.shape[0] != self.outputs.shape[0]
        ):
            raise InvalidArgument(
                f"weights must be (n, P) with n={self.outputs.shape[0]}, got {self.weights.shape}"
            )


class Task(abc.ABC):
    """A model output function f(x; r) in R^Z, trained in batches.

    Tasks built from task files also set :attr:`spec_class` and implement
    :meth:`from_spec` (see ``docs/tasks.md``); tasks that can run on a torch
    device other than the CPU override :meth:`train_batch_on`.
    """

    #: Spec class of this kind (a :class:`~protocol.taskspec.TaskSpec` subclass),
    #: or ``None`` for a task that cannot be built from a task file.
    spec_class: ClassVar[type[TaskSpec] | None] = None

    #: Torch device types :meth:`train_batch_on` accepts (``"cuda"`` covers ``"cuda:k"``).
    device_types: ClassVar[tuple[str, ...]] = ("cpu",)

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        """Build the task a validated spec describes.

        Args:
            spec: an instance of :attr:`spec_class`.
            base_dir: directory relative paths in the spec are resolved against
                (the task file's directory); ``None`` means the working directory.
        """
        raise InvalidArgument(f"{cls.__name__} cannot be built from a task spec")

    def train_batch_on(
        self, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, device: str
    ) -> TrainedBatch:
        """:meth:`train_batch` on a torch device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

        The default supports only ``"cpu"``.
        """
        if device != "cpu":
            raise InvalidArgument(f"{type(self).__name__} runs only on the CPU, got {device!r}")
        return self.train_batch(x, seeds)

    @property
    @abc.abstractmethod
    def digest(self) -> str:
        """``sha256:<hex>`` over the canonical JSON of the resolved spec (docs/design.md §2.1)."""

    @property
    @abc.abstractmethod
    def n_items(self) -> int:
        """N, the number of training items (or components)."""

    @property
    @abc.abstractmethod
    def n_outputs(self) -> int:
        """Z, the number of scalar outputs."""

    @property
    @abc.abstractmethod
    def bound(self) -> float:
        """b: every output is clipped to ``[-b, b]``."""

    @property
    def p(self) -> float:
        """Inclusion probability of B_p, the distribution of subsets the task is audited under.

        0.5 unless the task says otherwise (spec-built tasks return their spec's ``p``).
        """
        return 0.5

    @property
    @abc.abstractmethod
    def output_tolerance(self) -> float:
        """tau: batch and single training agree on outputs within this."""

    @property
    @abc.abstractmethod
    def weight_tolerance(self) -> float:
        """Batch and single training agree on weights within this (max abs)."""

    @abc.abstractmethod
    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        """Train ``len(x)`` models.

        Args:
            x: pm-encoded subsets, int8 ``(n, N)``.
            seeds: uint64 ``(n,)`` training seeds, one per model.
        """
