"""The task interface: what a model output function f(x; r) is to the Prover.

A task fixes the dataset, model, training recipe and Z scalar outputs
(docs/design.md §1).  ``train_batch`` trains one model per row of ``x`` with the
matching 64-bit seed, evaluates the Z outputs and clips them to ``[-b, b]``.
Training a model alone must agree with the same model trained inside any batch
within ``output_tolerance`` (outputs) and ``weight_tolerance`` (weights).
Those are the CPU's; a run on a GPU agrees with a run elsewhere only within
``cuda_output_tolerance`` / ``cuda_weight_tolerance`` (:meth:`Task.tolerances_on`).

Tasks with a differentiable model may also expose it through
:meth:`Task.differentiable` (a :class:`DifferentiableModel`): its training
objective and measured outputs as torch functions of the flat weights, which
gradient-based attribution methods (influence functions) use instead of
re-implementing the task's model.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec
from prover.tasks.tolerances import DEVICE_CLASSES, Tolerances

if TYPE_CHECKING:  # the interface stays importable without torch
    import torch

    from prover.tasks.torch_parts import TorchParts

__all__ = ["DifferentiableModel", "Task", "TrainedBatch"]


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


@dataclass(frozen=True, kw_only=True)
class DifferentiableModel:
    """A task's model, training objective and outputs as torch functions of its flat weights.

    ``w`` is a float64 torch tensor ``(P,)`` laid out as the task's
    :attr:`TrainedBatch.weights` rows.  The functions close over the task's
    training and test data and must be differentiable twice (reverse over
    reverse) by ``torch.autograd`` and ``torch.func.jacrev``.  The objective a
    model trained on the subset S minimises is

        L_S(w) = (1/|S|) sum_{j in S} item_losses(w)[j] + regularizer(w),

    so the full-data objective is ``item_losses(w).mean() + regularizer(w)``
    (:meth:`objective`).

    Attributes:
        n_params: P.
        item_losses: ``w -> (N,)``, the training loss of every training item.
        regularizer: ``w -> ()``, the part of the objective not tied to items.
        outputs: ``w -> (Z,)``, the measured outputs f_z(w), *not* clipped.
        convex: whether the objective is convex in w (a non-convex one needs a
            damped Hessian for influence functions).
        default_damping: damping influence functions add to the Hessian when
            the caller gives none.
    """

    n_params: int
    item_losses: Callable[[torch.Tensor], torch.Tensor]
    regularizer: Callable[[torch.Tensor], torch.Tensor]
    outputs: Callable[[torch.Tensor], torch.Tensor]
    convex: bool
    default_damping: float = 0.0

    def objective(self, w: torch.Tensor) -> torch.Tensor:
        """The full-data training objective ``mean_j l_j(w) + R(w)`` (a scalar)."""
        return self.item_losses(w).mean() + self.regularizer(w)


class Task(abc.ABC):
    """A model output function f(x; r) in R^Z, trained in batches.

    Tasks built from task files also set :attr:`spec_class` and implement
    :meth:`from_spec` (see ``docs/tasks.md``); tasks that can run on a torch
    device other than the CPU override :meth:`train_batch_on`; tasks with a
    differentiable model override :meth:`differentiable`.
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

    def differentiable(self) -> DifferentiableModel | None:
        """The task's model as differentiable functions of its weights, or None (the default).

        Optional: only gradient-based attribution methods (``influence-function``)
        need it.  The functions must agree with what :meth:`train_batch` trains and
        measures: ``outputs(w)`` equals the (unclipped) outputs of a model whose
        trained weights are ``w``.
        """
        return None

    def torch_parts(self) -> TorchParts | None:
        """The task's model as a plain ``torch.nn.Module`` and its data, or None (the default).

        Optional: what :func:`prover.tasks.torch_adapter.torch_adapter` hands to
        attribution libraries (kronfluence, dattri, TRAK).  The module built from
        a row of :attr:`TrainedBatch.weights` must measure the same (unclipped)
        outputs as :meth:`train_batch` for that model.
        """
        return None

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

    @property
    def cuda_output_tolerance(self) -> float:
        """Outputs of a run on a GPU agree with a run on any other device within this.

        Default: :attr:`output_tolerance` (spec-built tasks read their spec).
        """
        return self.output_tolerance

    @property
    def cuda_weight_tolerance(self) -> float:
        """The same for weights; default :attr:`weight_tolerance`."""
        return self.weight_tolerance

    def tolerances_on(self, device_class: str) -> Tolerances:
        """The tolerances of runs on one device class (``"cpu"`` or ``"cuda"``).

        ``"cpu"``: :attr:`output_tolerance` / :attr:`weight_tolerance`.  ``"cuda"``:
        the CUDA tolerances, never below the CPU's (a GPU run is not more
        reproducible than a CPU run).  Runs on two classes use the larger pair
        (:func:`prover.tasks.device.tolerances_between`).

        Raises:
            InvalidArgument: an unknown device class.
        """
        cpu = Tolerances(output=float(self.output_tolerance), weight=float(self.weight_tolerance))
        if device_class == "cpu":
            return cpu
        if device_class == "cuda":
            return Tolerances(
                output=max(cpu.output, float(self.cuda_output_tolerance)),
                weight=max(cpu.weight, float(self.cuda_weight_tolerance)),
            )
        raise InvalidArgument(
            f"device class must be one of {', '.join(DEVICE_CLASSES)}, got {device_class!r}"
        )

    @abc.abstractmethod
    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        """Train ``len(x)`` models.

        Args:
            x: pm-encoded subsets, int8 ``(n, N)``.
            seeds: uint64 ``(n,)`` training seeds, one per model.
        """
