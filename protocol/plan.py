"""The planner: how many evaluations, spot checks and local trainings meet epsilon.

Decision rule (both modes, every output z): accept iff ``err_hat_z <= eps/2``.
Soundness needs ``err_hat > eps/2`` whenever ``err >= eps``; the half of
epsilon between the two is the *soundness margin*, spent on (docs/design.md §1):

* corruption budget (at least ``eps/8``; whatever the other terms leave): a
  Prover may corrupt up to ``m* = floor(budget / Lambda)`` evaluations unseen
  (Lambda = leverage); more are caught by ``k`` uniform spot checks with
  probability ``>= 1 - exp(-k (m*+1) / n_points) >= 1 - delta/2``;
* downward bias of the node functional, ``<= eps/8`` by choice of nodes, with
  the tail ``B_{>D}`` bounded by ``b^2`` (rigorous) or the declared variance
  (practical);
* tolerance slack: an undetectable shift tau on every evaluation moves the
  statistic by ``||w||_1 (2 B tau + tau^2)`` (plus the ``mean(y^2)`` term in
  paper mode);
* sampling error (at most ``eps/4``): Hoeffding (rigorous, range-based) or Bernstein (practical,
  variance-based) at ``delta / (2Z)`` per output (``delta / (4Z)`` per term in
  paper mode).

The planner picks the node functional minimising the Verifier's cost
``k ~ ||w||_1 / corruption budget`` under those constraints (a functional whose
bias is upward only spends nothing of the soundness margin on bias).  An
honest Prover whose attributions have
``err <= eps/2 - bias_up - sampling - tolerance`` (the *completeness radius*) is
accepted with probability ``>= 1 - delta``.

``committed`` mode uses the direct gap statistic on residuals ``q = f - g_a``
(|q| <= b + G, G = max |g_a| on the challenge points); the Verifier retrains
only the k spot checks.  ``paper`` mode (Karchmer et al. 2025, Alg. 1) uses
``mse_hat - B_{>=2}_hat``: ``mse`` from the Verifier's own local trainings,
``B_{>=2}`` from the Prover's spot-checked pairs.  No quantity depends on N.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from protocol.concentration import bernstein_deviation, hoeffding_deviation
from protocol.errors import InvalidArgument
from protocol.estimators import (
    NodeFunctional,
    chebyshev_functional,
    nnls_lipschitz,
    three_point_functional,
)
from protocol.hypercube import check_p, rho_max

__all__ = [
    "ESTIMATORS",
    "BudgetItem",
    "Estimator",
    "Mode",
    "Plan",
    "PlanRequest",
    "Planning",
    "make_plan",
]

Mode = Literal["committed", "paper"]
Planning = Literal["rigorous", "practical"]
Estimator = Literal["chebyshev", "three-point", "three-point-nnls", "lp"]

#: Estimator families by name (the CLI choices come from here).
ESTIMATORS: tuple[str, ...] = ("chebyshev", "three-point", "three-point-nnls", "lp")

CORRUPTION_FRACTION = 1.0 / 8.0  # of epsilon, at least
BIAS_FRACTION = 1.0 / 8.0  # of epsilon, at most, each direction
SAMPLING_FRACTION = 1.0 / 4.0  # of epsilon, at most
CHEBYSHEV_SKEWS = (1.0, 0.5)  # negative end of the interval / positive end
MAX_CHEBYSHEV_DEGREE = 14
PRODUCT_VARIANCE_FACTOR = 2.0  # practical: Var(y y') <= 2 s^4 (Gaussian-like outputs)
MAX_PAIRS = 10**15


@dataclass(frozen=True, kw_only=True)
class PlanRequest:
    """What the Verifier asks for.  All epsilons are absolute, in squared output units.

    Attributes:
        epsilon: accuracy; abort if err(a) >= epsilon.
        delta: failure probability (both completeness and soundness).
        bound: b, every output is clipped to [-b, b].
        tolerance: tau, reproducibility of outputs across machines.
        n_outputs: Z.
        p: inclusion probability of B_p.
        mode: ``committed`` (direct gap) or ``paper`` (two estimates).
        planning: ``rigorous`` (range-based) or ``practical`` (variance-based).
        estimator: node family: ``chebyshev``, ``three-point``, ``three-point-nnls``.
        attribution_bound: G >= max |g_a(x)| over the challenge points
            (known after commitment); defaults to ``bound``.
        variance: practical planning: declared (or pilot) upper bound on Var(f).
        clip_sigmas: practical planning: values are winsorised at
            ``clip_sigmas * sqrt(variance)``.
        second_moments, fourth_moments: ``lp`` (clipped gap) planning: per-output
            estimates of ``E[q^2]`` and ``E[q^4]`` from the Verifier's own runs
            (default: ``variance`` and ``3 variance^2`` for every output).
        moment_inflation: ``lp`` planning: the planned product variances are
            multiplied by this (a margin for the moments' own sampling error).
        tail_profile: ``lp`` planning: planned ``E[(q^2/E q^2 - kappa)_+]`` for every
            ``kappa`` of :data:`protocol.clipped_gap.CLIP_MULTIPLES` (default: the
            Gaussian value times 4).
        tail_spread, tail_runs: ``lp`` planning: standard deviation of
            ``(q^2/E q^2 - kappa)_+`` at every kappa and the number of runs it was
            seen on; the planned tail is the upper confidence bound
            :func:`protocol.clipped_gap.tail_upper` the decision will compute.
        completeness_radius: ``lp`` planning: honest scores with ``err`` below this
            are to be accepted w.p. ``>= 1 - delta`` (default ``epsilon / 10``).
        tail_fraction: ``lp`` planning, completeness side only: the planner
            assumes ``B_{>=3}(q) <= tail_fraction * E[q^2]`` when it sizes the
            upward bias (soundness does not depend on it).
        max_prover_evaluations: ``lp`` planning: cap on ``2 * n_pairs``.
        prover_weight: ``lp`` planning: the planner minimises ``Verifier
            retrainings + prover_weight * Prover evaluations`` under the cap.
    """

    epsilon: float
    delta: float
    bound: float
    tolerance: float = 0.0
    n_outputs: int = 1
    p: float = 0.5
    mode: Mode = "committed"
    planning: Planning = "rigorous"
    estimator: Estimator = "chebyshev"
    attribution_bound: float | None = None
    variance: float | None = None
    clip_sigmas: float = 5.0
    second_moments: tuple[float, ...] | None = None
    fourth_moments: tuple[float, ...] | None = None
    tail_profile: tuple[float, ...] | None = None
    tail_spread: tuple[float, ...] | None = None
    tail_runs: int = 0
    completeness_radius: float | None = None
    tail_fraction: float = 0.25
    max_prover_evaluations: int = 20_000_000
    prover_weight: float = 0.025
    moment_inflation: float = 1.5

    def __post_init__(self) -> None:
        _positive("epsilon", self.epsilon)
        _positive("bound", self.bound)
        if not 0.0 < self.delta < 1.0:
            raise InvalidArgument(f"delta must lie in (0, 1), got {self.delta}")
        if not (self.tolerance >= 0.0 and math.isfinite(self.tolerance)):
            raise InvalidArgument(f"tolerance must be finite and >= 0, got {self.tolerance}")
        if self.n_outputs < 1:
            raise InvalidArgument(f"n_outputs must be >= 1, got {self.n_outputs}")
        check_p(self.p)
        if self.mode not in ("committed", "paper"):
            raise InvalidArgument(f"mode must be 'committed' or 'paper', got {self.mode!r}")
        if self.planning not in ("rigorous", "practical"):
            raise InvalidArgument(
                f"planning must be 'rigorous' or 'practical', got {self.planning!r}"
            )
        if self.estimator not in ESTIMATORS:
            raise InvalidArgument(
                f"estimator must be one of {', '.join(map(repr, ESTIMATORS))}, "
                f"got {self.estimator!r}"
            )
        if self.estimator == "lp" and (self.mode, self.planning) != ("committed", "practical"):
            raise InvalidArgument(
                "the lp estimator (clipped direct gap) serves committed mode with practical "
                "planning only"
            )
        if self.completeness_radius is not None and not (
            0.0 <= self.completeness_radius < self.epsilon
        ):
            raise InvalidArgument(
                f"completeness_radius must lie in [0, epsilon), got {self.completeness_radius}"
            )
        if not (self.moment_inflation >= 1.0 and math.isfinite(self.moment_inflation)):
            raise InvalidArgument(f"moment_inflation must be >= 1, got {self.moment_inflation}")
        if not 0.0 <= self.tail_fraction <= 1.0:
            raise InvalidArgument(f"tail_fraction must lie in [0, 1], got {self.tail_fraction}")
        if self.max_prover_evaluations < 2:
            raise InvalidArgument(
                f"max_prover_evaluations must be >= 2, got {self.max_prover_evaluations}"
            )
        if not (self.prover_weight >= 0 and math.isfinite(self.prover_weight)):
            raise InvalidArgument(
                f"prover_weight must be finite and >= 0, got {self.prover_weight}"
            )
        for name in ("second_moments", "fourth_moments"):
            values = getattr(self, name)
            if values is not None and (
                len(values) != self.n_outputs or not all(v > 0 and math.isfinite(v) for v in values)
            ):
                raise InvalidArgument(
                    f"{name} must hold {self.n_outputs} finite positive values, got {values}"
                )
        if self.attribution_bound is not None and not (
            self.attribution_bound >= 0 and math.isfinite(self.attribution_bound)
        ):
            raise InvalidArgument(
                f"attribution_bound must be finite and >= 0, got {self.attribution_bound}"
            )
        if self.planning == "practical":
            if self.variance is None:
                raise InvalidArgument("practical planning needs a declared or pilot variance")
            _positive("variance", self.variance)
            _positive("clip_sigmas", self.clip_sigmas)
        if self.estimator == "three-point-nnls" and self.mode == "committed":
            raise InvalidArgument(
                "three-point-nnls estimates B_{>=2} and applies to paper mode only; "
                "committed mode needs a linear functional"
            )

    @property
    def g_bound(self) -> float:
        return self.bound if self.attribution_bound is None else self.attribution_bound


def _positive(name: str, value: float) -> None:
    if not (value > 0.0 and math.isfinite(value)):
        raise InvalidArgument(f"{name} must be finite and > 0, got {value}")


@dataclass(frozen=True)
class BudgetItem:
    """One line of the epsilon budget: a term, its value and what it bounds."""

    name: str
    value: float
    note: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A complete plan; every number the Verifier commits to before the challenge."""

    request: PlanRequest
    functional: NodeFunctional
    pairs_per_node: tuple[int, ...]
    threshold: float
    value_bound: float
    output_range: float
    clip_at: float | None
    tail_bound: float
    bias_lower: float
    bias_upper: float
    tolerance_slack: float
    corruption_budget: float
    sampling_error: float
    sampling_error_mse: float
    leverage: float
    tolerated_corruptions: int
    spot_checks: int
    local_trainings: int
    delta_sampling: float
    delta_spot: float
    budget: tuple[BudgetItem, ...] = field(default=())
    clip_levels: tuple[float, ...] | None = None
    clip_bias: float = 0.0
    planned_tails: tuple[float, ...] | None = None
    planned_variances: tuple[float, ...] | None = None
    delta_tail: float = 0.0
    assumptions: tuple[str, ...] = ()
    sampling_error_honest: float | None = None

    @property
    def n_pairs(self) -> int:
        return int(sum(self.pairs_per_node))

    @property
    def prover_evaluations(self) -> int:
        """Number of model trainings the Prover runs for the challenge (2 per pair)."""
        return 2 * self.n_pairs

    @property
    def verifier_retrainings(self) -> int:
        """Model trainings the Verifier runs itself: spot checks plus local trainings."""
        return self.spot_checks + self.local_trainings

    @property
    def statistic(self) -> str:
        """``clipped-gap`` (per-output clipped products) or ``gap`` / ``residual``."""
        if self.clip_levels is not None:
            return "clipped-gap"
        return "gap" if self.request.mode == "committed" else "residual"

    @property
    def slack(self) -> float:
        """Unused soundness margin ``epsilon - threshold - terms`` (>= 0)."""
        return (
            self.request.epsilon
            - self.threshold
            - self.clip_bias
            - self.corruption_budget
            - abs(self.bias_lower)
            - self.tolerance_slack
            - self.sampling_error
            - self.sampling_error_mse
        )

    @property
    def completeness_radius(self) -> float:
        """Honest attributions with err below this pass with probability >= 1 - delta.

        Clipped-gap plans charge the honest side's own (smaller) sampling deviation,
        at ``delta / (2Z)`` per output, where the others charge the planned one.
        """
        sampling = (
            self.sampling_error
            if self.sampling_error_honest is None
            else self.sampling_error_honest
        )
        return max(
            0.0,
            self.threshold
            - self.clip_bias
            - self.bias_upper
            - self.tolerance_slack
            - sampling
            - self.sampling_error_mse,
        )

    def node_of_pair(self) -> np.ndarray:
        """Node index of every pair (pairs are laid out node by node): int64 ``(n_pairs,)``."""
        return np.repeat(np.arange(len(self.pairs_per_node)), self.pairs_per_node)

    def rho_of_pair(self) -> np.ndarray:
        """Node value rho of every pair: float64 ``(n_pairs,)``."""
        return np.asarray(np.asarray(self.functional.nodes)[self.node_of_pair()])

    def table(self) -> str:
        """A readable, itemised account of the plan and where epsilon goes."""
        r = self.request
        lines = [
            f"pacda plan: mode={r.mode} planning={r.planning} estimator={self.functional.name}",
            f"  epsilon={r.epsilon:.6g} delta={r.delta:.3g} b={r.bound:.6g} tau={r.tolerance:.3g}"
            f" Z={r.n_outputs} p={r.p:.3g}",
            "  nodes   " + " ".join(f"{x:+.4f}" for x in self.functional.nodes),
            "  weights "
            + " ".join(f"{w:+.4f}" for w in self.functional.weights)
            + f"   (||w||_1 = {self.functional.l1_norm:.3f}, exact to degree "
            f"{self.functional.degree})",
            "  pairs   " + " ".join(str(n) for n in self.pairs_per_node),
            f"  Prover evaluations        {self.prover_evaluations:>14,d}",
            f"  Verifier spot checks      {self.spot_checks:>14,d}",
            f"  Verifier local trainings  {self.local_trainings:>14,d}",
            f"  Verifier retrainings      {self.verifier_retrainings:>14,d}",
        ]
        if self.clip_levels is None:
            lines.append(f"  accept iff err_hat <= {self.threshold:.6g} for every output")
            lines.append("  soundness margin (eps/2) spent on:")
        else:
            lines.append(
                f"  accept iff err_hat + certified terms < epsilon (planned: err_hat <= "
                f"{self.threshold:.6g})"
            )
            lines.append(f"  soundness margin (epsilon - {self.threshold:.6g}) spent on:")
        for item in self.budget:
            lines.append(f"    {item.name:<22} {item.value:>12.6g}  {item.note}")
        lines.append(f"    {'slack':<22} {self.slack:>12.6g}  unused margin")
        lines.append(
            f"  completeness: honest err <= {self.completeness_radius:.6g} accepted "
            f"w.p. >= {1 - r.delta:.6g}"
        )
        if self.assumptions:
            lines.append("  practical-mode assumptions:")
            lines.extend(f"    - {a}" for a in self.assumptions)
        return "\n".join(lines)


def make_plan(request: PlanRequest) -> Plan:
    """Plan an audit; raise :class:`InvalidArgument` naming the term that does not fit."""
    if request.estimator == "lp":
        from protocol.plan_clipped import plan_clipped_gap  # imports this module

        return plan_clipped_gap(request)
    return _Planner(request).plan()


@dataclass(frozen=True)
class _Candidates:
    """Candidate functionals with ``||w||_1`` and bias per unit tail weight."""

    functionals: tuple[NodeFunctional, ...]
    l1: np.ndarray
    down: np.ndarray  # -min(0, min_k s_k) >= 0: downward bias per unit tail
    up: np.ndarray  # max(0, max_k s_k) >= 0: upward bias per unit tail


@functools.lru_cache(maxsize=16)
def _candidates(estimator: str, neg: float) -> _Candidates:
    """All functionals the planner considers (computed once per estimator and rho_max)."""
    funcs: list[NodeFunctional] = []
    if estimator == "chebyshev":
        radii = np.round(np.arange(1.0, 0.009, -0.02), 4)
        for degree in range(2, MAX_CHEBYSHEV_DEGREE + 1):
            for skew in CHEBYSHEV_SKEWS:
                for radius in radii:
                    lower = -min(float(radius) * skew, neg)
                    funcs.append(chebyshev_functional(float(radius), degree, lower=lower))
    else:
        # Nodes 0, rho, 2 rho are non-negative, so only 2 rho <= 1 constrains rho.
        for rho in np.round(np.arange(0.5, 0.0005, -0.0005), 6):
            funcs.append(three_point_functional(float(rho)))
    bias = np.array([f.bias_range(1.0) for f in funcs])
    return _Candidates(
        functionals=tuple(funcs),
        l1=np.array([f.l1_norm for f in funcs]),
        down=-bias[:, 0],
        up=bias[:, 1],
    )


class _Planner:
    def __init__(self, request: PlanRequest) -> None:
        self.r = request
        eps = request.epsilon
        self.threshold = eps / 2.0
        b = request.bound
        self.practical = request.planning == "practical"
        self.scale = math.sqrt(request.variance) if request.variance is not None else math.inf
        if request.mode == "committed":
            natural = b + request.g_bound  # |q| <= b + G
        elif self.practical:
            natural = 2.0 * b  # paper mode, practical: y = f - c with |c| <= b
        else:
            natural = b  # paper mode, rigorous: y = f, uncentred
        self.clip_at = min(natural, request.clip_sigmas * self.scale) if self.practical else None
        self.value_bound = self.clip_at if self.clip_at is not None else natural
        self.output_range = min(2.0 * b, 2.0 * self.value_bound)
        self.tail = float(request.variance) if self.practical and request.variance else b * b
        self.tail = min(self.tail, b * b)
        self.delta_spot = request.delta / 2.0
        per_term = 2 if request.mode == "paper" else 1
        self.delta_sampling = request.delta / (2.0 * request.n_outputs * per_term)

    # -- functional -------------------------------------------------------
    def functional(self, shift: float) -> NodeFunctional:
        """The functional minimising Verifier cost ``k ~ ||w||_1 / corruption budget``.

        Constraints: downward and upward bias each at most ``eps/8`` (the tail
        ``B_{>D}`` bounded by ``self.tail``), and a corruption budget of at least
        ``eps/8`` left after sampling (``<= eps/4``), downward bias and tolerance.
        """
        eps = self.r.epsilon
        c = _candidates(self.r.estimator, rho_max(self.r.p))
        cap = BIAS_FRACTION * eps
        down, up = c.down * self.tail, c.up * self.tail
        tol = (c.l1 + (0.0 if self.r.mode == "committed" else 1.0)) * shift
        corruption = self.threshold - SAMPLING_FRACTION * eps - down - tol
        bias_ok = (down <= cap) & (up <= cap)
        ok = bias_ok & (corruption >= CORRUPTION_FRACTION * eps)
        if not bias_ok.any():
            raise InvalidArgument(
                f"bias: no {self.r.estimator} functional keeps the bias below {cap:.3g} "
                f"(tail weight {self.tail:.3g}); raise epsilon or use the chebyshev estimator"
            )
        if not ok.any():
            best_tol = float(tol[bias_ok].min())
            raise InvalidArgument(
                f"tolerance: the tolerance slack (at least {best_tol:.3g} for "
                f"tau={self.r.tolerance:.3g}) leaves less than the corruption budget "
                f"{CORRUPTION_FRACTION * eps:.3g} in the margin eps/2={self.threshold:.3g}; "
                "lower the tolerance or raise epsilon"
            )
        score = np.where(ok, c.l1 / np.where(ok, corruption, 1.0), np.inf)
        return c.functionals[int(np.argmin(score))]

    # -- sizing -----------------------------------------------------------
    def _allocation(self, f: NodeFunctional, n: int) -> tuple[np.ndarray, np.ndarray]:
        counts = np.asarray(f.allocation(n), dtype=np.float64)
        return np.abs(np.asarray(f.weights)), counts

    def _pair_deviation(self, f: NodeFunctional, n: int) -> float:
        """Planned sampling deviation of the Prover-side statistic with about n pairs."""
        w, counts = self._allocation(f, n)
        vb2 = self.value_bound**2
        total = counts.sum()
        if self.r.mode == "committed":
            term_range = w / counts * 2.0 * vb2
            term_var = (w / counts) ** 2 * PRODUCT_VARIANCE_FACTOR * self.scale**4
        else:
            term_range = vb2 / total + w / counts * 2.0 * vb2
            term_var = 4.0 * self.scale**4 * (1.0 / total**2 + (w / counts) ** 2)
        if self.practical:
            return bernstein_deviation(
                float((counts * term_var).sum()), float(term_range.max()), self.delta_sampling
            )
        return hoeffding_deviation(float((counts * term_range**2).sum()), self.delta_sampling)

    def _mse_deviation(self, n: int) -> float:
        """Deviation of the Verifier's local mse estimate from n trainings (paper mode)."""
        big = (self.r.bound + self.r.g_bound) ** 2
        if self.practical:
            return bernstein_deviation(3.0 * self.scale**4 / n, big / n, self.delta_sampling)
        return hoeffding_deviation(n * (big / n) ** 2, self.delta_sampling)

    @staticmethod
    def _smallest_n(fn: Callable[[int], float], target: float) -> int:
        """Smallest n (to 0.1%) with ``fn(n) <= target``, fn decreasing in n."""
        hi = 8
        while fn(hi) > target:
            hi *= 2
            if hi > MAX_PAIRS:
                raise InvalidArgument(
                    f"sampling: more than {MAX_PAIRS:,d} evaluations needed for accuracy "
                    f"{target:.3g}; raise epsilon"
                )
        lo = hi // 2
        while hi - lo > max(1, lo // 1000):
            mid = (lo + hi) // 2
            if fn(mid) > target:
                lo = mid
            else:
                hi = mid
        return hi

    def plan(self) -> Plan:
        r = self.r
        tau = r.tolerance
        shift = 2.0 * self.value_bound * tau + tau * tau
        f = self.functional(shift)
        bias_lo, bias_hi = f.bias_range(self.tail)
        tol = f.l1_norm * shift if r.mode == "committed" else (1.0 + f.l1_norm) * shift
        # Sampling gets at most eps/4, so that an honest Prover with err up to about
        # eps/4 - bias_up passes; the rest of the margin is the corruption budget.
        available = SAMPLING_FRACTION * r.epsilon
        if r.mode == "committed":
            n = self._smallest_n(lambda m: self._pair_deviation(f, m), available)
            t_pairs, t_mse, n_local = self._pair_deviation(f, n), 0.0, 0
        else:
            n = self._smallest_n(lambda m: self._pair_deviation(f, m), available / 2.0)
            n_local = self._smallest_n(self._mse_deviation, available / 2.0)
            t_pairs, t_mse = self._pair_deviation(f, n), self._mse_deviation(n_local)
        counts = f.allocation(n)
        n_points = 2 * sum(counts)
        leverage = self._leverage(f, counts)
        corruption = self.threshold - abs(bias_lo) - tol - t_pairs - t_mse
        tolerated = math.floor(corruption / leverage)
        k = math.ceil(n_points * math.log(1.0 / self.delta_spot) / (tolerated + 1))
        k = min(k, n_points)
        budget = self._budget(f, bias_lo, tol, t_pairs, t_mse, corruption, tolerated)
        return Plan(
            request=r,
            functional=f,
            pairs_per_node=counts,
            threshold=self.threshold,
            value_bound=self.value_bound,
            output_range=self.output_range,
            clip_at=self.clip_at,
            tail_bound=self.tail,
            bias_lower=bias_lo,
            bias_upper=bias_hi,
            tolerance_slack=tol,
            corruption_budget=corruption,
            sampling_error=t_pairs,
            sampling_error_mse=t_mse,
            leverage=leverage,
            tolerated_corruptions=tolerated,
            spot_checks=k,
            local_trainings=n_local,
            delta_sampling=self.delta_sampling,
            delta_spot=self.delta_spot,
            budget=budget,
        )

    def _leverage(self, f: NodeFunctional, counts: tuple[int, ...]) -> float:
        w = np.abs(np.asarray(f.weights))
        c = np.asarray(counts, dtype=np.float64)
        if self.r.estimator == "three-point-nnls":
            w = nnls_lipschitz(f)
        per_product = float((w / c).max())
        if self.r.mode == "committed":
            return per_product * self.output_range * self.value_bound
        vb2 = self.value_bound**2
        return float(vb2 / (2.0 * c.sum()) + per_product * 2.0 * vb2)

    def _budget(
        self,
        f: NodeFunctional,
        bias_lo: float,
        tol: float,
        t_pairs: float,
        t_mse: float,
        corruption: float,
        tolerated: int,
    ) -> tuple[BudgetItem, ...]:
        how = "Bernstein, declared variance" if self.practical else "Hoeffding, range b"
        items = [
            BudgetItem(
                "corruption budget",
                corruption,
                f"up to {tolerated:,d} corrupted evaluations unseen; more caught w.p. "
                f">= {1 - self.delta_spot:.4g}",
            ),
            BudgetItem(
                "bias (downward)",
                abs(bias_lo),
                f"sum_k>{f.degree} s_k B_k with B_>{f.degree} <= {self.tail:.4g}",
            ),
            BudgetItem("tolerance slack", tol, f"tau={self.r.tolerance:.3g} on every evaluation"),
            BudgetItem(
                "sampling (Prover)",
                t_pairs,
                f"{how}, delta={self.delta_sampling:.3g} per output",
            ),
        ]
        if self.r.mode == "paper":
            items.append(
                BudgetItem("sampling (local mse)", t_mse, f"{how}, Verifier's own trainings")
            )
        return tuple(items)
