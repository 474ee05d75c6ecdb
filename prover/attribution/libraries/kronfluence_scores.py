"""kronfluence's influence functions (EKFAC or K-FAC) of a pacda task, through the torch adapter.

kronfluence (Grosse et al. 2023, "Studying large language model
generalization with influence functions") approximates the Gauss-Newton
Hessian of the training loss layer by layer with Kronecker factors
(``strategy="ekfac"`` corrects their eigenvalues) and scores

    score[z, j] = grad m_z(w)^T (G + lambda I)^{-1} grad l_j(w),

the measurement ``m_z`` (the task's output z) against item j's training loss
at the full-data model, with kronfluence's damping heuristic for lambda unless
``damping`` is given.  Up-weighting item j moves ``m_z`` by about
``-score[z, j] / N``: the opposite sign of the effect of including the item,
which the calibration of :mod:`prover.attribution.libraries.methods` finds.

The Fisher is the empirical one (``use_empirical_fisher=True``): a task's loss
is not always a likelihood kronfluence can sample labels from.  kronfluence
tracks ``nn.Linear`` and ``nn.Conv2d`` layers only.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from prover.attribution.libraries import require
from prover.tasks.torch_adapter import TorchAdapter

__all__ = ["SCORES_KEY", "kronfluence_scores", "kronfluence_task"]

#: The key of kronfluence's saved pairwise scores summed over modules.
SCORES_KEY = "all_modules"
STRATEGIES = ("ekfac", "kfac", "diagonal", "identity")


def kronfluence_task(adapter: TorchAdapter) -> Any:
    """A ``kronfluence.task.Task`` of the adapter: summed item losses and measurements."""
    task_module = require("kronfluence.task")

    class PacdaTask(task_module.Task):  # type: ignore[misc, name-defined]
        """kronfluence's view of a pacda task (module docstring)."""

        def compute_train_loss(
            self, batch: Any, model: torch.nn.Module, sample: bool = False
        ) -> torch.Tensor:
            if sample:
                raise InvalidArgument("pacda's kronfluence task uses the empirical Fisher")
            return adapter.item_loss(model, batch).sum()

        def compute_measurement(self, batch: Any, model: torch.nn.Module) -> torch.Tensor:
            return adapter.measurement(model, batch).sum()

    return PacdaTask()


def kronfluence_scores(
    adapter: TorchAdapter,
    *,
    strategy: str = "ekfac",
    damping: float | None = None,
    batch_size: int = 256,
    output_dir: Path | None = None,
    name: str = "pacda",
) -> NDArray[np.float64]:
    """kronfluence's pairwise scores ``(Z, N)`` (module docstring for sign and scale).

    Args:
        adapter: the task's torch adapter (float32 is kronfluence's native dtype).
        strategy: kronfluence's Hessian approximation.
        damping: kronfluence's ``damping_factor``; None: its heuristic.
        batch_size: training items per batch for factors and scores.
        output_dir: where kronfluence writes factors and scores (kept, and
            readable by ``import-scores --format kronfluence``); default: a
            temporary directory, removed afterwards.
        name: the analysis name (a folder under ``output_dir``).
    """
    if strategy not in STRATEGIES:
        raise InvalidArgument(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if damping is not None and not damping > 0.0:
        raise InvalidArgument(f"damping must be > 0, got {damping}")
    kf = require("kronfluence")
    arguments = require("kronfluence.arguments")
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="pacda-kronfluence-") as tmp:
            return _run(kf, arguments, adapter, strategy, damping, batch_size, Path(tmp), name)
    return _run(kf, arguments, adapter, strategy, damping, batch_size, Path(output_dir), name)


def _run(
    kf: Any,
    arguments: Any,
    adapter: TorchAdapter,
    strategy: str,
    damping: float | None,
    batch_size: int,
    output_dir: Path,
    name: str,
) -> NDArray[np.float64]:
    task = kronfluence_task(adapter)
    model = kf.prepare_model(copy.deepcopy(adapter.model), task)
    analyzer = kf.Analyzer(
        analysis_name=name,
        model=model,
        task=task,
        cpu=True,
        disable_tqdm=True,
        output_dir=str(output_dir),
        disable_model_save=True,
    )
    factor_args = arguments.FactorArguments(strategy=strategy, use_empirical_fisher=True)
    analyzer.fit_all_factors(
        factors_name=strategy,
        dataset=adapter.train_set,
        per_device_batch_size=batch_size,
        factor_args=factor_args,
        overwrite_output_dir=True,
    )
    analyzer.compute_pairwise_scores(
        scores_name=strategy,
        factors_name=strategy,
        query_dataset=adapter.query_set,
        train_dataset=adapter.train_set,
        per_device_query_batch_size=len(adapter.query_set),
        per_device_train_batch_size=batch_size,
        score_args=arguments.ScoreArguments(damping_factor=damping),
        overwrite_output_dir=True,
    )
    scores = analyzer.load_pairwise_scores(scores_name=strategy)[SCORES_KEY]
    out = np.asarray(scores.detach().to(torch.float64).numpy())
    if out.shape != (len(adapter.query_set), len(adapter.train_set)):
        raise InvalidArgument(f"kronfluence returned scores of shape {out.shape}")
    return out
