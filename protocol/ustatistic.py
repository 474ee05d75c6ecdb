"""The degree-1 U-statistic: an estimate of err with no bias from any degree, and its terms.

The challenge is ``n`` independent points ``x_i`` from B_p (pairs at the node
``rho = 0``: both points of a pair are independent draws).  With the
degree-<=1 characters ``phi(x) = (1, (x_1 - mu)/sigma, ..., (x_N - mu)/sigma)``,
orthonormal under B_p (``mu = 2p - 1``, ``sigma = 2 sqrt(p (1 - p))``), and
residuals ``r = f - g_a`` of the committed scores,

    err(a) = sum_k E[r phi_k]^2 = |m|^2,      m = E[r phi],

and with the kernel ``K_ij = <phi(x_i), phi(x_j)>``

    U = sum_{i != j} v_i v_j K_ij / (n (n - 1)) = sum_i v_i H_i / (n (n - 1)),
    H_i = sum_{j != i} v_j K_ij = <phi_i, S> - v_i |phi_i|^2,   S = sum_j v_j phi_j,

is unbiased for ``|E[v phi]|^2`` at every degree (``E[v_i v_j K_ij] = <E v phi,
E v phi>`` for independent points), computed in ``O(n N)``.  The values are
clipped, ``v = clip(r, -c, c)``, so that a lie moves ``U`` by a bounded amount.
The Verifier's certified bound on err is assembled from four terms, each a
function here that the planner and the decision both call:

* **Corruption and tolerance** (:func:`corruption_bound`,
  :func:`tolerance_bound`).  With ``K'`` the kernel with a zero diagonal,
  ``n (n - 1) U(v) = v^T K' v``.  The Prover sends ``v~ = v - delta``: on the set
  A of altered points (``|A| <= l``, else a uniform spot check catches one of
  them with probability ``>= 1 - delta_spot``, :func:`spot_checks_for`),
  ``delta_i = u_i`` with ``u_i in [-c - v~_i, c - v~_i]`` (both values lie in
  ``[-c, c]``), so ``u_i H_i <= c |H_i| - v~_i H_i``; elsewhere a shift ``s_i`` the
  spot checks tolerate, ``|s_i| <= tau`` (clipping is 1-Lipschitz).  Exactly,

      n (n - 1) (U(v) - U(v~)) = 2 sum_i delta_i H_i + delta^T K' delta,     H_i = (K' v~)_i,

  and ``delta^T K' delta = u^T K'_AA u + 2 s^T K' u + s^T K' s``.  The form
  ``u^T K'_AA u`` has a zero diagonal, so it is affine in each ``u_i`` and its
  largest value over the box ``|u_i| <= 2c`` sits at a vertex: at most ``4 c^2
  min(l (l - 1) kappa, Lambda - l D_min)`` with ``kappa >= max_{i != j} |K_ij|``
  (:func:`kernel_bound`), ``Lambda >= |Phi_A^T s|^2`` over every l-point set
  and signs (:func:`sparse_gram_bound`) and ``D_min = min_i |phi_i|^2`` — the
  cross terms between the altered points, not only each point's own row.
  ``|s^T K' u| <= |Phi^T s| |Phi_A^T u| + sum |s_i u_i| D_max <= 2 c tau (sqrt(n
  lambda Lambda) + l D_max)`` and ``s^T K' s <= n tau^2 lambda``, ``lambda =
  lambda_max(Phi^T Phi)``.  So the corruption term is ``[2 sum_{top l} (c
  |H_i| - v~_i H_i) + 4 c^2 min(...)] / (n (n - 1))`` (the l largest levers
  ``c |H_i| - v~_i H_i``, each at most ``(c + |v~_i|) |H_i|``: a value sent on the
  side that already lowers ``U`` leaves less room to lower it further) and the
  tolerance term ``[2 tau
  sum_i |H_i| + 4 c tau (sqrt(n lambda Lambda) + l D_max) + n tau^2 lambda] / (n
  (n - 1))``.
* **Sampling** (:func:`variance`, :func:`deviation`).  ``Var U = [4 (n - 2)
  zeta_1 + 2 zeta_2] / (n (n - 1))`` with ``zeta_1 = Var(v h(x))``, ``h(x) =
  <phi(x), E[v phi]>``, and ``zeta_2 <= E[v^2 v'^2 K^2]``; the deviation is
  ``z_{1 - delta} sqrt(V)`` (normal approximation, a practical-mode assumption)
  with the larger of the planned and the observed variance.
* **Clipping** (:func:`clipping_tail`).  ``m - E[v phi] = E[(r - v) phi]`` and
  ``|E[(r - v) phi]| = sup_{|w| = 1} E[(r - v) <phi, w>] <= sqrt(T)``, ``T =
  E[(|r| - c)_+^2]``, because ``E <phi, w>^2 = |w|^2`` (orthonormality).  So
  ``err <= (|E v phi| + sqrt(T))^2``; ``T`` is bounded from the runs the
  Verifier trained itself (pilot and spot checks) at the planned level ``c``,
  never at a level moved after the data.

Together (:func:`certified_bound`): with ``U_up = U_sent + corruption +
tolerance + deviation``, ``err <= (sqrt(max(U_up, 0)) + sqrt(T_up))^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import bias_moments, check_p

__all__ = [
    "CLIP_MULTIPLES",
    "KernelPass",
    "UTerms",
    "abs_tail_profile",
    "certified_bound",
    "clipping_tail",
    "corruption_bound",
    "cross_bound",
    "deviation",
    "features",
    "kernel_bound",
    "kernel_pass",
    "kernel_second_moment",
    "row_sums",
    "sparse_gram_bound",
    "spot_checks_for",
    "tolerance_bound",
    "tolerated_for",
    "ustatistic",
    "variance",
]

FloatArray = NDArray[np.float64]

#: Clip levels the planner considers, as multiples a of sqrt(E[q^2]): c = a sqrt(E q^2).
CLIP_MULTIPLES = (2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 14.0, 20.0, 30.0, 50.0)
#: Kernel values averaged per point for the observed E[v^2 v'^2 K^2] (pairs i, i + s).
KERNEL_SHIFTS = 8


def features(x: NDArray[np.int8], p: float) -> FloatArray:
    """``phi(x)`` of every point, ``(n, N + 1)``: the degree-<=1 characters of B_p."""
    mu, sigma = bias_moments(check_p(p))
    x = np.asarray(x)
    if x.ndim != 2:
        raise InvalidArgument(f"points must be (n, N), got shape {x.shape}")
    return np.hstack([np.ones((len(x), 1)), (x.astype(np.float64) - mu) / sigma])


def row_sums(phi: FloatArray, v: FloatArray) -> FloatArray:
    """``H_i = sum_{j != i} v_j K_ij`` for every point and output, ``(n, Z)``."""
    norms = np.einsum("ij,ij->i", phi, phi)
    return np.asarray(phi @ (phi.T @ v) - v * norms[:, None])


def ustatistic(v: FloatArray, h: FloatArray) -> FloatArray:
    """``U = sum_i v_i H_i / (n (n - 1))`` per output, from values and their row sums."""
    n = v.shape[0]
    if n < 2:
        raise InvalidArgument(f"the U-statistic needs at least 2 points, got {n}")
    return np.asarray(np.sum(v * h, axis=0) / (n * (n - 1.0)))


@dataclass(frozen=True)
class KernelPass:
    """What one pass over the points gives (:func:`kernel_pass`), per output where shaped ``Z``.

    Attributes:
        h: ``H_i`` of every point, ``(n, Z)``.
        norms: ``|phi_i|^2``, ``(n,)``.
        eigen: ``lambda_max(Phi^T Phi)`` (with a rounding margin).
        zeta2: observed ``E[v^2 v'^2 K^2]`` (:func:`kernel_second_moment`, within chunks).
    """

    h: FloatArray
    norms: FloatArray
    eigen: float
    zeta2: FloatArray


def kernel_pass(x: NDArray[np.int8], p: float, v: FloatArray, chunk: int = 4096) -> KernelPass:
    """``H``, ``|phi_i|^2``, ``lambda_max(Phi^T Phi)`` and ``zeta_2`` in chunks of points.

    The features of at most ``chunk`` points are held at a time (``O(chunk N)``
    memory instead of ``O(n N)``); the pairs behind ``zeta_2`` are taken within
    each chunk (independent points all the same).
    """
    n = x.shape[0]
    if v.shape[0] != n:
        raise InvalidArgument(f"points ({n}) and values ({v.shape[0]}) differ in number")
    d = x.shape[1] + 1
    s = np.zeros((d, v.shape[1]))
    gram = np.zeros((d, d))
    norms = np.empty(n)
    for start in range(0, n, chunk):
        phi = features(x[start : start + chunk], p)
        s += phi.T @ v[start : start + chunk]
        gram += phi.T @ phi
        norms[start : start + chunk] = np.einsum("ij,ij->i", phi, phi)
    h = np.empty_like(v, dtype=np.float64)
    zeta2 = np.zeros(v.shape[1])
    for start in range(0, n, chunk):
        phi = features(x[start : start + chunk], p)
        vc = v[start : start + chunk]
        h[start : start + chunk] = phi @ s - vc * norms[start : start + chunk, None]
        if len(vc) >= 2:
            zeta2 += kernel_second_moment(phi, vc) * len(vc)
    eigen = float(np.linalg.eigvalsh(gram)[-1]) * (1.0 + 1e-9) + 1e-9
    return KernelPass(h=h, norms=norms, eigen=eigen, zeta2=np.asarray(zeta2 / n))


def kernel_second_moment(phi: FloatArray, v: FloatArray) -> FloatArray:
    """Observed ``E[v^2 v'^2 K^2]`` per output over the pairs ``(i, i + s)``, s = 1..8.

    The points are independent draws, so each such pair is an independent pair
    of points and the mean over them is unbiased for ``E[v^2 v'^2 K^2]``.
    """
    n = phi.shape[0]
    shifts = [s for s in range(1, KERNEL_SHIFTS + 1) if s < n]
    total = np.zeros(v.shape[1])
    for s in shifts:
        partner = (np.arange(n) + s) % n
        k = np.einsum("ij,ij->i", phi, phi[partner])
        total += np.mean((v * v[partner]) ** 2 * (k * k)[:, None], axis=0)
    return np.asarray(total / max(len(shifts), 1))


def variance(n: int, zeta1: FloatArray | float, zeta2: FloatArray | float) -> FloatArray:
    """``Var U = [4 (n - 2) zeta_1 + 2 zeta_2] / (n (n - 1))``."""
    if n < 2:
        raise InvalidArgument(f"the U-statistic needs at least 2 points, got {n}")
    z1, z2 = np.asarray(zeta1, dtype=np.float64), np.asarray(zeta2, dtype=np.float64)
    return np.asarray((4.0 * (n - 2) * z1 + 2.0 * z2) / (n * (n - 1.0)))


def deviation(var: FloatArray | float, delta: float) -> FloatArray:
    """One-sided deviation ``z_{1 - delta} sqrt(V)`` (normal approximation)."""
    if not 0.0 < delta < 1.0:
        raise InvalidArgument(f"delta must lie in (0, 1), got {delta}")
    z = NormalDist().inv_cdf(1.0 - delta)
    return np.asarray(z * np.sqrt(np.maximum(np.asarray(var, dtype=np.float64), 0.0)))


def kernel_bound(n: int, n_items: int, p: float, delta: float) -> float:
    """``kappa >= max_{i != j} |K_ij|`` with probability ``>= 1 - delta`` over the points.

    ``K_ij - 1 = sum_k phi_k(x_i) phi_k(x_j)`` is a sum of N independent terms
    of mean 0 and variance 1, each at most ``beta^2`` in size, ``beta =
    max(sqrt((1 - p)/p), sqrt(p/(1 - p)))``; Bernstein's inequality and a union
    bound over the ``n (n - 1) / 2`` pairs give ``t = beta^2 L / 3 + sqrt((beta^2
    L / 3)^2 + 2 N L)``, ``L = ln(n (n - 1) / delta)``.  The points come from the
    Verifier's seed, drawn after the commitment: the Prover cannot choose them.
    """
    if not 0.0 < delta < 1.0:
        raise InvalidArgument(f"delta must lie in (0, 1), got {delta}")
    p = check_p(p)
    beta2 = max((1.0 - p) / p, p / (1.0 - p))
    log_term = math.log(max(n * (n - 1.0), 2.0) / delta)
    a = beta2 * log_term / 3.0
    return 1.0 + a + math.sqrt(a * a + 2.0 * n_items * log_term)


def sparse_gram_bound(tolerated: int, n: int, n_items: int, p: float, delta: float) -> float:
    """``Lambda >= |Phi_A^T s|^2`` for every l-point set A and signs s, w.p. ``>= 1 - delta``.

    ``|Phi_A^T s|^2 = (sum_i s_i)^2 + sum_k Y_k^2`` with ``Y_k = sum_{i in A} s_i
    phi_k(x_i)``, independent over k; each ``s_i phi_k(x_i)`` is centred with
    range ``1 / sqrt(p (1 - p))``, so ``Y_k / sqrt(l g)`` is 1-sub-Gaussian
    (Hoeffding's lemma, ``g = 1 / (4 p (1 - p))``) and ``E exp(lam Y_k^2 / (l g))
    <= (1 - 2 lam)^{-1/2}``: the chi-square's Chernoff bound holds, so ``sum_k
    Y_k^2 <= l g (N + 2 sqrt(N t) + 2 t)`` with probability ``>= 1 - e^{-t}``
    (Laurent and Massart).  A union bound over the at most ``(2 e n / l)^l``
    pairs (A, s) sets ``t = l ln(2 e n / l) + ln(1 / delta)``.
    """
    ell = int(tolerated)
    if ell <= 0:
        return 0.0
    p = check_p(p)
    g = 1.0 / (4.0 * p * (1.0 - p))
    t = ell * math.log(2.0 * math.e * n / ell) + math.log(1.0 / delta)
    return ell * ell + ell * g * (n_items + 2.0 * math.sqrt(n_items * t) + 2.0 * t)


def cross_bound(
    tolerated: int, clip: FloatArray, kappa: float, gram: float, diag_min: float
) -> FloatArray:
    """``max u^T K'_AA u`` over ``|A| <= l`` and ``|u_i| <= 2c``, per output (module doc).

    ``4 c^2 min(l (l - 1) kappa, Lambda - l D_min)``, ``Lambda`` from
    :func:`sparse_gram_bound` (``inf`` to use the kappa bound alone, and the
    other way round).
    """
    c2 = np.asarray(clip, dtype=np.float64) ** 2
    ell = float(tolerated)
    if ell < 2:  # no pair of altered points
        return np.zeros_like(c2)
    by_kappa = ell * (ell - 1.0) * kappa
    by_gram = max(gram - ell * diag_min, 0.0)
    return np.asarray(4.0 * c2 * min(by_kappa, by_gram))


def corruption_bound(
    h: FloatArray,
    sent: FloatArray,
    tolerated: int,
    clip: FloatArray,
    cross: FloatArray,
) -> FloatArray:
    """Largest fall of ``U`` from ``tolerated`` altered values, per output (module doc).

    Args:
        h: ``H_i`` of the values sent (signed), ``(n, Z)``.
        sent: the clipped values sent, ``(n, Z)``; the true clipped value differs by
            ``u_i in [-c - v~_i, c - v~_i]``, so point i's lever is ``c |H_i| - v~_i H_i``.
        tolerated: ``l``, the altered points the spot checks may have missed.
        clip: the clip level of every output, ``(Z,)``.
        cross: :func:`cross_bound` at ``l``, ``(Z,)``.
    """
    n = h.shape[0]
    c = np.asarray(clip, dtype=np.float64)
    if tolerated <= 0:
        return np.zeros_like(c)
    ell = min(int(tolerated), n)
    lever = np.maximum(c[None, :] * np.abs(h) - sent * h, 0.0)
    top = np.sum(-np.partition(-lever, ell - 1, axis=0)[:ell], axis=0)
    return np.asarray((2.0 * top + np.asarray(cross)) / (n * (n - 1.0)))


def tolerance_bound(
    h_abs: FloatArray,
    tau: float,
    eigen: float,
    *,
    clip: FloatArray | None = None,
    tolerated: int = 0,
    gram: float = 0.0,
    diag_max: float = 0.0,
) -> FloatArray:
    """Largest fall of ``U`` when every value moves by at most ``tau``, per output.

    With ``tolerated`` altered points (clip levels ``clip``), the cross term
    ``2 s^T K' u`` between the shift and the alterations is included.
    """
    n = h_abs.shape[0]
    total = 2.0 * tau * np.sum(h_abs, axis=0) + n * tau * tau * eigen
    if clip is not None and tolerated > 0:
        c = np.asarray(clip, dtype=np.float64)
        total = total + 4.0 * c * tau * (math.sqrt(n * eigen * gram) + tolerated * diag_max)
    return np.asarray(total / (n * (n - 1.0)))


def spot_checks_for(n: int, tolerated: int, delta: float) -> int:
    """Fewest uniform draws among n points catching one of ``l + 1`` altered w.p. ``>= 1 - delta``.

    Drawn without replacement, k draws miss ``m = l + 1`` altered points with
    probability ``C(n - m, k) / C(n, k)`` (exact, decreasing in k); the
    smallest k with that at most delta, by bisection on its logarithm.
    """
    m = tolerated + 1
    if m >= n:
        return 1
    log_delta = math.log(delta)

    def log_miss(k: int) -> float:
        return (
            math.lgamma(n - m + 1) - math.lgamma(n - m - k + 1)
            - math.lgamma(n + 1) + math.lgamma(n - k + 1)
        )  # fmt: skip

    if n - m < 1 or log_miss(n - m) > log_delta:
        return n - m + 1  # every unaltered point and one more: certain to catch one
    lo, hi = 0, n - m  # log_miss(lo) > log_delta >= log_miss(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if log_miss(mid) <= log_delta else (mid, hi)
    return hi


def tolerated_for(n: int, spot_checks: int, delta: float) -> int:
    """The altered points ``l`` that ``spot_checks`` uniform draws tolerate.

    The least l with :func:`spot_checks_for` ``(n, l, delta) <= spot_checks``
    (the count falls as l grows): more than l altered points are caught with
    probability ``>= 1 - delta``.  ``n`` (no guarantee) when there are too few
    draws even for that.
    """
    if spot_checks_for(n, n - 1, delta) > spot_checks:
        return n
    lo, hi = -1, n - 1  # spot_checks_for(n, hi) <= k < spot_checks_for(n, lo), lo = -1 virtual
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if spot_checks_for(n, mid, delta) <= spot_checks else (mid, hi)
    return hi


def abs_tail_profile(residuals: FloatArray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and spread of ``(|q| / sqrt(E q^2) - a)_+^2`` at every clip multiple a, pooled.

    ``residuals`` ``(n, Z)``; each output is scaled by its own ``sqrt(mean q^2)``.
    """
    q = np.asarray(residuals, dtype=np.float64)
    scale = np.sqrt(np.maximum(np.mean(q * q, axis=0), 1e-300))
    u = np.abs(q) / scale[None, :]
    means, spreads = [], []
    for a in CLIP_MULTIPLES:
        w = np.maximum(u - a, 0.0) ** 2
        means.append(float(w.mean()))
        spreads.append(float(w.std(ddof=1)) if w.size > 1 else 0.0)
    return tuple(means), tuple(spreads)


def clipping_tail(residuals: FloatArray, clip: FloatArray, delta: float) -> FloatArray:
    """Upper confidence bound on ``T = E[(|r| - c)_+^2]`` per output from verified runs.

    ``mean + z_{1 - delta} sd / sqrt(n)`` over the runs the Verifier trained
    itself (normal approximation: a practical-mode assumption).
    """
    r = np.asarray(residuals, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        return np.full(np.shape(clip), math.inf)
    w = np.maximum(np.abs(r) - np.asarray(clip)[None, :], 0.0) ** 2
    z = NormalDist().inv_cdf(1.0 - delta)
    return np.asarray(w.mean(axis=0) + z * w.std(axis=0, ddof=1) / math.sqrt(r.shape[0]))


def certified_bound(u_up: FloatArray | float, tail: FloatArray | float) -> FloatArray:
    """``(sqrt(max(U_up, 0)) + sqrt(T))^2``: err's bound from ``|E v phi|^2 <= U_up``."""
    up = np.sqrt(np.maximum(np.asarray(u_up, dtype=np.float64), 0.0))
    return np.asarray((up + np.sqrt(np.maximum(np.asarray(tail, dtype=np.float64), 0.0))) ** 2)


@dataclass(frozen=True)
class UTerms:
    """One audit's numbers, per output ``(Z,)``: the estimate and every term of its bound."""

    estimate: FloatArray
    corruption: FloatArray
    tolerance: FloatArray
    deviation: FloatArray
    tail: FloatArray
    observed_variance: FloatArray

    @property
    def upper(self) -> FloatArray:
        """The certified bound on err (:func:`certified_bound`)."""
        u_up = self.estimate + self.corruption + self.tolerance + self.deviation
        return certified_bound(u_up, self.tail)
