"""A task's model and data in the form attribution libraries take: the torch adapter.

kronfluence, dattri and TRAK all want the same four things: a plain
``torch.nn.Module`` with trained weights, the training set and the measured
outputs' inputs as ``torch.utils.data`` datasets, the per-item training loss and
the measurement, both as functions of ``(model, batch)``.  A task that has a
torch model says how to build them (:meth:`prover.tasks.base.Task.torch_parts`,
a :class:`TorchParts`); :func:`torch_adapter` trains the full-data model and
returns a :class:`TorchAdapter`.

Index alignment, which the audit depends on:

* item ``j`` of :attr:`TorchAdapter.train_set` is training item ``j`` of the
  task (bit ``j`` of a subset ``x``);
* item ``z`` of :attr:`TorchAdapter.query_set` is output ``z``:
  ``measurement(model, query_set[z:z+1])`` is the task's output ``f_z`` of that
  model, *before* clipping to ``[-b, b]``.

The training objective of a model trained on all N items is

    L(w) = (1/N) sum_j item_loss(model_w, train_set[j]) + regularizer(model_w),

so an influence function of L (Hessian of the mean loss plus the
regulariser's) is what the task's training approximately minimises.  Training
details the adapter does not carry (SGD's order and step size, data
augmentation of a ``TorchTask``) are what a library's approximation gives up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import TensorDataset

from protocol.errors import InvalidArgument
from prover.tasks.base import Task
from prover.tasks.torch_parts import TorchParts, load_flat

__all__ = ["TorchAdapter", "TorchParts", "load_flat", "torch_adapter"]

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TorchAdapter:
    """A task's full-data model, datasets, loss and measurement (module docstring).

    Attributes:
        task: the task.
        model: the module trained on all N items (eval mode, on the CPU).
        weights: its flat weights, float64 ``(P,)``.
        train_set: ``TensorDataset(inputs, targets)`` of the N training items.
        query_set: ``TensorDataset(inputs, targets)`` of the Z measured points.
        dtype: the floating dtype of the module and the datasets' inputs.
    """

    task: Task
    model: torch.nn.Module
    weights: NDArray[np.float64]
    train_set: TensorDataset
    query_set: TensorDataset
    dtype: torch.dtype
    parts: TorchParts

    def item_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Per-item training losses ``(B,)`` of ``model`` on a batch ``(inputs, targets)``."""
        inputs, targets = batch
        return self.parts.loss(model(inputs), targets)

    def measurement(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The measured outputs ``(B,)`` of ``model`` on a batch of :attr:`query_set`."""
        inputs, targets = batch
        return self.parts.measure(model(inputs), targets)

    def regularizer(self, model: torch.nn.Module) -> torch.Tensor:
        """The training objective's part tied to no item (weight decay), a scalar."""
        return self.parts.regularizer(model)

    def model_with(self, weights: NDArray[np.float64]) -> torch.nn.Module:
        """A new module holding ``weights`` (the task's flat layout, ``(P,)``)."""
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        module = self.parts.build(w, self.dtype)
        return module.eval()

    def outputs(self, model: torch.nn.Module | None = None) -> NDArray[np.float64]:
        """Every measured output ``(Z,)`` of ``model`` (default :attr:`model`), unclipped."""
        m = self.model if model is None else model
        with torch.no_grad():
            out = self.measurement(m, self.query_set.tensors)  # type: ignore[arg-type]
        return np.asarray(out.detach().to(torch.float64).numpy())


def torch_adapter(
    task: Task,
    *,
    weights: NDArray[np.float64] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> TorchAdapter:
    """The torch adapter of ``task``: its full-data model, datasets and functions.

    Args:
        task: a task with a torch model (:meth:`Task.torch_parts`).
        weights: the model's flat weights; default: train one model on all N
            items with training seed ``seed`` (:meth:`Task.train_batch`).
        seed: the training seed of that model.
        dtype: floating dtype of the module and the inputs (float32 for
            libraries that compute in single precision).

    Raises:
        InvalidArgument: the task has no torch model, or ``weights`` has the
            wrong length.
    """
    parts = task.torch_parts()
    if parts is None:
        raise InvalidArgument(
            f"{type(task).__name__} has no torch model to hand to an attribution library "
            "(built-in logreg, mlp and cnn tasks and TorchTask plugins have one; "
            "a task of its own can implement Task.torch_parts)"
        )
    if dtype not in (torch.float32, torch.float64):
        raise InvalidArgument(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if weights is None:
        ones = np.ones((1, task.n_items), dtype=np.int8)
        trained = task.train_batch(ones, np.asarray([seed], dtype=np.uint64))
        if trained.weights is None:
            raise InvalidArgument(f"{type(task).__name__} trains no weights")
        weights = trained.weights[0]
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    model = parts.build(torch.as_tensor(w), dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != w.shape[0]:
        raise InvalidArgument(f"weights must have {n_params} entries, got {w.shape[0]}")

    def tensors(inputs: NDArray[np.generic], targets: NDArray[np.generic]) -> TensorDataset:
        x = torch.as_tensor(np.asarray(inputs))
        if x.is_floating_point():
            x = x.to(dtype)
        y = torch.as_tensor(np.asarray(targets))
        if y.is_floating_point():
            y = y.to(dtype)
        return TensorDataset(x, y)

    train_set = tensors(parts.train_inputs, parts.train_targets)
    query_set = tensors(parts.query_inputs, parts.query_targets)
    if len(train_set) != task.n_items or len(query_set) != task.n_outputs:
        raise InvalidArgument(
            f"{type(task).__name__}.torch_parts gives {len(train_set)} training items and "
            f"{len(query_set)} measured points; the task has N = {task.n_items}, "
            f"Z = {task.n_outputs}"
        )
    return TorchAdapter(
        task=task,
        model=model,
        weights=w,
        train_set=train_set,
        query_set=query_set,
        dtype=dtype,
        parts=parts,
    )
