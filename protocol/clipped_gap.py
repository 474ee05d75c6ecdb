"""The clipped direct gap: committed-mode statistic of practical planning.

For every output z the Verifier has, at each challenge pair ``(x, x')`` of
node ``rho_j``, the residuals ``q = f(x) - g_a(x)`` and ``q' = f(x') - g_a(x')``
and estimates ``err_z(a) = B_0(q) + B_1(q)`` by

    err_hat_z = sum_j w_j * mean_{i in node j} clip(q_i q'_i, -C_z, C_z)

with a *per-output clip level* ``C_z = kappa * m2_z`` (``m2_z`` the Verifier's
own estimate of ``E[q_z^2]``).  The terms of its accounting, each a function
of plain numbers, live here so that the planner (:mod:`protocol.plan_clipped`)
and the decision (:mod:`protocol.decision`) call the *same* functions:

* **Clipping bias.**  ``|clip(P) - P| = (|P| - C)_+`` and ``|q q'| <= (q^2 +
  q'^2) / 2``, so by convexity ``(|q q'| - C)_+ <= ((q^2 - C)_+ + (q'^2 -
  C)_+) / 2``; x and x' are both B_p-distributed with independent seeds, so
  ``|E clip(q q') - E q q'| <= T(C) := E[(q^2 - C)_+]`` at every node, and the
  statistic's expectation moves by at most ``||w||_1 T(C)`` (:func:`clip_bias`).
  ``T`` is a mean over *single* runs, so every run the Verifier trained itself
  (pilot and spot checks) estimates it (:func:`tail_mean_upper`).
* **Leverage.**  Every point lies in exactly one pair, and a clipped product
  moves by at most ``2 C`` whatever the Prover sends, so m corrupted pairs move
  ``err_hat_z`` by at most ``m * 2 C_z max_j |w_j| / n_j`` (:func:`leverage`):
  the range of the outputs no longer enters, only the clip level.
* **Sampling.**  Per node the clipped products are i.i.d. in ``[-C, C]``; the
  statistic is a weighted sum of node means with variance
  ``V = sum_j w_j^2 Var_j / n_j`` (:func:`variance_sum`), and its one-sided
  deviation at confidence ``1 - delta`` is ``z_{1-delta} sqrt(V)`` (normal
  approximation over thousands of bounded products; :func:`deviation`), with
  the planned ``V`` or, when larger, the observed one.  The planned per-node variance is
  ``Var(q q') <= E[q^2 q'^2] <= m2^2 + |rho| (m4 - m2^2)`` from the Verifier's
  own second and fourth moments of q (:func:`node_second_moment_bound`,
  inflated); the decision uses the larger of that and the observed variance.

Practical-mode assumptions (stated in every plan table and report): the
Verifier's own runs represent the moments ``E[q^2]``, ``E[q^4]`` (inflated)
and the tail ``T(C)`` (upper confidence bound over every verified run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

from protocol.errors import InvalidArgument

__all__ = [
    "CLIP_MULTIPLES",
    "ESCALATION_MULTIPLES",
    "FIRST_STAGE_SHARE",
    "LATER_STAGES",
    "chi2_tail_mean",
    "clip_bias",
    "clipped_products",
    "deviation",
    "leverage",
    "node_estimate",
    "node_second_moment_bound",
    "observed_variance_sum",
    "planned_variance_sum",
    "stage_deltas",
    "tail_mean_upper",
    "tail_upper",
    "variance_sum",
]

FloatArray = NDArray[np.float64]

#: Clip levels the planner considers, as multiples kappa of E[q^2].
CLIP_MULTIPLES = (6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0, 80.0, 120.0, 160.0)
#: Second stage (:func:`protocol.decision.escalation`): clip levels as multiples of the planned.
ESCALATION_MULTIPLES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: Share of each failure probability (spot checks, sampling, tail) kept by the first stage.
FIRST_STAGE_SHARE = 0.9
#: Stages that may follow a first-stage rejection, sharing the rest equally.
LATER_STAGES = 2


def stage_deltas(
    spot: float, sampling: float, tail: float, stage: int
) -> tuple[float, float, float]:
    """Failure probabilities of ``stage`` (1, 2, ...) from the first stage's.

    The first stage holds :data:`FIRST_STAGE_SHARE` of each budget; each of the
    :data:`LATER_STAGES` later stages an equal part of the rest — spot checks as
    one event per stage (the first ``K_s(|L|)`` draws of the Verifier's random
    order missing the lies, whatever clip level and however many draws the
    data led to), sampling and tail split over the :data:`ESCALATION_MULTIPLES`
    a stage may choose among after seeing the data.
    """
    if stage == 1:
        return spot, sampling, tail
    if not 2 <= stage <= 1 + LATER_STAGES:
        raise InvalidArgument(f"stage must be 1 .. {1 + LATER_STAGES}, got {stage}")
    rest = (1.0 - FIRST_STAGE_SHARE) / FIRST_STAGE_SHARE / LATER_STAGES
    g = len(ESCALATION_MULTIPLES)
    return spot * rest, sampling * rest / g, tail * rest / g


def chi2_tail_mean(kappa: float) -> float:
    """``E[(X - kappa)_+]`` for ``X ~ chi^2_1``: a Gaussian residual's tail, in units of E q^2.

    With ``a = sqrt(kappa)``: ``2 (a phi(a) + (1 - kappa)(1 - Phi(a)))``.
    """
    if kappa < 0:
        raise InvalidArgument(f"kappa must be >= 0, got {kappa}")
    a = math.sqrt(kappa)
    normal = NormalDist()
    return max(0.0, 2.0 * (a * normal.pdf(a) + (1.0 - kappa) * (1.0 - normal.cdf(a))))


def tail_mean_upper(values: FloatArray, level: float, delta: float) -> float:
    """Upper confidence bound on ``T(level) = E[(v - level)_+]`` from i.i.d. samples ``v``.

    ``mean + z_delta * sd / sqrt(n)`` (normal approximation; a practical-mode
    assumption, stated in the report).  ``values`` are squared residuals ``q^2``
    of runs the Verifier trained itself.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return math.inf
    excess = np.maximum(v - level, 0.0)
    sd = float(excess.std(ddof=1)) if v.size > 1 else 0.0
    return tail_upper(float(excess.mean()), sd, v.size, delta)


def tail_upper(mean: float, sd: float, n: int, delta: float) -> float:
    """``mean + z_{1-delta} sd / sqrt(n)``: the tail bound both planner and decision use."""
    if n < 1:
        return math.inf
    return mean + NormalDist().inv_cdf(1.0 - delta) * sd / math.sqrt(n)


def clip_bias(weights: Sequence[float], tail: ArrayLike) -> FloatArray:
    """Largest shift of the statistic's expectation by clipping: ``||w||_1 T(C)``."""
    l1 = float(np.abs(np.asarray(weights, dtype=np.float64)).sum())
    return np.asarray(l1 * np.maximum(np.asarray(tail, dtype=np.float64), 0.0))


def leverage(weights: Sequence[float], counts: Sequence[int], clip: ArrayLike) -> FloatArray:
    """Largest move of the statistic by one corrupted pair: ``2 C max_j |w_j| / n_j``.

    ``clip`` may be one level or one per output (then one leverage per output).
    """
    w = np.abs(np.asarray(weights, dtype=np.float64))
    n = np.asarray(counts, dtype=np.float64)
    return np.asarray(2.0 * np.asarray(clip, dtype=np.float64) * float((w / n).max()))


def node_second_moment_bound(rho: ArrayLike, second: ArrayLike, fourth: ArrayLike) -> FloatArray:
    """Upper bound on ``E[(q q')^2]`` at correlation rho: ``m2^2 + |rho| (m4 - m2^2)``.

    ``E[q^2(x, r) q^2(x', r')] = sum_k B_k(qbar) rho^k`` is the noise stability of
    ``qbar(x) = E_r q^2(x, r)`` (seeds independent); its ``k >= 1`` terms are at
    most ``|rho| sum_{k>=1} B_k(qbar) = |rho| (E qbar^2 - (E q^2)^2)`` and
    ``E qbar^2 <= E q^4`` (Jensen).  It bounds ``Var(clip(q q'))`` too.
    Broadcasts: ``rho`` of shape ``(J,)`` with per-output moments ``(Z, 1)`` gives ``(Z, J)``.
    """
    base = np.asarray(second, dtype=np.float64) ** 2
    spread = np.maximum(np.asarray(fourth, dtype=np.float64) - base, 0.0)
    return np.asarray(base + np.abs(np.asarray(rho, dtype=np.float64)) * spread)


def variance_sum(
    weights: Sequence[float], counts: Sequence[int], node_variances: ArrayLike
) -> FloatArray:
    """``V = sum_j w_j^2 Var_j / n_j`` (over the last axis of ``node_variances``)."""
    w = np.asarray(weights, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    return np.asarray((w * w * np.asarray(node_variances, dtype=np.float64) / n).sum(axis=-1))


def planned_variance_sum(
    weights: Sequence[float],
    counts: Sequence[int],
    nodes: Sequence[float],
    second: ArrayLike,
    fourth: ArrayLike,
) -> FloatArray:
    """Planned ``V`` per output: every node's product variance at its moment bound.

    ``second`` and ``fourth``: one value, or one per output (then ``V`` per output).
    """
    m2 = np.asarray(second, dtype=np.float64)[..., None]
    m4 = np.asarray(fourth, dtype=np.float64)[..., None]
    return variance_sum(weights, counts, node_second_moment_bound(np.asarray(nodes), m2, m4))


def deviation(
    planned_variance: ArrayLike, delta: float, observed_variance: ArrayLike | None = None
) -> FloatArray:
    """One-sided sampling deviation ``z_{1-delta} sqrt(V)`` of the statistic.

    ``V`` is the planned variance (an upper bound under the practical-mode
    assumption) or, when larger, the observed one (per-node sample variances).
    The statistic is a weighted sum of node means over thousands of pairs with
    products bounded by the clip level, so its deviation is taken from the
    normal approximation (a practical-mode assumption, stated in the report).
    The planner calls this without ``observed_variance`` and the decision with
    it: one function, so the planned and the realised deviation cannot drift apart.
    """
    if not 0.0 < delta < 1.0:
        raise InvalidArgument(f"delta must lie in (0, 1), got {delta}")
    v = np.asarray(planned_variance, dtype=np.float64)
    if observed_variance is not None:
        v = np.maximum(v, np.asarray(observed_variance, dtype=np.float64))
    return np.asarray(NormalDist().inv_cdf(1.0 - delta) * np.sqrt(np.maximum(v, 0.0)))


def clipped_products(first: FloatArray, second: FloatArray, clip: float) -> FloatArray:
    """``clip(q q', -C, C)`` for residual vectors of equal length."""
    return np.asarray(np.clip(np.asarray(first) * np.asarray(second), -clip, clip))


def node_estimate(
    products: FloatArray, node_of_pair: NDArray[np.int64], weights: Sequence[float]
) -> tuple[float, FloatArray, FloatArray]:
    """``(sum_j w_j mean_j P, means (J,), sample variances (J,))`` of clipped products."""
    w = np.asarray(weights, dtype=np.float64)
    J = len(w)
    counts = np.bincount(node_of_pair, minlength=J).astype(np.float64)
    if np.any(counts < 2):
        raise InvalidArgument("every node needs at least 2 pairs")
    sums = np.bincount(node_of_pair, weights=products, minlength=J)
    means = sums / counts
    sq = np.bincount(node_of_pair, weights=(products - means[node_of_pair]) ** 2, minlength=J)
    variances = sq / (counts - 1.0)
    return float((w * means).sum()), means, variances


def observed_variance_sum(
    node_variances: FloatArray, weights: Sequence[float], counts: Sequence[int]
) -> float:
    """``V`` from observed per-node sample variances."""
    return float(variance_sum(weights, counts, node_variances))
