"""Calibrating scores on a ranking scale: per output, an intercept and one scale factor.

Attribution tools (TRAK, dattri, Kronfluence, ...) give scores whose ranking is
meaningful but whose scale is their own.  Given K retrainings ``(x_k, f(x_k))``
with ``x_k ~ B_p`` (pm encoding) and scores ``theta (Z, N)``, the calibrated
datamodel of output z is ``g_z(x) = a_z + s_z theta_z . x`` with

    (a_z, s_z) = argmin_{a, s} sum_k (f_z(x_k) - a - s h_z(x_k))^2,   h_z(x) = theta_z . x,

ordinary least squares of f_z on ``[1, h_z]``:
``s_z = cov(h_z, f_z) / var(h_z)``, ``a_z = mean(f_z) - s_z mean(h_z)``.
If ``theta_z`` is proportional to the optimal linear datamodel's scores, the
fit recovers that datamodel up to sampling error (at p = 1/2 the standard
errors are about ``sqrt(B>=2 / K)`` for the intercept and
``sqrt(B>=2 / (K B_1))`` relative for the scale, docs/scores.md); otherwise it
is the best rescaling of the ranking, and an audit decides whether it is
within epsilon of the optimal datamodel.

Used by ``pacda-prover import-scores --calibrate K`` and by the ``trak`` method.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument

__all__ = ["calibrate"]

FloatArray = NDArray[np.float64]


def calibrate(theta: FloatArray, x: NDArray[np.int8], f: FloatArray) -> dict[str, FloatArray]:
    """Per output z, least squares of ``f_z`` on ``[1, h_z]`` with ``h_z = x theta_z``.

    Args:
        theta: float64 ``(Z, N)`` scores, pm encoding.
        x: int8 ``(K, N)`` pm subsets, K >= 3.
        f: float64 ``(K, Z)`` outputs of the models trained on them.

    Returns:
        ``scale`` and ``intercept`` ``(Z,)``; ``residual_mean_square`` (RSS / (K - 2)),
        ``var_f`` (sample variance of f) and ``r2`` (1 - RSS / TSS), all ``(Z,)``.

    Raises:
        InvalidArgument: K < 3, mismatched shapes, or an output whose scores are
            not all zero but whose predictor is constant on the K subsets.
    """
    k = x.shape[0]
    if k < 3 or f.shape != (k, theta.shape[0]) or x.shape[1] != theta.shape[1]:
        raise InvalidArgument(
            f"calibration needs K >= 3 subsets x (K, N) and outputs f (K, Z) for theta (Z, N) = "
            f"{theta.shape}, got x {x.shape} and f {f.shape}"
        )
    h = x.astype(np.float64) @ theta.T  # (K, Z)
    n_out = theta.shape[0]
    scale, intercept = np.zeros(n_out), np.zeros(n_out)
    rms, var_f, r2 = np.zeros(n_out), np.zeros(n_out), np.zeros(n_out)
    for z in range(n_out):
        hz, fz = h[:, z], f[:, z]
        hc, fc = hz - hz.mean(), fz - fz.mean()
        shh = float(hc @ hc)
        if shh <= 1e-12 * max(1.0, float(hz @ hz)):
            if np.any(theta[z] != 0.0):
                raise InvalidArgument(
                    f"output {z}: the predictor theta_z . x is constant on the {k} calibration "
                    "subsets; calibrate on more subsets"
                )
            s = 0.0  # all-zero scores: only the intercept is fitted
        else:
            s = float(hc @ fc) / shh
        a = float(fz.mean() - s * hz.mean())
        resid = fz - a - s * hz
        rss = float(resid @ resid)
        tss = float(fc @ fc)
        scale[z], intercept[z] = s, a
        rms[z] = rss / (k - 2)
        var_f[z] = tss / (k - 1)
        r2[z] = 1.0 - rss / tss if tss > 0 else 0.0
    return {
        "scale": scale,
        "intercept": intercept,
        "residual_mean_square": rms,
        "var_f": var_f,
        "r2": r2,
    }
