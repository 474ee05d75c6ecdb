"""TRAK-style attribution: projected per-example gradients of a small ensemble (Park et al. 2023).

TRAK ("Attributing Model Behavior at Scale") replaces the Hessian of influence
functions by the kernel of random projections of per-example gradients, and
the single reference model by an ensemble of models trained on random
subsets.  This module computes it over the task's differentiable hooks
(:meth:`prover.tasks.base.Task.differentiable`: per-item losses ``l_i(w)``, the
measured outputs ``f_z(w)``), for any task that has them.

**Ensemble.**  E models (``ensemble``, default 5) are trained on subsets
``S_m ~ B_p`` (TRAK's alpha-fraction subsets with alpha = the task's p), with
subsets, seeds and projections drawn from the stream ``ensemble``.

**Features.**  For model m with weights ``w_m`` and a P x k projection ``R_m``
(i.i.d. ``N(0, 1/k)`` or ``+-1/sqrt(k)`` entries; none when ``k >= P``):

* target features ``phi_z = R_m^T grad f_z(w_m)`` (Z rows);
* training features.  TRAK's model output for a training item is its margin
  ``f_i = log(p_i / (1 - p_i))`` with ``p_i`` the probability of the correct
  label.  For a loss that is a negative log-likelihood, ``l_i = -log p_i``
  (logistic loss of ``logreg``, cross-entropy of ``mlp``), so
  ``p_i = exp(-l_i)``, ``grad f_i = -grad l_i / Q_i`` with TRAK's
  ``Q_i = 1 - p_i``, and ``Q_i grad f_i = -grad l_i``.
  ``features="margin"`` (default) uses ``Phi_i = R_m^T grad f_i``;
  ``features="loss"`` uses ``Phi_i = R_m^T grad l_i`` (no likelihood reading
  needed: any task; the kernel is then the empirical Fisher).

**Estimator.**  With the ``(N, k)`` matrix ``Phi`` of every training item's
features (all N items, used or not by model m, as TRAK does),

    tau_m[z, i] = phi_z^T (Phi^T Phi + lambda I)^{-1} Phi_i Q_i
                = -phi_z^T (Phi^T Phi + lambda I)^{-1} R_m^T grad l_i(w_m),

``lambda = damping * tr(Phi^T Phi) / k`` a ridge relative to the kernel's mean
eigenvalue, and ``tau = (1/E) sum_m tau_m``.  TRAK drops the
weights ``R = diag(p_i (1 - p_i))`` of the log-likelihood's Gauss-Newton Hessian
``Phi^T R Phi`` from the kernel; ``weighted=True`` keeps them (margin features
only), which for a convex model brings the estimator close to an influence
function with a Gauss-Newton Hessian.

**Damping.**  The ridge matters: the training objective's own regulariser
(``logreg``'s L2 penalty, ``mlp``'s weight decay) is not in the kernel, and
on the example ``logreg`` task the LDS grows from 0.5 at damping 1e-3 to 0.85 at
1.  By default (``damping=None``) every value of :data:`DAMPING_GRID` is tried,
from one eigendecomposition of each model's kernel, and each output keeps the
one whose calibrated predictor has the smallest residual sum of squares on the
M calibration retrainings (one of nine values per output, on the same rows
that fit its two calibration parameters); a number fixes it.  (TRAK's code
averages Q over the models separately; here ``Q_i`` stays with its own model's
gradient, which is what ``-grad l_i`` gives.)  ``tau[z, i]`` estimates the effect
of *including* item i on output z (the mask encoding), to first order:
``Phi^T Phi`` plays the role of ``|S| H`` (a Gauss-Newton Hessian).

**Scale and intercept.**  TRAK's scores are a ranking on their own scale:
their kernel sums over all N items, not the ~pN of a subset, and its
Gauss-Newton weights differ from the Hessian's.  So, in pacda's pm encoding
(``theta = beta / 2`` for mask coefficients beta), the predictor
``h_z(x) = (tau_z / 2) . x`` is calibrated on the method's own M retrainings
``(x_k, f(x_k))``, ``x_k ~ B_p`` (the fitting design, ``--samples M``): per output,
intercept and one scale factor by least squares
(:func:`prover.attribution.calibration.calibrate`),

    theta0_z = a_z,   theta_z = s_z tau_z / 2,
    (a_z, s_z) = argmin sum_k (f_z(x_k) - a - s h_z(x_k))^2,

recorded in ``meta["fit"]["calibration"]`` (samples, scales, intercepts,
residual mean squares, Var(f), R^2); the audit certifies these calibrated
scores.  With ``calibrate=False`` the scale stays 1 and only the intercept is
fitted (the mean of ``f - h``).

Cost: E trainings for the features plus M for the calibration (M >= 3), and
per model one ``(N, P)`` Jacobian of the item losses (reverse mode, in chunks
of :data:`JACOBIAN_CHUNK` rows), one ``(Z, P)`` Jacobian of the outputs and a
k x k solve.  Before any score, the outputs the hooks compute at each model's
weights are checked against the outputs its training reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from protocol.hypercube import sample_bp
from prover.attribution.calibration import calibrate
from prover.attribution.influence import check_reference
from prover.attribution.method import FitContext, Method, MethodFit
from prover.attribution.sampling import draw_seeds
from prover.tasks.base import Task

__all__ = [
    "DAMPING_GRID",
    "PROJECTIONS",
    "TRAK_FEATURES",
    "TrakFit",
    "TrakMethod",
    "TrakOptions",
    "trak_scores",
]

FloatArray = NDArray[np.float64]
#: Random projections of the gradients.
PROJECTIONS: tuple[str, ...] = ("gaussian", "rademacher")
#: What the training features are gradients of.
TRAK_FEATURES: tuple[str, ...] = ("margin", "loss")
#: Rows of the per-item loss Jacobian formed per reverse pass.
JACOBIAN_CHUNK = 128
#: Relative dampings tried when ``damping`` is None.
DAMPING_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Kernel eigen-directions with ``s + lambda <= RCOND s_max`` are dropped.
RCOND = 1e-12
#: ``1 - p_i`` below this: the item's margin gradient cannot be recovered from its loss.
_MIN_Q = 1e-12


@dataclass(frozen=True, kw_only=True)
class TrakOptions:
    """Options of the ``trak`` method (see the module docstring).

    Attributes:
        ensemble: E, models trained on B_p subsets for the features (>= 1).
        projection_dim: k, dimension of the random projection (>= 1); no
            projection when k >= P (the features are then exact).
        projection: ``gaussian`` (``N(0, 1/k)`` entries) or ``rademacher``
            (``+-1/sqrt(k)``).
        features: ``margin`` (TRAK: gradients of ``log(p/(1-p))``, reading the
            item loss as ``-log p``) or ``loss`` (gradients of the item loss).
        damping: relative ridge ``lambda / (tr(Phi^T Phi) / k)`` on the kernel (>= 0),
            or None (default): chosen per output from :data:`DAMPING_GRID` on the
            calibration retrainings.
        calibrate: fit intercept and scale per output on the M retrainings
            (True), or the intercept only (False).
        weighted: keep the Gauss-Newton weights ``p_i (1 - p_i)`` in the kernel
            (``Phi^T R Phi``; margin features only); TRAK drops them (False).
    """

    ensemble: int = 5
    projection_dim: int = 512
    projection: Literal["gaussian", "rademacher"] = "gaussian"
    features: Literal["margin", "loss"] = "margin"
    damping: float | None = None
    calibrate: bool = True
    weighted: bool = False

    def __post_init__(self) -> None:
        for name in ("ensemble", "projection_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"trak: {name} must be an integer >= 1, got {value!r}")
        if self.projection not in PROJECTIONS:
            raise InvalidArgument(
                f"trak: projection must be one of {', '.join(PROJECTIONS)}, got {self.projection!r}"
            )
        if self.features not in TRAK_FEATURES:
            raise InvalidArgument(
                f"trak: features must be one of {', '.join(TRAK_FEATURES)}, got {self.features!r}"
            )
        d = self.damping
        if d is not None and (
            isinstance(d, bool)
            or not isinstance(d, int | float)
            or not (math.isfinite(d) and d >= 0.0)
        ):
            raise InvalidArgument(f"trak: damping must be finite and >= 0, got {d!r}")
        for name in ("calibrate", "weighted"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgument(
                    f"trak: {name} must be true or false, got {getattr(self, name)!r}"
                )
        if self.weighted and self.features != "margin":
            raise InvalidArgument("trak: weighted=True needs features='margin'")


@dataclass(frozen=True, kw_only=True)
class TrakFit:
    """Uncalibrated TRAK scores of an ensemble.

    Attributes:
        tau: float64 ``(L, Z, N)``: for each of the L dampings, the ensemble mean of
            ``tau_m``, the estimated effect of including each item (mask encoding,
            TRAK's scale).
        dampings: the L relative dampings.
        projected_dim: k actually used (P when there was no projection).
        projected: whether the gradients were projected (k < P).
        n_params: P.
        no_margin_gradient: items (summed over models) whose ``1 - p_i`` was
            below 1e-12, so their margin gradient was set to 0 in the kernel
            (``features="margin"`` only).
    """

    tau: FloatArray
    dampings: tuple[float, ...]
    projected_dim: int
    projected: bool
    n_params: int
    no_margin_gradient: int = 0


def _kind(task: Task) -> str:
    return str(getattr(getattr(task, "spec", None), "kind", type(task).__name__))


def _projection(rng: np.random.Generator, n_params: int, k: int, kind: str) -> FloatArray:
    if kind == "gaussian":
        return rng.standard_normal((n_params, k)) / math.sqrt(k)
    signs = rng.integers(0, 2, size=(n_params, k)).astype(np.float64) * 2.0 - 1.0
    return np.asarray(signs / math.sqrt(k))


def trak_scores(
    task: Task,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    *,
    rng: np.random.Generator,
    projection_dim: int = 512,
    projection: str = "gaussian",
    features: str = "margin",
    dampings: tuple[float, ...] = DAMPING_GRID,
    weighted: bool = False,
) -> TrakFit:
    """TRAK scores ``tau (Z, N)`` of the models trained on ``x`` (E, N) with ``seeds`` (E,).

    Args:
        task: a task with differentiable hooks (``task.differentiable()``).
        x: int8 ``(E, N)`` pm subsets of the ensemble; seeds: uint64 ``(E,)``.
        rng: draws the E projections (in model order).
        projection_dim, projection, features, weighted: see :class:`TrakOptions`.
        dampings: the relative dampings to compute scores for (each >= 0).

    Raises:
        InvalidArgument: no differentiable hooks, bad options, or negative item
            losses with ``features="margin"`` (not a negative log-likelihood).
        ProverError: the hooks disagree with the task's training, a singular
            kernel, or non-finite scores.
    """
    import torch
    from torch.func import jacrev

    TrakOptions(
        projection_dim=projection_dim,
        projection=projection,  # type: ignore[arg-type]
        features=features,  # type: ignore[arg-type]
        weighted=weighted,
    )
    for d in dampings:
        TrakOptions(damping=d)
    model = task.differentiable()
    if model is None:
        raise InvalidArgument(
            "method 'trak' needs a task with a differentiable model (Task.differentiable); "
            f"task kind {_kind(task)!r} has none"
        )
    batch = task.train_batch(x, seeds)
    if batch.weights is None or batch.weights.shape[1] != model.n_params:
        got = None if batch.weights is None else batch.weights.shape
        raise ProverError(
            f"{_kind(task)}: trained weights of shape {got}, its differentiable model expects "
            f"(n, {model.n_params})"
        )
    n_params = model.n_params
    k = min(projection_dim, n_params)
    projected = projection_dim < n_params
    loss_jacobian = jacrev(model.item_losses, chunk_size=JACOBIAN_CHUNK)
    output_jacobian = jacrev(model.outputs)
    grid = np.asarray(dampings, dtype=np.float64)
    tau = np.zeros((len(grid), task.n_outputs, task.n_items))
    dropped = 0
    for m in range(len(x)):
        w = torch.as_tensor(batch.weights[m], dtype=torch.float64)
        with torch.no_grad():
            check_reference(task, model.outputs(w).detach().numpy(), batch.outputs[m])
            losses = model.item_losses(w).detach().numpy()
        grad_l = loss_jacobian(w).detach().numpy()  # (N, P)
        grad_f = output_jacobian(w).detach().numpy()  # (Z, P)
        q = np.ones(len(losses))
        if features == "margin":
            if np.any(losses < 0.0):
                raise InvalidArgument(
                    f"trak: features='margin' reads item losses as negative log-likelihoods, "
                    f"but {_kind(task)} has negative item losses; use features='loss'"
                )
            q = -np.expm1(-losses)  # Q_i = 1 - p_i,  p_i = exp(-l_i)
            ok = q > _MIN_Q
            dropped += int(np.count_nonzero(~ok))
            train_rows = np.where(ok[:, None], -grad_l / np.where(ok, q, 1.0)[:, None], 0.0)
        else:
            train_rows = grad_l
        if projected:
            proj = _projection(rng, n_params, k, projection)
            phi_train, phi_loss, phi_target = train_rows @ proj, grad_l @ proj, grad_f @ proj
        else:
            phi_train, phi_loss, phi_target = train_rows, grad_l, grad_f
        if weighted:  # Gauss-Newton weights p_i (1 - p_i) = (1 - q_i) q_i
            kernel = phi_train.T @ (phi_train * ((1.0 - q) * q)[:, None])
        else:
            kernel = phi_train.T @ phi_train
        # K = V S V^T once; (K + lambda I)^{-1} for every lambda of the grid.
        eig, vecs = np.linalg.eigh(0.5 * (kernel + kernel.T))
        eig = np.maximum(eig, 0.0)
        scale = float(eig.sum()) / k  # tr(K) / k
        top = max(float(eig.max()), 1e-300)
        target = vecs.T @ phi_target.T  # (k, Z)
        loss_v = phi_loss @ vecs  # (N, k)
        for j, d in enumerate(grid):
            denom = eig + d * scale
            inv = np.where(denom > RCOND * top, 1.0 / np.where(denom > 0, denom, 1.0), 0.0)
            tau[j] -= (loss_v @ (inv[:, None] * target)).T  # -phi_z^T K^{-1} R^T grad l_i
    tau /= len(x)
    if not np.all(np.isfinite(tau)):
        raise ProverError("trak produced non-finite scores (singular kernel?); raise damping")
    return TrakFit(
        tau=tau,
        dampings=tuple(float(d) for d in grid),
        projected_dim=k,
        projected=projected,
        n_params=n_params,
        no_margin_gradient=dropped,
    )


def _residual_ss(
    theta: FloatArray, x: NDArray[np.int8], f: FloatArray, *, fit_scale: bool
) -> FloatArray:
    """Residual sum of squares per output of ``f ~ a + s theta.x`` (s = 1 unless ``fit_scale``)."""
    if fit_scale:
        table = calibrate(theta, x, f)
        return np.asarray(table["residual_mean_square"] * (len(x) - 2))
    resid = f - x.astype(np.float64) @ theta.T
    resid -= resid.mean(axis=0)
    return np.asarray((resid * resid).sum(axis=0))


class TrakMethod(Method):
    """``trak``: projected-gradient scores of a small ensemble, calibrated on M retrainings.

    Needs ``M >= 3`` fitting retrainings (two calibration parameters per output
    and one residual degree of freedom) besides the ``ensemble`` models.
    """

    name: ClassVar[str] = "trak"
    options_class: ClassVar[type[TrakOptions]] = TrakOptions

    def min_samples(self, n_items: int) -> int:
        return 3

    def fit(self, ctx: FitContext, options: TrakOptions) -> MethodFit:
        task = ctx.task
        rng = ctx.streams.generator("ensemble")
        ens_x = sample_bp(rng, options.ensemble, task.n_items, ctx.p)
        ens_seeds = draw_seeds(rng, options.ensemble)
        ctx.log(
            f"trak: training {options.ensemble} ensemble models on B_p subsets (p={ctx.p}) and "
            f"projecting their per-item gradients to k={options.projection_dim}"
        )
        t0 = time.perf_counter()
        dampings = DAMPING_GRID if options.damping is None else (float(options.damping),)
        fit = trak_scores(
            task,
            ens_x,
            ens_seeds,
            rng=rng,
            projection_dim=options.projection_dim,
            projection=options.projection,
            features=options.features,
            dampings=dampings,
            weighted=options.weighted,
        )
        seconds_features = time.perf_counter() - t0
        ctx.seconds["trak_features"] = seconds_features
        raw = fit.tau / 2.0  # mask-encoding effects -> pm scores, (L, Z, N)
        x, y = ctx.fit_design()
        # Per output, the damping whose calibrated predictor fits the M retrainings best.
        rss = np.stack([_residual_ss(r, x, y, fit_scale=options.calibrate) for r in raw])
        best = np.argmin(rss, axis=0)  # (Z,)
        theta_raw = raw[best, np.arange(task.n_outputs)]
        meta: dict[str, Any] = {
            "ensemble": options.ensemble,
            "ensemble_seeds": [str(int(s)) for s in ens_seeds],
            "projection": options.projection if fit.projected else "none",
            "projection_dim": fit.projected_dim,
            "n_params": fit.n_params,
            "features": options.features,
            "weighted": options.weighted,
            "damping": [fit.dampings[int(j)] for j in best],
            "damping_grid": list(fit.dampings),
            "items_without_margin_gradient": fit.no_margin_gradient,
            "seconds_features": round(seconds_features, 3),
        }
        if options.calibrate:
            ctx.log(f"trak: calibrating intercept and scale per output on {len(x)} retrainings")
            table = calibrate(theta_raw, x, y)
            theta = theta_raw * table["scale"][:, None]
            theta0 = table["intercept"]
            meta["intercepts"] = "calibrated"
            meta["calibration"] = {
                "samples": len(x),
                **{key: value.tolist() for key, value in table.items()},
            }
        else:
            theta = theta_raw
            theta0 = (y - x.astype(np.float64) @ theta.T).mean(axis=0)
            meta["intercepts"] = "mean"
            meta["calibration"] = None
        return MethodFit(theta0=np.asarray(theta0), theta=np.asarray(theta), meta=meta)
