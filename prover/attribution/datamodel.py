"""Linear datamodels by regularised least squares (Ilyas et al. 2022, "Datamodels").

Given M retrainings ``(x_m, f(x_m; r_m))`` with ``x_m ~ B_p`` in the pm
encoding, the datamodel of output z minimises the empirical squared error

    (1/M) sum_m (f_z(x_m) - theta0 - theta . x_m)^2 + lambda ||theta||^2     (ridge)
    (1/(2M)) sum_m (f_z(x_m) - theta0 - theta . x_m)^2 + alpha ||theta||_1  (lasso)

(the intercept is not penalised).  Its population limit is the optimal linear
datamodel Phi(S) with ``theta_i = fhat_{i}/sigma`` (docs/design.md §1); for ordinary
least squares the excess error is about ``B_{>=2} (N+1)/M`` (the noise
variance times N/M), which acceptance test 1 checks.

The regularisation strength is chosen per output by held-out validation: a
random ``validation_fraction`` of the M rows is set aside, every value of the
grid is fitted on the rest and scored on it, and the winner is refitted on all
M rows.

Ridge streams: only the sufficient statistics ``X^T X`` (N x N), ``X^T y``
(N x Z), column sums and ``y^T y`` of each part are accumulated, block by block
of rows, so memory is ``O(N^2 + N Z + block N)`` beyond the int8 subsets
themselves, and the whole grid is evaluated from one eigendecomposition
``X_c^T X_c = V S V^T`` of the centred Gram matrix of the training part:
``theta(lambda) = V (S + n lambda)^{-1} V^T X_c^T y_c``; the final fit on all
rows takes one Cholesky factorisation per distinct chosen strength.
Lasso (scikit-learn's coordinate descent on the precomputed Gram matrix) needs
the centred float64 design, ``O(M N)`` memory; it is meant for modest sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from prover.attribution.method import FitContext, Method, MethodFit

__all__ = [
    "DatamodelFit",
    "DatamodelMethod",
    "DatamodelOptions",
    "GramStats",
    "fit_datamodel",
    "gram_stats",
    "lambda_grid",
]

FloatArray = NDArray[np.float64]

#: Rows converted to float64 at a time while accumulating statistics.
BLOCK_ROWS = 2048
#: Relative eigenvalue cut-off: directions with ``s <= RCOND * s_max`` are dropped at lambda = 0.
RCOND = 1e-10


@dataclass(frozen=True)
class GramStats:
    """Sufficient statistics of a set of rows, after the fixed shifts of :func:`gram_stats`.

    Attributes:
        n: rows.
        sx: ``sum_m u_m`` ``(N,)``, ``u = x - mu``.
        sy: ``sum_m v_m`` ``(Z,)``, ``v = y - c``.
        gram: ``sum_m u_m u_m^T`` ``(N, N)``.
        xy: ``sum_m u_m v_m^T`` ``(N, Z)``.
        yy: ``sum_m v_m^2`` ``(Z,)``.
    """

    n: int
    sx: FloatArray
    sy: FloatArray
    gram: FloatArray
    xy: FloatArray
    yy: FloatArray

    def __add__(self, other: GramStats) -> GramStats:
        return GramStats(
            self.n + other.n,
            self.sx + other.sx,
            self.sy + other.sy,
            self.gram + other.gram,
            self.xy + other.xy,
            self.yy + other.yy,
        )

    def centred(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(mean_u (N,), mean_v (Z,), G_c (N, N), C_c (N, Z))`` about this part's means."""
        mx, my = self.sx / self.n, self.sy / self.n
        gc = self.gram - self.n * np.outer(mx, mx)
        cc = self.xy - self.n * np.outer(mx, my)
        return mx, my, gc, cc

    def sse(self, b: FloatArray, beta: FloatArray) -> FloatArray:
        """``sum_m (v_m - b - beta^T u_m)^2`` per output; b ``(Z,)``, beta ``(N, Z)``."""
        quad = np.einsum("nz,nz->z", beta, self.gram @ beta)
        return np.asarray(
            self.yy
            - 2.0 * b * self.sy
            - 2.0 * np.einsum("nz,nz->z", beta, self.xy)
            + self.n * b**2
            + 2.0 * b * (self.sx @ beta)
            + quad
        )


def gram_stats(
    x: NDArray[np.int8], y: FloatArray, rows: NDArray[np.intp], *, mu: float, shift: FloatArray
) -> GramStats:
    """Accumulate :class:`GramStats` of ``rows`` block by block.

    Args:
        x: int8 ``(M, N)`` pm-encoded subsets.
        y: float64 ``(M, Z)`` outputs.
        rows: indices of the rows to include.
        mu: ``2p - 1``, subtracted from x (conditioning only; the fit has an intercept).
        shift: ``(Z,)`` constants subtracted from y (conditioning only).
    """
    n_items, n_out = x.shape[1], y.shape[1]
    sx, sy = np.zeros(n_items), np.zeros(n_out)
    gram, xy, yy = np.zeros((n_items, n_items)), np.zeros((n_items, n_out)), np.zeros(n_out)
    for start in range(0, len(rows), BLOCK_ROWS):
        idx = rows[start : start + BLOCK_ROWS]
        u = x[idx].astype(np.float64)
        u -= mu
        v = y[idx] - shift
        sx += u.sum(axis=0)
        sy += v.sum(axis=0)
        gram += u.T @ u
        xy += u.T @ v
        yy += (v * v).sum(axis=0)
    return GramStats(len(rows), sx, sy, gram, xy, yy)


def lambda_grid(scale: float, n_lambdas: int, *, with_zero: bool) -> FloatArray:
    """``scale * logspace(-6, 1, n_lambdas)``, preceded by 0 if ``with_zero``.

    ``scale`` is the mean diagonal of the centred per-row Gram matrix (about
    ``sigma^2 = 4p(1-p)``), so the grid is in units of the design's variance.
    """
    grid = scale * np.logspace(-6.0, 1.0, n_lambdas)
    return np.concatenate([[0.0], grid]) if with_zero else grid


@dataclass(frozen=True, kw_only=True)
class DatamodelFit:
    """A fitted datamodel and how its regularisation was chosen.

    Attributes:
        theta0: float64 ``(Z,)`` intercepts.
        theta: float64 ``(Z, N)`` pm-encoding scores.
        regularization: ``"ridge"`` or ``"lasso"``.
        grid: the candidate strengths ``(L,)``.
        chosen: the chosen strength per output ``(Z,)``.
        validation_mse: held-out MSE per output and strength ``(Z, L)``.
        n_train: rows used to fit each candidate; n_validation: rows scoring it.
    """

    theta0: FloatArray
    theta: FloatArray
    regularization: str
    grid: FloatArray
    chosen: FloatArray
    validation_mse: FloatArray
    n_train: int
    n_validation: int


def _check_inputs(x: NDArray[np.int8], y: FloatArray) -> tuple[NDArray[np.int8], FloatArray]:
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise InvalidArgument(
            f"x must be (M, N) and y (M, Z) with the same M, got {x.shape} and {y.shape}"
        )
    if x.dtype != np.int8:
        raise InvalidArgument(f"x must be int8 in the pm encoding, got dtype {x.dtype}")
    if not np.all(np.isfinite(y)):
        raise InvalidArgument("outputs y must be finite")
    return x, y


def _split(
    m: int, fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    n_val = max(1, round(fraction * m))
    perm = rng.permutation(m)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _ridge_path(
    stats: GramStats,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Eigen-solve the centred problem: ``(mean_u, mean_v, S, V, V^T C_c)``, ``G_c = V S V^T``."""
    mx, my, gc, cc = stats.centred()
    s, v = np.linalg.eigh(gc)
    s = np.maximum(s, 0.0)
    return mx, my, s, v, v.T @ cc


def _ridge_coefs(
    s: FloatArray, vtc: FloatArray, v: FloatArray, n: int, lam: float | FloatArray
) -> FloatArray:
    """``beta (N, Z) = V diag(1/(s + n lam)) V^T C_c``; ``lam`` scalar or per output ``(Z,)``."""
    lam_arr = np.broadcast_to(np.asarray(lam, dtype=np.float64), (vtc.shape[1],))
    denom = s[:, None] + n * lam_arr[None, :]
    cut = RCOND * max(float(s.max()), 1e-300)
    inv = np.where(denom > cut, 1.0 / np.where(denom > cut, denom, 1.0), 0.0)
    return np.asarray(v @ (inv * vtc))


def _fit_ridge(
    x: NDArray[np.int8],
    y: FloatArray,
    *,
    mu: float,
    n_lambdas: int,
    validation_fraction: float,
    rng: np.random.Generator,
) -> DatamodelFit:
    shift = y.mean(axis=0)
    train_rows, val_rows = _split(len(x), validation_fraction, rng)
    st_tr = gram_stats(x, y, train_rows, mu=mu, shift=shift)
    st_va = gram_stats(x, y, val_rows, mu=mu, shift=shift)
    mx, my, s, v, vtc = _ridge_path(st_tr)
    scale = float(s.sum()) / (st_tr.n * x.shape[1])
    grid = lambda_grid(max(scale, 1e-12), n_lambdas, with_zero=True)
    val = np.empty((y.shape[1], len(grid)))
    for k, lam in enumerate(grid):
        beta = _ridge_coefs(s, vtc, v, st_tr.n, float(lam))
        b = my - mx @ beta
        val[:, k] = st_va.sse(b, beta) / st_va.n
    chosen = grid[_argmin_prefer_strong(val)]
    full = st_tr + st_va
    mx, my, beta = _solve_chosen(full, chosen)
    b = my - mx @ beta
    # Undo the shifts: y - c = b + beta^T (x - mu)  =>  y = (c + b - mu sum beta) + beta^T x.
    theta0 = shift + b - mu * beta.sum(axis=0)
    return DatamodelFit(
        theta0=np.asarray(theta0),
        theta=np.ascontiguousarray(beta.T),
        regularization="ridge",
        grid=grid,
        chosen=chosen,
        validation_mse=val,
        n_train=st_tr.n,
        n_validation=st_va.n,
    )


def _solve_chosen(
    stats: GramStats, lambdas: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(mean_u, mean_v, beta (N, Z))`` with output z solved at ``lambdas[z]``.

    One Cholesky factorisation per distinct strength (about 1/10 of the cost of
    an eigendecomposition); a numerically singular system falls back to the
    eigen-solve with its relative cut-off :data:`RCOND`.
    """
    import scipy.linalg

    mx, my, gc, cc = stats.centred()
    beta = np.empty_like(cc)
    eye = np.eye(len(gc))
    for lam in np.unique(lambdas):
        cols = lambdas == lam
        try:
            factor = scipy.linalg.cho_factor(gc + stats.n * lam * eye, check_finite=False)
            diag = np.abs(np.diag(factor[0]))
            if diag.min() ** 2 <= RCOND * diag.max() ** 2:
                raise np.linalg.LinAlgError("ill-conditioned")
            beta[:, cols] = scipy.linalg.cho_solve(factor, cc[:, cols], check_finite=False)
        except np.linalg.LinAlgError:
            s, v = np.linalg.eigh(gc)
            s = np.maximum(s, 0.0)
            beta[:, cols] = _ridge_coefs(s, v.T @ cc[:, cols], v, stats.n, float(lam))
    return mx, my, beta


def _argmin_prefer_strong(val: FloatArray) -> NDArray[np.intp]:
    """Per row, the largest index whose value is within 1e-12 (relative) of the minimum."""
    best = val.min(axis=1, keepdims=True)
    ok = val <= best + 1e-12 * np.abs(best)
    return np.asarray(val.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1))


def _fit_lasso(
    x: NDArray[np.int8],
    y: FloatArray,
    *,
    n_lambdas: int,
    validation_fraction: float,
    rng: np.random.Generator,
) -> DatamodelFit:
    from sklearn.linear_model import lasso_path

    train_rows, val_rows = _split(len(x), validation_fraction, rng)

    def centred(rows: NDArray[np.intp]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        u = x[rows].astype(np.float64)
        v = y[rows]
        mx, my = u.mean(axis=0), v.mean(axis=0)
        return u - mx, v - my, mx, my

    u_tr, v_tr, mx_tr, my_tr = centred(train_rows)
    gram = u_tr.T @ u_tr
    alpha_max = float(np.abs(u_tr.T @ v_tr).max()) / len(u_tr)
    grid = lambda_grid(max(alpha_max, 1e-12), n_lambdas, with_zero=False) / 10.0
    grid = np.sort(grid)[::-1]
    u_va = x[val_rows].astype(np.float64)
    val = np.empty((y.shape[1], len(grid)))
    for z in range(y.shape[1]):
        _, coefs, _ = lasso_path(
            u_tr, v_tr[:, z], alphas=grid, precompute=gram, Xy=u_tr.T @ v_tr[:, z], max_iter=5000
        )
        pred = my_tr[z] + (u_va - mx_tr) @ coefs
        val[z] = ((y[val_rows, z][:, None] - pred) ** 2).mean(axis=0)
    # grid is decreasing; in increasing order a larger index is a stronger penalty.
    chosen = grid[::-1][_argmin_prefer_strong(val[:, ::-1])]
    del u_tr, v_tr, u_va, gram
    u_all, v_all, mx, my = centred(np.arange(len(x)))
    gram_all = u_all.T @ u_all
    theta = np.empty((y.shape[1], x.shape[1]))
    for z in range(y.shape[1]):
        _, coefs, _ = lasso_path(
            u_all,
            v_all[:, z],
            alphas=np.array([chosen[z]]),
            precompute=gram_all,
            Xy=u_all.T @ v_all[:, z],
            max_iter=5000,
        )
        theta[z] = coefs[:, 0]
    theta0 = my - theta @ mx
    return DatamodelFit(
        theta0=np.asarray(theta0),
        theta=theta,
        regularization="lasso",
        grid=grid,
        chosen=chosen,
        validation_mse=val,
        n_train=len(train_rows),
        n_validation=len(val_rows),
    )


def fit_datamodel(
    x: NDArray[np.int8],
    y: FloatArray,
    *,
    p: float,
    rng: np.random.Generator,
    regularization: str = "ridge",
    n_lambdas: int = 24,
    validation_fraction: float = 0.1,
) -> DatamodelFit:
    """Fit a linear datamodel per output, regularisation chosen on held-out rows.

    Args:
        x: int8 ``(M, N)`` pm-encoded subsets (``x_i = +1``: item i used).
        y: float64 ``(M, Z)`` outputs ``f(x_m; r_m)``.
        p: inclusion probability of B_p (for centring only).
        rng: draws the validation split.
        regularization: ``"ridge"`` (streamed) or ``"lasso"``.
        n_lambdas: grid size.
        validation_fraction: rows held out to choose the strength.

    Returns:
        The fit; ``theta`` is in the pm encoding.

    Raises:
        InvalidArgument: bad shapes, dtype, non-finite outputs, fewer than
            ``N + 2`` rows, or an unknown regularisation.
    """
    x, y = _check_inputs(x, y)
    m, n_items = x.shape
    if m < n_items + 2:
        raise InvalidArgument(
            f"a datamodel for N={n_items} items needs at least N + 2 = {n_items + 2} "
            f"retrainings, got M={m}"
        )
    if regularization == "ridge":
        return _fit_ridge(
            x,
            y,
            mu=2.0 * p - 1.0,
            n_lambdas=n_lambdas,
            validation_fraction=validation_fraction,
            rng=rng,
        )
    if regularization == "lasso":
        return _fit_lasso(
            x, y, n_lambdas=n_lambdas, validation_fraction=validation_fraction, rng=rng
        )
    raise InvalidArgument(f"regularization must be 'ridge' or 'lasso', got {regularization!r}")


@dataclass(frozen=True, kw_only=True)
class DatamodelOptions:
    """Options of the ``datamodel`` method.

    Attributes:
        regularization: ``ridge`` (streamed) or ``lasso``.
        validation_fraction: share of the M retrainings held out to choose the
            regularisation strength; the final fit uses all M.
        n_lambdas: size of the log-spaced regularisation grid (plus 0 for ridge).
    """

    regularization: Literal["ridge", "lasso"] = "ridge"
    validation_fraction: float = 0.1
    n_lambdas: int = 24

    def __post_init__(self) -> None:
        if self.regularization not in ("ridge", "lasso"):
            raise InvalidArgument(
                f"regularization must be 'ridge' or 'lasso', got {self.regularization!r}"
            )
        if not 0.0 < self.validation_fraction < 0.5:
            raise InvalidArgument(
                f"validation_fraction must lie in (0, 0.5), got {self.validation_fraction}"
            )
        n = self.n_lambdas
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgument(f"n_lambdas must be >= 1, got {n!r}")


class DatamodelMethod(Method):
    """``datamodel``: regularised least squares on M retrainings (see the module docstring).

    Needs ``M >= N + 2``: the least-squares problem has N + 1 unknowns, and one
    more equation leaves a residual degree of freedom (with fewer, the fit
    interpolates and its err is of the order of ``Var(f)``).
    """

    name: ClassVar[str] = "datamodel"
    options_class: ClassVar[type[DatamodelOptions]] = DatamodelOptions
    config_fields: ClassVar[tuple[str, ...]] = (
        "regularization",
        "validation_fraction",
        "n_lambdas",
    )

    def min_samples(self, n_items: int) -> int:
        return n_items + 2

    def fit(self, ctx: FitContext, options: DatamodelOptions) -> MethodFit:
        x, y = ctx.fit_design()
        task = ctx.task
        ctx.log(f"fitting datamodel (N={task.n_items}, Z={task.n_outputs}, M={ctx.samples})")
        dm = fit_datamodel(
            x,
            y,
            p=ctx.p,
            rng=ctx.streams.generator("validation"),
            regularization=options.regularization,
            n_lambdas=options.n_lambdas,
            validation_fraction=options.validation_fraction,
        )
        best = dm.validation_mse.min(axis=1)
        meta = {
            "regularization": dm.regularization,
            "chosen_strength": dm.chosen.tolist(),
            "validation_mse": best.tolist(),
            "n_train": dm.n_train,
            "n_validation": dm.n_validation,
        }
        return MethodFit(theta0=dm.theta0, theta=dm.theta, meta=meta)
