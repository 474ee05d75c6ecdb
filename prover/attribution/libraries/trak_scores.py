"""TRAK (the ``traker`` package of Park et al. 2023) on a pacda task, through the torch adapter.

TRAK featurises every training item by a random projection of the gradient
of its model output ``log(p / (1 - p))`` (p the probability of its label; with a
negative log-likelihood loss ``l``, ``p = exp(-l)``), weights it by
``Q = 1 - p`` and scores a target by its projected gradient against the
features' kernel:

    tau[j, z] = Q_j Phi_j^T (Phi^T Phi)^{-1} phi_z,

averaged over the checkpoints given.  Here the targets' gradients are those of
the task's measurement (output z), not of a margin of TRAK's choosing, so the
scores rank the effect of including item j on the audited output.  pacda runs
TRAK's CPU projector (``BasicProjector``, Gaussian) in float32 and full
precision (``use_half_precision=False``).

TRAK saves its scores as a NumPy file ``SAVE_DIR/scores/NAME.mmap`` of shape
``(N, Z)``: what ``import-scores --format trak`` reads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.func import functional_call
from torch.utils.data import DataLoader

from protocol.errors import InvalidArgument
from prover.attribution.libraries import require
from prover.tasks.torch_adapter import TorchAdapter

__all__ = ["trak_model_output", "trak_scores"]


def trak_model_output(adapter: TorchAdapter) -> Any:
    """A ``trak.modelout_functions.AbstractModelOutput`` of the adapter.

    Its attribute ``scoring`` selects what :meth:`get_output` returns: the
    training items' margin ``log p - log(1 - p)`` while featurising (False), the
    task's measurement while scoring targets (True).
    """
    modelout = require("trak.modelout_functions")

    class PacdaModelOutput(modelout.AbstractModelOutput):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.scoring = False

        def get_output(
            self, model: torch.nn.Module, weights: Any, buffers: Any, inputs: Any, target: Any
        ) -> torch.Tensor:
            pred = functional_call(model, (weights, buffers), (inputs.unsqueeze(0),))
            target = target.unsqueeze(0)
            if self.scoring:
                return adapter.parts.measure(pred, target).sum()
            # a loss of exactly 0 (p = 1 in floating point) would give an infinite margin
            loss = adapter.parts.loss(pred, target).sum().clamp_min(1e-30)
            # log(p / (1 - p)) with p = exp(-loss), computed stably
            return -loss - torch.log(-torch.expm1(-loss))

        def get_out_to_loss_grad(
            self, model: torch.nn.Module, weights: Any, buffers: Any, batch: Any
        ) -> torch.Tensor:
            inputs, target = batch
            pred = functional_call(model, (weights, buffers), (inputs,))
            p = torch.exp(-adapter.parts.loss(pred, target))
            return (1.0 - p).detach().unsqueeze(-1)

    return PacdaModelOutput()


def trak_scores(
    adapter: TorchAdapter,
    *,
    checkpoints: Sequence[NDArray[np.float64]] | None = None,
    proj_dim: int = 512,
    batch_size: int = 256,
    seed: int = 0,
    save_dir: Path | None = None,
    name: str = "pacda",
) -> NDArray[np.float64]:
    """TRAK's scores ``(Z, N)`` over ``checkpoints`` (default: the adapter's full-data model).

    Args:
        checkpoints: flat weight vectors of the models to average over (TRAK's
            ensemble; e.g. models trained on B_p subsets).
        proj_dim: dimension of the random projection (at most P is used).
        save_dir: TRAK's save directory (kept; default a temporary one).
        name: TRAK's experiment name (``scores/NAME.mmap``).
    """
    if proj_dim < 1:
        raise InvalidArgument(f"proj_dim must be >= 1, got {proj_dim}")
    if save_dir is None:
        with tempfile.TemporaryDirectory(prefix="pacda-trak-") as tmp:
            return _run(adapter, checkpoints, proj_dim, batch_size, seed, Path(tmp), name)
    return _run(adapter, checkpoints, proj_dim, batch_size, seed, Path(save_dir), name)


def _run(
    adapter: TorchAdapter,
    checkpoints: Sequence[NDArray[np.float64]] | None,
    proj_dim: int,
    batch_size: int,
    seed: int,
    save_dir: Path,
    name: str,
) -> NDArray[np.float64]:
    trak = require("trak")
    projectors = require("trak.projectors")
    weights = [adapter.weights] if checkpoints is None else list(checkpoints)
    if not weights:
        raise InvalidArgument("TRAK needs at least one checkpoint")
    model = adapter.model_with(weights[0])
    n_params = sum(p.numel() for p in model.parameters())
    dim = min(proj_dim, n_params)
    output = trak_model_output(adapter)
    projector = projectors.BasicProjector(
        grad_dim=n_params,
        proj_dim=dim,
        seed=seed,
        proj_type=projectors.ProjectionType.normal,
        device=torch.device("cpu"),
        dtype=torch.float32,
        # at least two blocks: with one, traker 0.3.2 frees the projection after
        # featurising and never rebuilds it for the targets
        block_size=max(1, (dim + 1) // 2),
    )
    traker = trak.TRAKer(
        model=model,
        task=output,
        train_set_size=len(adapter.train_set),
        save_dir=str(save_dir),
        device="cpu",
        projector=projector,
        proj_dim=dim,
        use_half_precision=False,
        logging_level=40,
    )
    train = DataLoader(adapter.train_set, batch_size=batch_size, shuffle=False)
    query = DataLoader(adapter.query_set, batch_size=batch_size, shuffle=False)
    states = [adapter.model_with(w).state_dict() for w in weights]
    output.scoring = False
    for model_id, state in enumerate(states):
        traker.load_checkpoint(state, model_id=model_id)
        for batch in train:
            traker.featurize(batch=batch, num_samples=len(batch[0]))
    traker.finalize_features()
    output.scoring = True
    for model_id, state in enumerate(states):
        traker.start_scoring_checkpoint(
            exp_name=name, checkpoint=state, model_id=model_id, num_targets=len(adapter.query_set)
        )
        for batch in query:
            traker.score(batch=batch, num_samples=len(batch[0]))
    scores = np.asarray(traker.finalize_scores(exp_name=name), dtype=np.float64)
    if scores.shape != (len(adapter.train_set), len(adapter.query_set)):
        raise InvalidArgument(f"TRAK returned scores of shape {scores.shape}")
    return np.ascontiguousarray(scores.T)
