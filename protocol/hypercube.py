"""The p-biased hypercube: subsets, encodings and rho-correlated partners.

A subset of the N training items is a vector ``x`` in {-1, +1}^N (the *pm
encoding*, ``x_i = +1`` meaning item i is used).  Users see the *mask
encoding* ``m_i = (x_i + 1) / 2`` in {0, 1}; :func:`mask_to_pm` and
:func:`pm_to_mask` convert at the edges.  Inside pacda pm arrays have dtype
``int8`` and masks dtype ``bool``.

Under B_p every coordinate is +1 with probability p, independently, so
``E[x_i] = mu = 2p - 1`` and ``Var[x_i] = sigma^2 = 4p(1-p)`` (docs/design.md §1).

A rho-correlated partner ``x'`` of ``x`` is drawn coordinatewise with
``P(x'_i = +1 | x_i) = p + rho * (1[x_i = +1] - p)``.  For every
``rho in [-rho_max, 1]``, ``rho_max = min(p/(1-p), (1-p)/p)``, this is a valid
probability, ``x' ~ B_p`` marginally and ``E[phi_i(x) phi_i(x')] = rho`` for the
normalised character ``phi_i(x) = (x_i - mu)/sigma``; hence the noise-stability
identity ``E[f(x) f(x')] = sum_k rho^k B_k(f)`` (O'Donnell, *Analysis of Boolean
Functions*, §8.3; Saunshi et al. 2022, arXiv 2210.01072, Thm. 3.2).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument

__all__ = [
    "bias_moments",
    "check_p",
    "check_rho",
    "mask_to_pm",
    "partner_probabilities",
    "pm_to_mask",
    "rho_max",
    "sample_bp",
    "sample_partner",
]

PmArray = NDArray[np.int8]
MaskArray = NDArray[np.bool_]


def check_p(p: float) -> float:
    """Return ``p`` as a float if ``0 < p < 1``, else raise :class:`InvalidArgument`."""
    p = float(p)
    if not (0.0 < p < 1.0) or math.isnan(p):
        raise InvalidArgument(f"p must lie strictly between 0 and 1, got {p!r}")
    return p


def bias_moments(p: float) -> tuple[float, float]:
    """Return ``(mu, sigma)`` of a coordinate of B_p: ``mu = 2p-1``, ``sigma = 2 sqrt(p(1-p))``."""
    p = check_p(p)
    return 2.0 * p - 1.0, 2.0 * math.sqrt(p * (1.0 - p))


def rho_max(p: float) -> float:
    """Largest ``|rho|`` allowed for negative correlation: ``min(p/(1-p), (1-p)/p)``."""
    p = check_p(p)
    return min(p / (1.0 - p), (1.0 - p) / p)


def check_rho(rho: float, p: float) -> float:
    """Return ``rho`` if it lies in ``[-rho_max(p), 1]``, else raise :class:`InvalidArgument`."""
    rho = float(rho)
    lo = -rho_max(p)
    # A relative slack of 1e-12 admits nodes computed in floating point at the edge.
    if math.isnan(rho) or rho > 1.0 + 1e-12 or rho < lo - 1e-12 * max(1.0, abs(lo)):
        raise InvalidArgument(f"rho must lie in [{lo:.6g}, 1] for p={p}, got {rho!r}")
    return min(max(rho, lo), 1.0)


def partner_probabilities(p: float, rho: float) -> tuple[float, float]:
    """Return ``(P(x'_i=+1 | x_i=-1), P(x'_i=+1 | x_i=+1))``.

    Computed in IEEE-754 binary64 exactly as written here (the PRG spec in
    ``docs/prg.md`` relies on it): ``q_minus = p - rho*p``, ``q_plus = p + rho*(1-p)``.
    """
    p = check_p(p)
    rho = check_rho(rho, p)
    q_minus = p - rho * p
    q_plus = p + rho * (1.0 - p)
    return min(max(q_minus, 0.0), 1.0), min(max(q_plus, 0.0), 1.0)


def sample_bp(rng: np.random.Generator, n_samples: int, n_items: int, p: float) -> PmArray:
    """Draw ``n_samples`` independent subsets from B_p.

    Returns:
        int8 array of shape ``(n_samples, n_items)`` in the pm encoding.
    """
    p = check_p(p)
    if n_samples < 0 or n_items < 0:
        raise InvalidArgument(
            f"n_samples and n_items must be non-negative, got {n_samples}, {n_items}"
        )
    u = rng.random((n_samples, n_items))
    return np.where(u < p, np.int8(1), np.int8(-1)).astype(np.int8)


def sample_partner(rng: np.random.Generator, x: PmArray, p: float, rho: float) -> PmArray:
    """Draw a rho-correlated partner of every row of ``x`` (pm encoding, any shape)."""
    q_minus, q_plus = partner_probabilities(p, rho)
    x = np.asarray(x)
    if x.size and not np.all((x == 1) | (x == -1)):
        raise InvalidArgument("x must be in the pm encoding (entries -1 or +1)")
    threshold = np.where(x > 0, q_plus, q_minus)
    u = rng.random(x.shape)
    return np.where(u < threshold, np.int8(1), np.int8(-1)).astype(np.int8)


def mask_to_pm(mask: NDArray[np.bool_] | NDArray[np.integer]) -> PmArray:
    """Convert a 0/1 (or bool) mask to the pm encoding: ``x = 2m - 1``."""
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if m.size and not np.all((m == 0) | (m == 1)):
            raise InvalidArgument("a mask must contain only 0 and 1")
        m = m.astype(np.bool_)
    return np.where(m, np.int8(1), np.int8(-1)).astype(np.int8)


def pm_to_mask(x: PmArray | NDArray[np.integer]) -> MaskArray:
    """Convert the pm encoding to a boolean mask: ``m = (x + 1) / 2``."""
    a = np.asarray(x)
    if a.size and not np.all((a == 1) | (a == -1)):
        raise InvalidArgument("x must be in the pm encoding (entries -1 or +1)")
    return np.asarray(a > 0, dtype=np.bool_)
