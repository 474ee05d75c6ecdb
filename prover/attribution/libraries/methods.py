"""pacda methods backed by attribution libraries: score with the library, calibrate on retrainings.

Every method here computes a library's scores through the task's torch adapter
(:func:`prover.tasks.torch_adapter.torch_adapter`, float32, the full-data model
and, for ``trak-library``'s ensemble, models trained on B_p subsets), reads
them in the mask encoding and turns them into pacda's pm scores as
``import-scores --calibrate`` does: ``theta = beta / 2``, then per output
intercept and one scale factor by least squares on the method's own M
retrainings (``--samples M``, the fitting design; a negative scale is the
library's sign convention, not a fault):

* ``kronfluence-ekfac``: kronfluence's EKFAC influence function
  (:mod:`~prover.attribution.libraries.kronfluence_scores`);
* ``dattri-if``: dattri's explicit-Hessian influence function;
* ``dattri-trak``: dattri's TRAK at the full-data model
  (:mod:`~prover.attribution.libraries.dattri_scores`);
* ``trak-library``: the ``traker`` package's TRAK over an ensemble
  (:mod:`~prover.attribution.libraries.trak_scores`).

``meta["fit"]`` records the library, its version, its options and the
calibration table, as the built-in methods do.
"""

from __future__ import annotations

import abc
import importlib.metadata
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import sample_bp
from prover.attribution.calibration import calibrate
from prover.attribution.method import FitContext, Method, MethodFit
from prover.attribution.sampling import draw_seeds
from prover.tasks.torch_adapter import TorchAdapter, torch_adapter

__all__ = [
    "DampingOptions",
    "DattriIfMethod",
    "DattriTrakMethod",
    "DattriTrakOptions",
    "KronfluenceEkfacMethod",
    "TrakLibraryMethod",
    "TrakLibraryOptions",
    "calibrated_fit",
]

FloatArray = NDArray[np.float64]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def calibrated_fit(
    ctx: FitContext, beta: FloatArray, *, library: str, distribution: str, meta: dict[str, Any]
) -> MethodFit:
    """pm scores from a library's mask-encoded ``beta (Z, N)``, calibrated on M retrainings."""
    if beta.shape != (ctx.task.n_outputs, ctx.task.n_items) or not np.all(np.isfinite(beta)):
        raise InvalidArgument(
            f"{library} gave scores of shape {beta.shape} (finite: "
            f"{bool(np.all(np.isfinite(beta)))}); expected finite ({ctx.task.n_outputs}, "
            f"{ctx.task.n_items})"
        )
    theta_raw = beta / 2.0
    x, y = ctx.fit_design()
    table = calibrate(theta_raw, x, y)
    theta = table["scale"][:, None] * theta_raw
    out = {
        "library": library,
        "library_version": _version(distribution),
        **meta,
        "intercepts": "calibrated",
        "calibration": {
            "samples": int(x.shape[0]),
            "scale": table["scale"].tolist(),
            "intercept": table["intercept"].tolist(),
            "residual_mean_square": table["residual_mean_square"].tolist(),
            "var_f": table["var_f"].tolist(),
            "r2": table["r2"].tolist(),
        },
    }
    negative = int(np.sum(table["scale"] < 0))
    if negative:
        ctx.log(
            f"{library}: {negative} of {len(table['scale'])} outputs calibrated with a negative "
            "scale (the library scores the opposite sign of the effect of including an item)"
        )
    return MethodFit(theta0=np.asarray(table["intercept"]), theta=np.asarray(theta), meta=out)


@dataclass(frozen=True)
class DampingOptions:
    """``damping``: added to the Hessian (None: the library's default or the task's L2)."""

    damping: float | None = None

    def __post_init__(self) -> None:
        if self.damping is not None and not self.damping > 0.0:
            raise InvalidArgument(f"damping must be > 0, got {self.damping}")


class _LibraryMethod(Method):
    """A library's scores through the task's torch adapter, calibrated (M >= 3 retrainings).

    Subclasses name the library (``library``, its ``distribution`` for the
    version) and implement :meth:`scores`; :meth:`fit` is shared.
    """

    library: ClassVar[str]
    distribution: ClassVar[str]

    def min_samples(self, n_items: int) -> int:
        return 3

    @abc.abstractmethod
    def scores(
        self, ctx: FitContext, adapter: TorchAdapter, options: Any
    ) -> tuple[FloatArray, dict[str, Any]]:
        """The library's mask-encoded ``(Z, N)`` scores and what to record of the call."""

    def fit(self, ctx: FitContext, options: Any) -> MethodFit:
        ctx.log(f"{self.name}: training the full-data model for the library")
        adapter = torch_adapter(ctx.task, dtype=torch.float32)
        t0 = time.perf_counter()
        beta, meta = self.scores(ctx, adapter, options)
        meta["seconds_scores"] = time.perf_counter() - t0
        return calibrated_fit(
            ctx, beta, library=self.library, distribution=self.distribution, meta=meta
        )


class KronfluenceEkfacMethod(_LibraryMethod):
    """``kronfluence-ekfac``: kronfluence's EKFAC influence function, calibrated."""

    name: ClassVar[str] = "kronfluence-ekfac"
    library: ClassVar[str] = "kronfluence"
    distribution: ClassVar[str] = "kronfluence"
    options_class: ClassVar[type[DampingOptions]] = DampingOptions
    config_fields: ClassVar[tuple[str, ...]] = ("damping",)

    def scores(
        self, ctx: FitContext, adapter: TorchAdapter, options: DampingOptions
    ) -> tuple[FloatArray, dict[str, Any]]:
        from prover.attribution.libraries.kronfluence_scores import kronfluence_scores

        beta = kronfluence_scores(adapter, strategy="ekfac", damping=options.damping)
        return beta, {"strategy": "ekfac", "damping": options.damping}


class DattriIfMethod(_LibraryMethod):
    """``dattri-if``: dattri's explicit-Hessian influence function, calibrated."""

    name: ClassVar[str] = "dattri-if"
    library: ClassVar[str] = "dattri"
    distribution: ClassVar[str] = "dattri"
    options_class: ClassVar[type[DampingOptions]] = DampingOptions
    config_fields: ClassVar[tuple[str, ...]] = ("damping",)

    def scores(
        self, ctx: FitContext, adapter: TorchAdapter, options: DampingOptions
    ) -> tuple[FloatArray, dict[str, Any]]:
        from prover.attribution.libraries.dattri_scores import dattri_if_scores

        beta = dattri_if_scores(adapter, damping=options.damping)
        return beta, {"algorithm": "IFAttributorExplicit", "damping": options.damping}


@dataclass(frozen=True)
class DattriTrakOptions:
    """``projection_dim``: dimension of dattri's random projection."""

    projection_dim: int = 512

    def __post_init__(self) -> None:
        if self.projection_dim < 1:
            raise InvalidArgument(f"projection_dim must be >= 1, got {self.projection_dim}")


class DattriTrakMethod(_LibraryMethod):
    """``dattri-trak``: dattri's TRAK at the full-data model, calibrated."""

    name: ClassVar[str] = "dattri-trak"
    library: ClassVar[str] = "dattri"
    distribution: ClassVar[str] = "dattri"
    options_class: ClassVar[type[DattriTrakOptions]] = DattriTrakOptions

    def scores(
        self, ctx: FitContext, adapter: TorchAdapter, options: DattriTrakOptions
    ) -> tuple[FloatArray, dict[str, Any]]:
        from prover.attribution.libraries.dattri_scores import dattri_trak_scores

        beta = dattri_trak_scores(adapter, proj_dim=options.projection_dim)
        return beta, {"algorithm": "TRAKAttributor", "projection_dim": options.projection_dim}


@dataclass(frozen=True)
class TrakLibraryOptions:
    """``ensemble``: models averaged (1: the full-data model; more: models on B_p subsets);
    ``projection_dim``: TRAK's projection dimension."""

    ensemble: int = 1
    projection_dim: int = 512

    def __post_init__(self) -> None:
        if self.ensemble < 1 or self.projection_dim < 1:
            raise InvalidArgument(
                f"ensemble and projection_dim must be >= 1, got {self.ensemble} and "
                f"{self.projection_dim}"
            )


class TrakLibraryMethod(_LibraryMethod):
    """``trak-library``: the traker package's TRAK, calibrated."""

    name: ClassVar[str] = "trak-library"
    library: ClassVar[str] = "trak"
    distribution: ClassVar[str] = "traker"
    options_class: ClassVar[type[TrakLibraryOptions]] = TrakLibraryOptions

    def scores(
        self, ctx: FitContext, adapter: TorchAdapter, options: TrakLibraryOptions
    ) -> tuple[FloatArray, dict[str, Any]]:
        from prover.attribution.libraries.trak_scores import trak_scores

        checkpoints: list[FloatArray] | None = None
        if options.ensemble > 1:
            rng = ctx.streams.generator("ensemble")
            x = sample_bp(rng, options.ensemble, ctx.task.n_items, ctx.p)
            seeds = draw_seeds(rng, options.ensemble)
            ctx.log(f"{self.name}: training {options.ensemble} ensemble models on B_p subsets")
            weights = ctx.task.train_batch(x, seeds).weights
            if weights is None:
                raise InvalidArgument(f"{type(ctx.task).__name__} trains no weights")
            checkpoints = list(weights)
        beta = trak_scores(adapter, checkpoints=checkpoints, proj_dim=options.projection_dim)
        return beta, {"ensemble": options.ensemble, "projection_dim": options.projection_dim}
