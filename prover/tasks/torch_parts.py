"""How a task's torch model is built and measured: what ``Task.torch_parts`` returns.

Kept apart from :mod:`prover.tasks.torch_adapter`, which builds on the task
interface, so that :mod:`prover.tasks.base` can name the type without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument

__all__ = ["TorchParts", "load_flat"]


@dataclass(frozen=True, kw_only=True)
class TorchParts:
    """How a task's torch model is built and measured (what :meth:`Task.torch_parts` returns).

    Attributes:
        build: flat weights ``(P,)`` (the task's :attr:`TrainedBatch.weights`
            layout) and a dtype -> a new module holding exactly those weights.
        train_inputs, train_targets: the N training items, row j = item j.
        query_inputs, query_targets: the Z measured points, row z = output z.
        loss: ``(prediction (B, ...), target (B, ...)) -> (B,)`` per-item losses.
        measure: ``(prediction, target) -> (B,)`` the unclipped outputs.
        regularizer: ``module -> ()`` the objective's part tied to no item.
    """

    build: Callable[[torch.Tensor, torch.dtype], torch.nn.Module]
    train_inputs: NDArray[np.generic]
    train_targets: NDArray[np.generic]
    query_inputs: NDArray[np.generic]
    query_targets: NDArray[np.generic]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    measure: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    regularizer: Callable[[torch.nn.Module], torch.Tensor]


def load_flat(module: torch.nn.Module, w: torch.Tensor) -> torch.nn.Module:
    """Copy flat weights ``w`` into ``module``'s parameters in named-parameter order."""
    sizes = [p.numel() for p in module.parameters()]
    if sum(sizes) != w.numel():
        raise InvalidArgument(f"weights must have {sum(sizes)} entries, got {w.numel()}")
    with torch.no_grad():
        for p, part in zip(module.parameters(), torch.split(w.reshape(-1), sizes), strict=True):
            p.copy_(part.reshape(p.shape).to(p.dtype))
    return module
