"""Exact p-biased Fourier analysis by enumeration of {-1, +1}^N (small N).

Ground truth for tests.  Points of the cube are indexed by an integer whose
bit i is set iff ``x_i = +1``; Fourier coefficients are indexed the same way by
the bitmask of the set T.  Under B_p (docs/design.md §1):

    pi(x) = prod_i p^{[x_i=+1]} (1-p)^{[x_i=-1]},
    phi_T(x) = prod_{i in T} (x_i - mu)/sigma,
    fhat_T = sum_x pi(x) f(x) phi_T(x),     B_k = sum_{|T|=k} fhat_T^2.

The transform factorises over coordinates, so it costs O(N 2^N).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import bias_moments, check_p, partner_probabilities

__all__ = [
    "MAX_ENUMERATION_ITEMS",
    "cube_points",
    "cube_probabilities",
    "degree_weights",
    "exact_err",
    "fourier_coefficients",
    "noise_stability",
    "optimal_datamodel",
    "set_sizes",
]

MAX_ENUMERATION_ITEMS = 16


def _check_n(n_items: int) -> None:
    if not 1 <= n_items <= MAX_ENUMERATION_ITEMS:
        raise InvalidArgument(
            f"exact enumeration needs 1 <= N <= {MAX_ENUMERATION_ITEMS}, got N={n_items}"
        )


def cube_points(n_items: int) -> NDArray[np.int8]:
    """All 2^N points, int8 ``(2^N, N)`` pm encoding; row index bit i <=> ``x_i = +1``."""
    _check_n(n_items)
    idx = np.arange(2**n_items)[:, None]
    bits = (idx >> np.arange(n_items)[None, :]) & 1
    return (2 * bits - 1).astype(np.int8)


def set_sizes(n_items: int) -> NDArray[np.int64]:
    """``|T|`` for every bitmask T: int ``(2^N,)``."""
    _check_n(n_items)
    idx = np.arange(2**n_items)
    return np.array([bin(int(t)).count("1") for t in idx], dtype=np.int64)


def cube_probabilities(n_items: int, p: float) -> NDArray[np.float64]:
    """``pi(x)`` under B_p for every point: float64 ``(2^N,)``."""
    p = check_p(p)
    x = cube_points(n_items)
    return np.asarray(np.where(x > 0, p, 1.0 - p).prod(axis=1), dtype=np.float64)


def _apply_per_coordinate(
    values: NDArray[np.float64], n_items: int, matrix: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Apply the 2x2 ``matrix`` along every coordinate axis of ``values`` (2^N, ...)."""
    extra = values.shape[1:]
    # Reshape so axis i of the tensor is coordinate i (C order: last axis = bit 0).
    t = values.reshape((2,) * n_items + extra)
    for axis in range(n_items):
        t = np.moveaxis(np.tensordot(matrix, t, axes=([1], [axis])), 0, axis)
    return t.reshape(values.shape)


def fourier_coefficients(values: NDArray[np.float64], p: float) -> NDArray[np.float64]:
    """Exact ``fhat_T`` for every T.

    Args:
        values: ``f(x)`` for every cube point, shape ``(2^N,)`` or ``(2^N, Z)``.
        p: inclusion probability.
    Returns:
        Array of the same shape, indexed by the bitmask of T.
    """
    values = np.asarray(values, dtype=np.float64)
    n_items = _log2_rows(values)
    mu, sigma = bias_moments(p)
    # Row 0: E over x_i; row 1: E over x_i of phi(x_i).  Columns: x_i = -1, +1.
    m = np.array([[1.0 - p, p], [(1.0 - p) * (-1.0 - mu) / sigma, p * (1.0 - mu) / sigma]])
    return _apply_per_coordinate(values, n_items, m)


def degree_weights(coefficients: NDArray[np.float64]) -> NDArray[np.float64]:
    """``B_k = sum_{|T|=k} fhat_T^2`` for k = 0..N: shape ``(N+1,)`` or ``(N+1, Z)``."""
    coefficients = np.asarray(coefficients, dtype=np.float64)
    n_items = _log2_rows(coefficients)
    sizes = set_sizes(n_items)
    out = np.zeros((n_items + 1, *coefficients.shape[1:]))
    np.add.at(out, sizes, coefficients**2)
    return out


def optimal_datamodel(
    values: NDArray[np.float64], p: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Optimal linear datamodel of ``f`` (one output): ``(theta0, theta (N,))``, pm encoding.

    ``theta_i = fhat_{i}/sigma`` and ``theta0 = fhat_{} - mu sum_i theta_i`` (docs/design.md §1).
    """
    values = np.asarray(values, dtype=np.float64)
    n_items = _log2_rows(values)
    mu, sigma = bias_moments(p)
    c = fourier_coefficients(values, p)
    theta = np.array([c[1 << i] for i in range(n_items)]) / sigma
    return np.asarray(c[0] - mu * theta.sum(axis=0)), theta


def exact_err(
    values: NDArray[np.float64], p: float, theta0: float, theta: NDArray[np.float64]
) -> float:
    """``err(a) = B_0(f - g_a) + B_1(f - g_a)`` for one output, by enumeration."""
    values = np.asarray(values, dtype=np.float64)
    n_items = _log2_rows(values)
    g = theta0 + cube_points(n_items).astype(np.float64) @ np.asarray(theta, dtype=np.float64)
    w = degree_weights(fourier_coefficients(values - g, p))
    return float(w[0] + w[1])


def noise_stability(values: NDArray[np.float64], p: float, rho: float) -> NDArray[np.float64]:
    """``h(rho) = E[f(x) f(x')]`` with x ~ B_p and x' its rho-correlated partner, exactly.

    Returns a scalar array, or shape ``(Z,)`` for multi-output ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    n_items = _log2_rows(values)
    q_minus, q_plus = partner_probabilities(p, rho)
    kernel = np.array([[1.0 - q_minus, q_minus], [1.0 - q_plus, q_plus]])  # K[x_i, x'_i]
    smoothed = _apply_per_coordinate(values, n_items, kernel)  # E[f(x') | x]
    pi = cube_probabilities(n_items, p)
    return np.asarray(np.tensordot(pi, values * smoothed, axes=(0, 0)))


def _log2_rows(values: NDArray[np.float64]) -> int:
    n_rows = values.shape[0]
    n_items = int(n_rows).bit_length() - 1
    if n_rows < 2 or 2**n_items != n_rows:
        raise InvalidArgument(f"expected 2^N rows of values, got {n_rows}")
    _check_n(n_items)
    return n_items
