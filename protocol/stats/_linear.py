"""The linear-gap planner (direct gap, paper residual).

How many evaluations, spot checks and local trainings meet epsilon.

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
from dataclasses import dataclass

import numpy as np

from protocol.concentration import bernstein_deviation, hoeffding_deviation
from protocol.errors import InvalidArgument
from protocol.estimators import (
    NodeFunctional,
    chebyshev_functional,
    three_point_functional,
)
from protocol.hypercube import rho_max
from protocol.plan_types import BudgetItem, Plan, PlanRequest
from protocol.statistics import PairStatistic

__all__ = ["plan_linear_gap"]

CORRUPTION_FRACTION = 1.0 / 8.0  # of epsilon, at least
BIAS_FRACTION = 1.0 / 8.0  # of epsilon, at most, each direction
SAMPLING_FRACTION = 1.0 / 4.0  # of epsilon, at most
CHEBYSHEV_SKEWS = (1.0, 0.5)  # negative end of the interval / positive end
MAX_CHEBYSHEV_DEGREE = 14
MAX_PAIRS = 10**15


def plan_linear_gap(request: PlanRequest, statistic: PairStatistic, *, paper: bool) -> Plan:
    """Plan a linear pair statistic; :class:`InvalidArgument` names the term that does not fit.

    ``paper``: Karchmer et al.'s Algorithm 1 (the residual statistic plus the
    Verifier's own local trainings for ``mse``); else the direct gap.
    """
    return _Planner(request, statistic, paper=paper).plan()


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
    def __init__(self, request: PlanRequest, statistic: PairStatistic, *, paper: bool) -> None:
        self.r = request
        self.paper = paper
        eps = request.epsilon
        self.threshold = eps / 2.0
        b = request.bound
        self.practical = request.planning == "practical"
        self.scale = math.sqrt(request.variance) if request.variance is not None else math.inf
        self.statistic = statistic
        if not paper:
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
        per_term = 2 if paper else 1
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
        tol = (c.l1 + (1.0 if self.paper else 0.0)) * shift
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
    def _pair_deviation(self, f: NodeFunctional, n: int) -> float:
        """Planned sampling deviation of the Prover-side statistic with about n pairs."""
        return self.statistic.planned_deviation(
            f.weights,
            f.allocation(n),
            value_bound=self.value_bound,
            scale=self.scale,
            delta=self.delta_sampling,
            practical=self.practical,
        )

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
        tol = (1.0 + f.l1_norm) * shift if self.paper else f.l1_norm * shift
        # Sampling gets at most eps/4, so that an honest Prover with err up to about
        # eps/4 - bias_up passes; the rest of the margin is the corruption budget.
        available = SAMPLING_FRACTION * r.epsilon
        if not self.paper:
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
        return self.statistic.leverage(f, counts, self.value_bound, self.output_range)

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
        if self.paper:
            items.append(
                BudgetItem("sampling (local mse)", t_mse, f"{how}, Verifier's own trainings")
            )
        return tuple(items)
