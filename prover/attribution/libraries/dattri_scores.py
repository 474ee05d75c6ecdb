"""dattri's influence function and TRAK of a pacda task, through the torch adapter.

dattri (Deng et al. 2024, "dattri: a library for efficient data attribution")
takes a model, a loss ``f(params, data)`` and a target ``m(params, data)`` in
``torch.func`` style, with ``data`` a batch ``(inputs, targets)``:

* ``dattri_if_scores``: ``IFAttributorExplicit``, the exact inverse Hessian of
  the mean training loss plus ``damping * I`` (the task's L2 strength when
  ``damping`` is None, so that for ``logreg`` it is the training objective's
  Hessian up to the unpenalised bias); ``score[j, z] = grad l_j^T (H +
  damping I)^{-1} grad m_z``.  Up-weighting item j moves ``m_z`` by about
  ``-score / N``: the opposite sign of the effect of including it.
* ``dattri_trak_scores``: ``TRAKAttributor`` (Park et al. 2023) at the
  full-data model, with the probability of the correct label ``exp(-l)`` (the
  task's loss is a negative log-likelihood) and dattri's random projection to
  ``proj_dim`` dimensions; scores rank the effect of including an item.

Both return ``(Z, N)``; dattri's own tensors are ``(N, Z)`` (train x test),
which is what ``import-scores --format dattri`` reads from a ``.pt`` file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.func import functional_call
from torch.utils.data import DataLoader

from protocol.errors import InvalidArgument
from prover.attribution.libraries import require
from prover.tasks.torch_adapter import TorchAdapter

__all__ = ["dattri_if_scores", "dattri_task", "dattri_trak_scores"]

Batch = tuple[torch.Tensor, torch.Tensor]


def _batched(adapter: TorchAdapter, data: tuple[torch.Tensor, torch.Tensor]) -> Batch:
    """``data`` with a leading batch axis: dattri maps some functions over single items."""
    inputs, targets = data
    if inputs.dim() == adapter.train_set.tensors[0].dim() - 1:
        return inputs.unsqueeze(0), targets.unsqueeze(0)
    return inputs, targets


def dattri_task(adapter: TorchAdapter) -> Any:
    """A ``dattri.task.AttributionTask``: mean item loss and summed measurement of a batch."""
    task_module = require("dattri.task")
    model = adapter.model

    def loss(params: dict[str, torch.Tensor], data: Batch) -> Any:
        inputs, targets = _batched(adapter, data)
        return adapter.parts.loss(functional_call(model, params, (inputs,)), targets).mean()

    def target(params: dict[str, torch.Tensor], data: Batch) -> Any:
        inputs, targets = _batched(adapter, data)
        return adapter.parts.measure(functional_call(model, params, (inputs,)), targets).sum()

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return task_module.AttributionTask(
        loss_func=loss, model=model, checkpoints=state, target_func=target
    )


def _loader(dataset: Any, batch_size: int) -> DataLoader[Any]:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def _as_zn(scores: torch.Tensor, adapter: TorchAdapter) -> NDArray[np.float64]:
    out = np.asarray(scores.detach().to(torch.float64).numpy()).T
    if out.shape != (len(adapter.query_set), len(adapter.train_set)):
        raise InvalidArgument(f"dattri returned scores of shape {out.T.shape}")
    return np.ascontiguousarray(out)


def dattri_if_scores(
    adapter: TorchAdapter, *, damping: float | None = None, batch_size: int = 256
) -> NDArray[np.float64]:
    """dattri's explicit influence function, ``(Z, N)`` (module docstring).

    Args:
        damping: added to the Hessian; None: the task's L2 strength (or 1e-3
            when the task has none), a dense ``P x P`` Hessian either way.
    """
    algorithm = require("dattri.algorithm.influence_function")
    if damping is None:
        damping = _l2_strength(adapter)
    if not damping >= 0.0:
        raise InvalidArgument(f"damping must be >= 0, got {damping}")
    attributor = algorithm.IFAttributorExplicit(
        task=dattri_task(adapter), device="cpu", regularization=float(damping)
    )
    attributor.cache(_loader(adapter.train_set, len(adapter.train_set)))
    with torch.no_grad():
        scores = attributor.attribute(
            _loader(adapter.train_set, batch_size), _loader(adapter.query_set, batch_size)
        )
    return _as_zn(scores, adapter)


def dattri_trak_scores(
    adapter: TorchAdapter, *, proj_dim: int = 512, batch_size: int = 256, seed: int = 0
) -> NDArray[np.float64]:
    """dattri's TRAK at the full-data model, ``(Z, N)`` (module docstring)."""
    algorithm = require("dattri.algorithm.trak")
    if proj_dim < 1:
        raise InvalidArgument(f"proj_dim must be >= 1, got {proj_dim}")
    model = adapter.model

    def correct_probability(params: dict[str, torch.Tensor], data: Batch) -> Any:
        inputs, targets = _batched(adapter, data)
        return torch.exp(-adapter.parts.loss(functional_call(model, params, (inputs,)), targets))

    n_params = sum(p.numel() for p in model.parameters())
    attributor = algorithm.TRAKAttributor(
        task=dattri_task(adapter),
        correct_probability_func=correct_probability,
        projector_kwargs={"proj_dim": min(proj_dim, n_params), "device": "cpu", "proj_seed": seed},
        device="cpu",
    )
    attributor.cache(_loader(adapter.train_set, batch_size))
    with torch.no_grad():
        scores = attributor.attribute(_loader(adapter.query_set, batch_size))
    return _as_zn(scores, adapter)


def _l2_strength(adapter: TorchAdapter) -> float:
    """lambda of a regulariser ``(lambda/2) sum ||W||^2``: ``2 R / sum ||W||^2`` (1e-3 if none)."""
    with torch.no_grad():
        reg = float(adapter.regularizer(adapter.model))
        named = adapter.model.named_parameters()
        norm = sum(float((p * p).sum()) for n, p in named if "weight" in n)
    return 2.0 * reg / norm if reg > 0.0 and norm > 0.0 else 1e-3
