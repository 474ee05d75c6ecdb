"""Where a residual's Fourier weight lies: noise-stability bounds and a degree-1 U-statistic.

Two measurements of ``q = f - g_a`` under B_p (docs/protocol.md, "The weight
above degree 2, measured"); neither is part of an audit's decision.

**Noise-stability bounds.**  With ``y`` rho-correlated with ``x`` and
independent training seeds,

    C(rho) = E[q(x) q(y)] = sum_k rho^k B_k(qbar),     qbar(x) = E_seed q(x, seed),

so a curve measured at a few rho (each value with a standard error) bounds
any sum of degree weights: :func:`weight_bounds` returns the least and the
largest ``sum_{k in S} B_k`` over non-negative spectra (degrees ``0..K`` and a
weight ``B_inf`` seen only at ``rho = 1``, which stands for every degree above
K) whose curve lies within ``z`` standard errors of every measured value, with
``z`` the normal quantile at ``delta / (2 J)`` (Bonferroni over the J nodes and
both sides).  If every measured value lies within its interval (probability
``>= 1 - delta`` under the normal approximation), the true weight lies in the
returned interval.

**Degree-1 U-statistic.**  For independent ``x, x'`` from B_p and
``phi(x) = (1, (x_1 - mu)/sigma, ..., (x_N - mu)/sigma)`` (orthonormal),

    B_0(qbar) + B_1(qbar) = |E[q phi]|^2 = E[q(x) q(x') <phi(x), phi(x')>],

so over n independent subsets

    U = (|S|^2 - D) / (n (n - 1)),   S = sum_i q_i phi(x_i),   D = sum_i q_i^2 |phi(x_i)|^2,

is unbiased for ``B_0 + B_1`` (err, for the scores' residual) with no bias from
any degree, at ``O(n N)`` cost.  Its variance is about
``2 (N + 1) E[q^2]^2 / n^2 + 4 Var(q h) / n`` with ``h = qbar^{<=1}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog, nnls

from protocol.errors import InvalidArgument
from protocol.hypercube import bias_moments

__all__ = [
    "Curve",
    "degree_fit",
    "degree_one_features",
    "degree_one_ustatistic",
    "design",
    "weight_bounds",
]

FloatArray = NDArray[np.float64]
#: Degrees modelled one by one; the weight above is one variable seen only at rho = 1.
MAX_DEGREE = 100


@dataclass(frozen=True)
class Curve:
    """A measured noise-stability curve: ``C(rho_j)`` and its standard errors."""

    rhos: tuple[float, ...]
    values: tuple[float, ...]
    errors: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.rhos) == len(self.values) == len(self.errors) >= 1:
            raise InvalidArgument(
                f"a curve needs as many values and errors as nodes, got {len(self.rhos)}, "
                f"{len(self.values)}, {len(self.errors)}"
            )
        if any(not -1.0 <= r <= 1.0 for r in self.rhos):
            raise InvalidArgument(f"every rho must lie in [-1, 1], got {self.rhos}")
        if any(not (e >= 0 and math.isfinite(e)) for e in self.errors):
            raise InvalidArgument(f"standard errors must be finite and >= 0, got {self.errors}")


def design(rhos: Iterable[float], max_degree: int = MAX_DEGREE) -> FloatArray:
    """``rho_j^k`` for ``k = 0..max_degree``, then the column of ``B_inf`` (1 at rho = 1)."""
    r = np.asarray(tuple(rhos), dtype=np.float64)
    powers = r[:, None] ** np.arange(max_degree + 1)[None, :]
    return np.hstack([powers, (r == 1.0).astype(np.float64)[:, None]])


def weight_bounds(
    curve: Curve, degrees: Iterable[int] | str, *, delta: float = 0.05
) -> tuple[float, float]:
    """Least and largest ``sum_{k in degrees} B_k`` of the spectra the curve allows.

    Args:
        curve: the measured curve.
        degrees: degrees to sum (each in ``0..MAX_DEGREE``), or ``"tail"`` for
            every degree ``>= 3`` (``B_inf`` included).
        delta: the intervals hold together with probability ``>= 1 - delta``.

    Raises:
        InvalidArgument: no non-negative spectrum fits the curve (a measurement
            that contradicts ``B_k >= 0``: too few pairs, or not a noise-stability curve).
    """
    if not 0.0 < delta < 1.0:
        raise InvalidArgument(f"delta must lie in (0, 1), got {delta}")
    a = design(curve.rhos)
    if degrees == "tail":
        target = np.zeros(a.shape[1])
        target[3:] = 1.0
    elif isinstance(degrees, str):
        raise InvalidArgument(f"degrees must be 'tail' or a set of degrees, got {degrees!r}")
    else:
        chosen = sorted(set(degrees))
        if not chosen or chosen[0] < 0 or chosen[-1] > MAX_DEGREE:
            raise InvalidArgument(f"degrees must lie in 0..{MAX_DEGREE}, got {chosen}")
        target = np.zeros(a.shape[1])
        target[chosen] = 1.0
    c, e = np.asarray(curve.values), np.asarray(curve.errors)
    z = NormalDist().inv_cdf(1.0 - delta / (2 * len(c)))
    a_ub, b_ub = np.vstack([a, -a]), np.concatenate([c + z * e, -(c - z * e)])
    lo = linprog(target, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    hi = linprog(-target, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if not (lo.success and hi.success):
        raise InvalidArgument(
            "no non-negative spectrum fits the measured curve within its intervals "
            f"(values {curve.values}, errors {curve.errors})"
        )
    return float(lo.fun), float(-hi.fun)


def degree_fit(curve: Curve, degree: int) -> tuple[FloatArray, float, float]:
    """Least-squares non-negative spectrum up to ``degree`` (weighted by the errors).

    Returns ``(B_0..B_degree, B_inf, chi-square)``: the weights, the weight seen
    only at rho = 1 (everything above ``degree``), and the chi-square of the fit
    on ``J - degree - 2`` degrees of freedom.  A point estimate, not a bound.
    """
    if not 0 <= degree <= MAX_DEGREE:
        raise InvalidArgument(f"degree must lie in 0..{MAX_DEGREE}, got {degree}")
    e = np.maximum(np.asarray(curve.errors), 1e-300)
    a = design(curve.rhos, degree)
    weights, residual = nnls(a / e[:, None], np.asarray(curve.values) / e)
    return np.asarray(weights[:-1]), float(weights[-1]), float(residual**2)


def degree_one_features(x: NDArray[np.int8], p: float) -> FloatArray:
    """``phi(x) = (1, (x_1 - mu)/sigma, ..., (x_N - mu)/sigma)``, ``(n, N + 1)``.

    The characters of degree <= 1, orthonormal under B_p.
    """
    mu, sigma = bias_moments(p)
    return np.hstack([np.ones((len(x), 1)), (np.asarray(x, dtype=np.float64) - mu) / sigma])


def degree_one_ustatistic(
    x: NDArray[np.int8], q: FloatArray, p: float, *, groups: int = 20
) -> tuple[FloatArray, FloatArray]:
    """Unbiased ``B_0 + B_1`` of every output from independent subsets, and a jackknife error.

    Args:
        x: int8 ``(n, N)`` pm-encoded subsets, independent draws from B_p.
        q: ``(n, Z)`` residuals there, each point trained with its own seed.
        p: inclusion probability.
        groups: the jackknife leaves out one of this many groups of points at a time.

    Returns:
        ``(U, standard error)``, each of shape ``(Z,)``.
    """
    x = np.asarray(x)
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2 or x.ndim != 2 or len(x) != len(q):
        raise InvalidArgument(f"x (n, N) and q (n, Z) must share n, got {x.shape} and {q.shape}")
    if not 2 <= groups <= len(x) // 2:
        raise InvalidArgument(f"groups must lie in [2, n/2] for n={len(x)}, got {groups}")
    phi = degree_one_features(x, p)
    norms = np.sum(phi**2, axis=1)

    def ustat(rows: NDArray[np.bool_]) -> FloatArray:
        n = int(rows.sum())
        s = phi[rows].T @ q[rows]
        d = norms[rows] @ q[rows] ** 2
        return np.asarray((np.sum(s**2, axis=0) - d) / (n * (n - 1)))

    label = np.arange(len(x)) % groups
    leave_out = np.stack([ustat(label != g) for g in range(groups)])
    spread = np.sum((leave_out - leave_out.mean(axis=0)) ** 2, axis=0)
    return ustat(np.ones(len(x), dtype=bool)), np.sqrt((groups - 1) / groups * spread)
