"""Empirical influence: differences of conditional means (Feldman & Zhang 2020).

For item i the empirical influence on output z is the difference of the mean
output over retrainings that used item i and those that did not; in the pm
encoding a linear datamodel's score is half of it:

    theta_i = (mean{f_z(x_m) : x_mi = +1} - mean{f_z(x_m) : x_mi = -1}) / 2,

the plug-in estimate of the optimal ``theta_i = fhat_{i}/sigma`` (docs/design.md §1).
Unlike least squares it ignores the correlation between items in the sample,
so its error falls like ``Var(f) N / M`` rather than ``B_{>=2} N / M``.  The
intercept makes the datamodel's mean over the sample equal the sample mean:
``theta0 = mean(f_z) - xbar . theta``.

Memory is ``O(N Z)`` beyond the inputs: the sums are accumulated block by block.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from prover.attribution.method import FitContext, Method, MethodFit, NoOptions

__all__ = ["EmpiricalInfluenceMethod", "fit_empirical_influence"]

FloatArray = NDArray[np.float64]
_BLOCK_ROWS = 4096


def fit_empirical_influence(x: NDArray[np.int8], y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Empirical-influence scores in the pm encoding.

    Args:
        x: int8 ``(M, N)`` pm-encoded subsets.
        y: float64 ``(M, Z)`` outputs.

    Returns:
        ``(theta0 (Z,), theta (Z, N))``, float64.

    Raises:
        InvalidArgument: bad shapes or dtype, non-finite outputs, or an item that
            is used in every subset or in none (its influence is undefined).
    """
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
    m, n_items = x.shape
    shift = y.mean(axis=0) if m else np.zeros(y.shape[1])
    n_in = np.zeros(n_items)
    s_in = np.zeros((n_items, y.shape[1]))
    for start in range(0, m, _BLOCK_ROWS):
        used = (x[start : start + _BLOCK_ROWS] > 0).astype(np.float64)
        n_in += used.sum(axis=0)
        s_in += used.T @ (y[start : start + _BLOCK_ROWS] - shift)
    n_out = m - n_in
    bad = np.flatnonzero((n_in == 0) | (n_out == 0))
    if bad.size:
        raise InvalidArgument(
            f"empirical influence needs every item both used and unused among the M={m} "
            f"subsets; {bad.size} item(s) (first: {int(bad[0])}) are not; raise --samples"
        )
    s_out = -s_in  # the shifted outputs sum to zero over all rows
    theta = 0.5 * (s_in / n_in[:, None] - s_out / n_out[:, None])  # (N, Z)
    xbar = 2.0 * n_in / m - 1.0
    theta0 = shift - xbar @ theta
    return np.asarray(theta0), np.ascontiguousarray(theta.T)


class EmpiricalInfluenceMethod(Method):
    """``empirical-influence``: differences of conditional means; no options.

    Needs ``M >= 4`` (both classes of every item must also occur, checked on
    the drawn subsets by :func:`fit_empirical_influence`).
    """

    name: ClassVar[str] = "empirical-influence"

    def min_samples(self, n_items: int) -> int:
        return 4

    def fit(self, ctx: FitContext, options: NoOptions) -> MethodFit:
        x, y = ctx.fit_design()
        task = ctx.task
        ctx.log(
            f"fitting empirical-influence (N={task.n_items}, Z={task.n_outputs}, M={ctx.samples})"
        )
        theta0, theta = fit_empirical_influence(x, y)
        return MethodFit(theta0=theta0, theta=theta, meta={})
