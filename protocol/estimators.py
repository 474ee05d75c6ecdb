"""Residual and gap estimators as node/weight functionals of noise stability.

Noise stability (docs/design.md §1): with x ~ B_p, x' its rho-partner and independent
training seeds, ``h(rho) = E[f(x; r) f(x'; r')] = sum_k B_k(fbar) rho^k``.  A
*node functional* is a set of nodes ``rho_j`` and weights ``w_j`` with

    sum_j w_j rho_j^k = 1 for k in {0, 1},   = 0 for k = 2..D,

so ``sum_j w_j h(rho_j) = B_0 + B_1 + sum_{k>D} s_k B_k`` with bias
coefficients ``s_k = sum_j w_j rho_j^k``.  Two families:

* *three-point* (Saunshi, Gupta, Braverman, Arora 2022, arXiv 2210.01072,
  §4; used by Karchmer, Pawelczyk, Neel 2025, arXiv 2508.10866, Alg. 1):
  nodes ``{0, rho, 2 rho}``, D = 2, ``w = (1 - 3/(2 rho), 2/rho, -1/(2 rho))``;
* *Chebyshev*: nodes ``r cos((2j-1) pi / (2(D+1)))``, j = 1..D+1 (negative rho
  allowed down to ``-rho_max``), in the spirit of Bogdanov & Taschin 2025.

Statistics built from a functional, each returning an :class:`Estimate`
(value, standard error, per-evaluation leverage):

* :func:`residual_weight` estimates ``B_{>=2}(f) = mean(y^2) - sum_j w_j hhat_j``
  from centred outputs ``y = f - c`` (c fixed before results arrive);
* :func:`direct_gap` estimates ``err(a) = B_0(q) + B_1(q)`` from residuals
  ``q = f - g_a`` of committed attributions (docs/design.md §1, committed mode);
* :func:`residual_weight_nnls` fits non-negative degree weights (the paper's
  least-squares fit) and is kept for comparison.

*Leverage* is the largest change of the statistic when one evaluation (one
point's output) moves anywhere in its allowed range; corruption of m points
moves the statistic by at most ``m * leverage`` (docs/design.md §1, spot checks).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import nnls

from protocol.errors import InvalidArgument

__all__ = [
    "Estimate",
    "NodeFunctional",
    "PairSample",
    "chebyshev_functional",
    "direct_gap",
    "functional_from_nodes",
    "nnls_lipschitz",
    "residual_weight",
    "residual_weight_nnls",
    "three_point_functional",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class NodeFunctional:
    """Nodes and weights extracting ``B_0 + B_1`` from ``h`` exactly up to degree ``degree``."""

    name: str
    nodes: tuple[float, ...]
    weights: tuple[float, ...]
    degree: int

    def __post_init__(self) -> None:
        if len(self.nodes) != len(self.weights) or not self.nodes:
            raise InvalidArgument("a functional needs as many weights as nodes (at least one)")
        if len(set(self.nodes)) != len(self.nodes):
            raise InvalidArgument(f"nodes must be distinct, got {self.nodes}")
        for k in range(self.degree + 1):
            moment = sum(w * r**k for w, r in zip(self.weights, self.nodes, strict=True))
            target = 1.0 if k <= 1 else 0.0
            if abs(moment - target) > 1e-8 * max(1.0, self.l1_norm):
                raise InvalidArgument(f"weights do not satisfy the degree-{k} moment condition")

    @property
    def l1_norm(self) -> float:
        """``||w||_1``: the factor by which the functional amplifies per-product error."""
        return float(sum(abs(w) for w in self.weights))

    @property
    def radius(self) -> float:
        """``max_j |rho_j|``."""
        return float(max(abs(r) for r in self.nodes))

    def bias_coefficients(self, max_degree: int = 4096) -> FloatArray:
        """``s_k = sum_j w_j rho_j^k`` for ``k = degree+1 .. max_degree``."""
        if self.radius < 1.0:  # beyond this degree every |s_k| < 1e-17 * ||w||_1
            max_degree = min(max_degree, self.degree + 1 + math.ceil(-39.2 / math.log(self.radius)))
        k = np.arange(self.degree + 1, max_degree + 1)[:, None]
        nodes = np.asarray(self.nodes)[None, :]
        return np.asarray((np.asarray(self.weights)[None, :] * nodes**k).sum(axis=1))

    def bias_range(self, tail_bound: float) -> tuple[float, float]:
        """Interval containing the bias ``sum_{k>D} s_k B_k`` when ``sum_{k>D} B_k <= tail_bound``.

        Returns ``(lower, upper)`` with ``lower <= 0 <= upper``: a negative bias
        helps a cheating Prover (soundness side), a positive one hurts an
        honest Prover (completeness side).
        """
        if tail_bound < 0:
            raise InvalidArgument(f"tail_bound must be >= 0, got {tail_bound}")
        s = self.bias_coefficients()
        return tail_bound * min(0.0, float(s.min())), tail_bound * max(0.0, float(s.max()))

    def allocation(self, n_pairs: int) -> tuple[int, ...]:
        """Pairs per node, proportional to ``|w_j|`` (minimises ``sum_j w_j^2 / n_j``).

        Every node gets at least 2 pairs so its sample variance exists; the
        total is at least ``n_pairs``.
        """
        if n_pairs < 2 * len(self.nodes):
            n_pairs = 2 * len(self.nodes)
        shares = np.abs(np.asarray(self.weights)) / self.l1_norm * n_pairs
        counts = np.maximum(np.ceil(shares).astype(np.int64), 2)
        return tuple(int(c) for c in counts)


def functional_from_nodes(nodes: Sequence[float], *, name: str = "custom") -> NodeFunctional:
    """Solve the Vandermonde system for the weights of D+1 distinct nodes (D = len-1)."""
    rho = np.asarray(nodes, dtype=np.float64)
    if rho.size < 2:
        raise InvalidArgument("need at least two nodes to separate degrees 0 and 1 from 2+")
    if np.unique(rho).size != rho.size or not np.all(np.isfinite(rho)):
        raise InvalidArgument(f"nodes must be distinct and finite, got {rho.tolist()}")
    degree = rho.size - 1
    vander = rho[None, :] ** np.arange(degree + 1)[:, None]  # rows k, columns j
    target = np.zeros(degree + 1)
    target[:2] = 1.0
    weights = np.linalg.solve(vander, target)
    return NodeFunctional(
        name=name,
        nodes=tuple(float(r) for r in rho),
        weights=tuple(float(w) for w in weights),
        degree=degree,
    )


def three_point_functional(rho: float) -> NodeFunctional:
    """The 3-point fit of Saunshi et al. (2022): nodes ``{0, rho, 2 rho}``, exact to degree 2."""
    if not 0.0 < rho <= 0.5:
        raise InvalidArgument(f"three-point rho must lie in (0, 0.5], got {rho}")
    return functional_from_nodes([0.0, rho, 2.0 * rho], name="three-point")


def chebyshev_functional(
    radius: float, degree: int, *, lower: float | None = None
) -> NodeFunctional:
    """Chebyshev nodes of degree D on ``[lower, radius]`` (default ``lower = -radius``).

    Nodes ``c + h cos((2j-1) pi / (2(D+1)))``, j = 1..D+1, with centre
    ``c = (radius + lower)/2`` and half-width ``h = (radius - lower)/2``; an
    asymmetric interval serves ``p != 1/2``, where ``rho >= -rho_max(p)``.
    """
    lo = -radius if lower is None else lower
    if not 0.0 < radius <= 1.0 or not -1.0 <= lo < radius:
        raise InvalidArgument(
            f"Chebyshev interval must satisfy -1 <= lower < radius <= 1, got [{lo}, {radius}]"
        )
    if degree < 2:
        raise InvalidArgument(f"Chebyshev degree must be >= 2, got {degree}")
    j = np.arange(1, degree + 2)
    centre, half = (radius + lo) / 2.0, (radius - lo) / 2.0
    nodes = centre + half * np.cos((2 * j - 1) * math.pi / (2 * (degree + 1)))
    return functional_from_nodes(sorted(nodes.tolist()), name="chebyshev")


@dataclass(frozen=True)
class PairSample:
    """Values at the two points of each pair, grouped by node.

    Attributes:
        node_index: int ``(n,)``, the node of each pair.
        first, second: float64 ``(n,)`` values at x and at its partner x'
            (centred outputs ``y = f - c``, or residuals ``q = f - g_a``).
    """

    node_index: NDArray[np.int64]
    first: FloatArray
    second: FloatArray

    def __post_init__(self) -> None:
        n = self.node_index.shape
        if self.first.shape != n or self.second.shape != n or len(n) != 1:
            raise InvalidArgument(
                f"pair arrays must share one shape (n,), got {self.node_index.shape}, "
                f"{self.first.shape}, {self.second.shape}"
            )
        if not (np.all(np.isfinite(self.first)) and np.all(np.isfinite(self.second))):
            raise InvalidArgument("pair values must be finite")

    def counts(self, n_nodes: int) -> NDArray[np.int64]:
        return np.bincount(self.node_index, minlength=n_nodes)[:n_nodes]


@dataclass(frozen=True)
class Estimate:
    """A statistic with its standard error and per-evaluation leverage.

    Attributes:
        value: the estimate (squared output units).
        standard_error: estimated standard deviation of ``value``.
        leverage: max change of ``value`` when one evaluation moves within its range.
        n_evaluations: number of model evaluations (points) that entered.
    """

    value: float
    standard_error: float
    leverage: float
    n_evaluations: int


def _grouped_sum(
    terms: FloatArray, node_index: NDArray[np.int64], n_nodes: int
) -> tuple[float, float]:
    """Sum of independent per-pair terms and its standard error from per-node variances."""
    value = float(terms.sum())
    var = 0.0
    for j in range(n_nodes):
        t = terms[node_index == j]
        if t.size >= 2:
            var += t.size * float(np.var(t, ddof=1))
    return value, math.sqrt(var)


def _check_sample(functional: NodeFunctional, sample: PairSample) -> NDArray[np.int64]:
    n_nodes = len(functional.nodes)
    if sample.node_index.size and (
        sample.node_index.min() < 0 or sample.node_index.max() >= n_nodes
    ):
        raise InvalidArgument(f"node_index must lie in [0, {n_nodes})")
    counts = sample.counts(n_nodes)
    if np.any(counts == 0):
        raise InvalidArgument(f"every node needs at least one pair, got counts {counts.tolist()}")
    return counts


def direct_gap(
    functional: NodeFunctional, residuals: PairSample, *, output_range: float, residual_bound: float
) -> Estimate:
    """Direct gap estimator ``err_hat = sum_j w_j mean(q q' at rho_j)`` (docs/design.md §1).

    Since ``g_a`` has degree <= 1, ``B_{>=2}(q) = B_{>=2}(f)`` and
    ``err(a) = B_0(q) + B_1(q)``; the functional applied to residual products
    estimates it with bias ``sum_{k>D} s_k B_k(fbar)``.

    Args:
        functional: nodes and weights.
        residuals: ``q = f - g_a`` at both points of every pair.
        output_range: width of the interval one evaluation ``f`` may take
            (``2 b``); ``q`` moves by at most this much.
        residual_bound: ``B`` with ``|q| <= B`` (e.g. ``b + max|g_a|``).
    """
    counts = _check_sample(functional, residuals)
    w = np.asarray(functional.weights)
    coef = w[residuals.node_index] / counts[residuals.node_index]
    terms = coef * residuals.first * residuals.second
    value, se = _grouped_sum(terms, residuals.node_index, len(w))
    leverage = float(np.max(np.abs(w) / counts)) * output_range * residual_bound
    return Estimate(value, se, leverage, 2 * int(counts.sum()))


def residual_weight(
    functional: NodeFunctional, outputs: PairSample, *, output_bound: float
) -> Estimate:
    """``B_{>=2}(f)`` estimate ``mean(y^2) - sum_j w_j mean(y y' at rho_j)``.

    ``y = f - c`` for a constant c fixed in advance (``B_{>=2}`` is invariant
    under constant shifts).  ``mean(y^2)`` runs over both points of every pair
    (each is marginally B_p).  Saunshi et al. (2022), residual estimation.

    Args:
        functional: nodes and weights.
        outputs: centred outputs at both points of every pair.
        output_bound: ``B`` with ``|y| <= B``.
    """
    counts = _check_sample(functional, outputs)
    w = np.asarray(functional.weights)
    n = int(counts.sum())
    coef = w[outputs.node_index] / counts[outputs.node_index]
    terms = (outputs.first**2 + outputs.second**2) / (2 * n) - coef * outputs.first * outputs.second
    value, se = _grouped_sum(terms, outputs.node_index, len(w))
    b2 = output_bound**2
    leverage = b2 / (2 * n) + float(np.max(np.abs(w) / counts)) * 2.0 * b2
    return Estimate(value, se, leverage, 2 * n)


def _node_means(functional: NodeFunctional, sample: PairSample) -> tuple[FloatArray, FloatArray]:
    counts = _check_sample(functional, sample)
    prod = sample.first * sample.second
    sums = np.bincount(sample.node_index, weights=prod, minlength=len(functional.nodes))
    sq = np.bincount(sample.node_index, weights=prod**2, minlength=len(functional.nodes))
    means = sums / counts
    var = np.maximum(sq / counts - means**2, 0.0) * counts / np.maximum(counts - 1, 1)
    return means, var / counts


def _nnls_fit(nodes: FloatArray, hhat: FloatArray, degree: int) -> tuple[float, FloatArray]:
    """NNLS fit of ``h(rho) = sum_k c_k rho^k``, ``c >= 0``; returns ``c_0 + c_1`` and gradient."""
    vander = nodes[:, None] ** np.arange(degree + 1)[None, :]
    coef, _ = nnls(vander, hhat)
    active = coef > 0
    grad = np.zeros_like(hhat)
    if active[:2].any():
        sub = np.linalg.pinv(vander[:, active])
        pick = np.zeros(int(active.sum()))
        pick[: int(active[:2].sum())] = 1.0
        grad = pick @ sub
    return float(coef[0] + coef[1]), grad


def nnls_lipschitz(functional: NodeFunctional) -> FloatArray:
    """Per-node bound on ``|d (c_0 + c_1) / d hhat_j|`` over every NNLS active set."""
    nodes = np.asarray(functional.nodes)
    vander = nodes[:, None] ** np.arange(functional.degree + 1)[None, :]
    bound = np.zeros(len(nodes))
    for size in range(1, functional.degree + 2):
        for active in itertools.combinations(range(functional.degree + 1), size):
            cols = list(active)
            low = [i for i, c in enumerate(cols) if c <= 1]
            if not low:
                continue
            grad = np.linalg.pinv(vander[:, cols])[low].sum(axis=0)
            bound = np.maximum(bound, np.abs(grad))
    return bound


def residual_weight_nnls(
    functional: NodeFunctional, outputs: PairSample, *, output_bound: float
) -> Estimate:
    """``B_{>=2}`` with ``B_0 + B_1`` from a non-negative least-squares fit of ``h``.

    The paper's fit (Saunshi et al. 2022): polynomial coefficients of ``h`` are
    degree weights and hence non-negative.  Where the unconstrained fit is
    already non-negative this equals :func:`residual_weight`.  The standard
    error is the delta method on the active piece; the leverage uses the
    largest gradient over all active sets (:func:`nnls_lipschitz`).
    """
    counts = _check_sample(functional, outputs)
    means, var_of_means = _node_means(functional, outputs)
    low, grad = _nnls_fit(np.asarray(functional.nodes), means, functional.degree)
    n = int(counts.sum())
    m2 = float(np.concatenate([outputs.first**2, outputs.second**2]).mean())
    m2_var = float(np.var(np.concatenate([outputs.first**2, outputs.second**2]), ddof=1)) / (2 * n)
    se = math.sqrt(m2_var + float(np.sum(grad**2 * var_of_means)))
    b2 = output_bound**2
    leverage = b2 / (2 * n) + float(np.max(nnls_lipschitz(functional) / counts)) * 2.0 * b2
    return Estimate(m2 - low, se, leverage, 2 * n)
