"""Planner of the clipped direct gap (committed mode, practical planning, ``lp`` estimator).

Decision rule (per output z, :func:`protocol.decision.decide_committed`):
accept iff the certified upper bound

    U_z = err_hat_z + dev_z + clip_bias_z + tolerance + bias_down_z + m* Lambda_z

is below epsilon, where ``m*`` is the number of corrupted pairs the spot checks
tolerate and ``Lambda_z`` the leverage of one (:mod:`protocol.clipped_gap`).
Soundness: if ``err_z >= epsilon`` then, unless the sampling deviation, the
tail estimate or the spot checks fail (probability ``<= delta`` together),
``U_z >= err_z >= epsilon`` and the audit aborts.

Completeness is planned explicitly: the Verifier chooses a *completeness
radius* r (default ``epsilon / 10``).  An honest Prover's ``err_hat`` is at
most ``err + bias_up + clip_shift + dev_honest`` (``clip_shift``: the tail's
expected effect, ``clip_bias``: its upper confidence bound), so it passes when

    err < r = epsilon - bias_up - clip_shift - clip_bias - dev - dev_honest - 2 tolerance
              - bias_down - corruption,

and what r and the estimation terms leave is the *corruption budget*: the
spot checks must catch any Prover that corrupts more than
``m* = floor(budget / Lambda)`` pairs, which takes
``k = ceil(2 n ln(1/delta_spot) / (m* + 1))`` uniform spot checks over the
``2 n`` points.  Because ``Lambda = 2 C max_j |w_j| / n_j ~ 2 C ||w||_1 / n``,
``k ~ 4 C ||w||_1 ln(1/delta_spot) / budget`` does not grow with n (nor N).

The planner searches LP-optimal functionals (:mod:`protocol.lp_functional`:
no downward bias, upward bias ``<= beta B_{>=3}``), clip multiples ``kappa``
and pair counts n, and keeps the plan minimising

    k + prover_weight * (epsilon / max_z E[q_z^2]) * 2 n

with ``2 n <= max_prover_evaluations``.  The factor ``epsilon / E[q^2]`` makes
the trade scale-free: spot checks grow like ``E[q^2] / epsilon`` (the clip
level over the corruption budget) and pairs like ``(E[q^2] / epsilon)^2`` (the
variance of the products over the squared deviation), so with it the split
of epsilon between the terms does not drift with epsilon, and the Verifier's
retrainings grow like ``1 / epsilon`` (times the slow growth of the clip level
a smaller epsilon needs) while the Prover's evaluations grow like
``1 / epsilon^2``.  A fixed weight would instead hand ever more of a small
epsilon to sampling and make the Verifier pay ever more per halving.

delta is split ``delta/2`` for the spot checks, ``delta / (4 Z)`` per output
for the sampling deviation and as much for the tail estimate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocol import clipped_gap as cg
from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional
from protocol.hypercube import rho_max
from protocol.lp_functional import LP_BETAS, lp_functional
from protocol.plan_types import BudgetItem, Plan, PlanRequest
from protocol.ustatistic import abs_tail_profile

__all__ = [
    "ASSUMPTIONS",
    "ResidualMoments",
    "default_completeness_radius",
    "gaussian_tail_profile",
    "plan_clipped_gap",
    "residual_moments",
    "tail_profile",
    "tail_spread",
]

#: Practical-mode assumptions of this statistic, printed in the plan table and the report.
ASSUMPTIONS = (
    "E[q^2] and E[q^4] per output are at most the Verifier's own estimates (pilot, inflated)",
    "the clipping tail E[(q^2 - C)_+] is at most an upper confidence bound from the "
    "Verifier's own verified runs (pilot and spot checks)",
    "completeness sizing only: B_{>=3}(q) <= tail_fraction * E[q^2] (soundness does not use it)",
    "the statistic's sampling deviation is z_{1-delta} sqrt(V) (normal approximation)",
)
#: Default completeness radius, as a fraction of epsilon.
COMPLETENESS_FRACTION = 0.1
_N_GRID = 28


def default_completeness_radius(epsilon: float) -> float:
    """The stated rule: honest scores with ``err <= epsilon / 10`` must pass."""
    return COMPLETENESS_FRACTION * epsilon


def gaussian_tail_profile(factor: float = 4.0) -> tuple[float, ...]:
    """Planned tail ``factor * E[(chi^2_1 - kappa)_+]`` at every clip multiple."""
    return tuple(factor * cg.chi2_tail_mean(k) for k in cg.CLIP_MULTIPLES)


def tail_spread(normalised: np.ndarray) -> tuple[float, ...]:
    """Standard deviation of ``(u - kappa)_+`` (pooled) at every clip multiple kappa."""
    u = np.asarray(normalised, dtype=np.float64).reshape(-1)
    if u.size < 2:
        return (0.0,) * len(cg.CLIP_MULTIPLES)
    return tuple(float(np.maximum(u - k, 0.0).std(ddof=1)) for k in cg.CLIP_MULTIPLES)


def tail_profile(normalised: np.ndarray) -> tuple[float, ...]:
    """Planned ``E[(u - kappa)_+]`` at every clip multiple: ``max(measured, planner's default)``.

    ``u = q^2 / E[q^2]`` pooled over outputs; a few hundred runs rarely see
    the tail, so the planned value is at least the planner's own default
    (:func:`gaussian_tail_profile`: 4 x a Gaussian residual's).  Planning only:
    the decision bounds the tail from every run the Verifier trained (pilot and
    spot checks).
    """
    u = np.asarray(normalised, dtype=np.float64).reshape(-1)
    floor = gaussian_tail_profile()
    return tuple(
        max(float(np.maximum(u - k, 0.0).mean()), f)
        for k, f in zip(cg.CLIP_MULTIPLES, floor, strict=True)
    )


@dataclass(frozen=True)
class ResidualMoments:
    """The moments a clipped-gap plan is sized from, measured on residuals ``q`` ``(n, Z)``.

    Attributes:
        second, fourth: per output ``mean(q^2)`` and ``max(mean(q^4), mean(q^2)^2)``.
        tail_profile, tail_spread: :func:`tail_profile` and :func:`tail_spread` of
            ``u = q^2 / mean(q^2)``, pooled over outputs.
        runs: n, the runs they were measured on.
        abs_tail_profile, abs_tail_spread: the degree-1 U-statistic's clipping
            tail, :func:`protocol.ustatistic.abs_tail_profile`.
    """

    second: tuple[float, ...]
    fourth: tuple[float, ...]
    tail_profile: tuple[float, ...]
    tail_spread: tuple[float, ...]
    runs: int
    abs_tail_profile: tuple[float, ...] = ()
    abs_tail_spread: tuple[float, ...] = ()

    def request_fields(self) -> dict[str, tuple[float, ...] | int | None]:
        """The :class:`PlanRequest` keyword arguments these moments fill in."""
        return {
            "second_moments": self.second,
            "fourth_moments": self.fourth,
            "tail_profile": self.tail_profile,
            "tail_spread": self.tail_spread,
            "tail_runs": self.runs,
            "abs_tail_profile": self.abs_tail_profile or None,
            "abs_tail_spread": self.abs_tail_spread or None,
        }


def residual_moments(residual: np.ndarray) -> ResidualMoments:
    """:class:`ResidualMoments` of residuals ``q`` ``(n, Z)``.

    What the Verifier plans from on its pilot, and the Prover's self-check on
    its held-out runs, so both size the same plan from the same formulas.
    """
    q = np.asarray(residual, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] < 1:
        raise InvalidArgument(f"residuals must have shape (n >= 1, Z), got {q.shape}")
    m2 = np.maximum(np.mean(q**2, axis=0), 1e-300)
    normalised = q**2 / m2[None, :]
    abs_profile, abs_spread = abs_tail_profile(q)
    return ResidualMoments(
        second=tuple(float(v) for v in m2),
        fourth=tuple(float(v) for v in np.maximum(np.mean(q**4, axis=0), m2 * m2)),
        tail_profile=tail_profile(normalised),
        tail_spread=tail_spread(normalised),
        runs=int(q.shape[0]),
        abs_tail_profile=abs_profile,
        abs_tail_spread=abs_spread,
    )


@functools.lru_cache(maxsize=256)
def _bias_per_unit(f: NodeFunctional) -> tuple[float, float]:
    return f.bias_range(1.0)


@dataclass(frozen=True)
class _Sized:
    cost: float
    functional: NodeFunctional
    kappa: float
    counts: tuple[int, ...]
    tolerated: int
    spot_checks: int
    deviations: np.ndarray
    clip_biases: np.ndarray
    corruption: np.ndarray
    honest_deviations: np.ndarray
    clip_shifts: np.ndarray


def planning_moments(r: PlanRequest) -> tuple[np.ndarray, np.ndarray]:
    """``(E[q^2], E[q^4])`` per output as planned: the request's, else from its variance."""
    z = r.n_outputs
    var = float(r.variance) if r.variance is not None else r.bound**2
    m2 = np.asarray(r.second_moments or (var,) * z, dtype=np.float64)
    m4 = np.asarray(r.fourth_moments or (3.0 * var * var,) * z, dtype=np.float64)
    return m2, m4


def planned_variances_at(
    r: PlanRequest, functional: NodeFunctional, counts: Sequence[int]
) -> np.ndarray:
    """The planned variance sum ``V`` of every output with ``counts`` pairs per node.

    The plan's ``planned_variances`` at its own counts; the screening
    (:mod:`protocol.screening`) calls it at a prefix's counts.
    """
    m2, m4 = planning_moments(r)
    return np.asarray(
        r.moment_inflation
        * cg.planned_variance_sum(functional.weights, counts, functional.nodes, m2, m4)
    )


class _Search:
    def __init__(self, r: PlanRequest) -> None:
        self.r = r
        z = r.n_outputs
        self.m2, self.m4 = planning_moments(r)
        means = r.tail_profile or gaussian_tail_profile()
        spread = r.tail_spread or (0.0,) * len(means)
        if not len(means) == len(spread) == len(cg.CLIP_MULTIPLES):
            raise InvalidArgument(
                f"tail_profile and tail_spread must hold {len(cg.CLIP_MULTIPLES)} values, "
                f"got {len(means)} and {len(spread)}"
            )
        self.radius = (
            r.completeness_radius
            if r.completeness_radius is not None
            else default_completeness_radius(r.epsilon)
        )
        # The first stage keeps FIRST_STAGE_SHARE of each budget; the rest is the
        # later stages' (protocol.decision.escalation, protocol.clipped_gap.stage_deltas).
        first = cg.FIRST_STAGE_SHARE
        self.delta_spot = first * r.delta / 2.0
        self.delta_sampling = first * r.delta / (4.0 * z)
        self.delta_tail = first * r.delta / (4.0 * z)
        self.tail_means, self.tail_spread = means, spread
        self.kappa_index = {k: i for i, k in enumerate(cg.CLIP_MULTIPLES)}
        self.tail_runs = r.tail_runs
        self.tails = self.tails_at(r.tail_runs)
        # Completeness is a separate guarantee with its own delta: the honest upper
        # deviation of each output at delta / (2 Z), the tail estimate with the rest.
        self.delta_honest = r.delta / (2.0 * z)
        tau = r.tolerance
        self.shift = 2.0 * (r.bound + r.g_bound) * tau + tau * tau
        self.max_pairs = r.max_prover_evaluations // 2
        self.inflation = r.moment_inflation
        self.evaluation_weight = r.prover_weight * r.epsilon / float(self.m2.max())
        self._sampling_memo: dict[
            tuple[NodeFunctional, int], tuple[tuple[int, ...], np.ndarray, np.ndarray] | None
        ] = {}

    def tails_at(self, verified_runs: int) -> tuple[float, ...]:
        """The tail the decision will charge at each clip multiple with this many verified runs.

        Its upper confidence bound :func:`protocol.clipped_gap.tail_upper` from the
        pilot's mean and spread, with ``verified_runs`` runs (pilot + spot checks).
        """
        if not self.tail_runs:
            return tuple(self.tail_means)
        return tuple(
            cg.tail_upper(m, s, verified_runs, self.delta_tail)
            for m, s in zip(self.tail_means, self.tail_spread, strict=True)
        )

    def _sampling(
        self, f: NodeFunctional, n: int
    ) -> tuple[tuple[int, ...], np.ndarray, np.ndarray] | None:
        """Pair counts and the soundness and honest deviations at ``n`` pairs (memoised)."""
        key = (f, n)
        if key not in self._sampling_memo:
            counts = tuple(f.allocation(n))
            if 2 * sum(counts) > self.r.max_prover_evaluations:
                self._sampling_memo[key] = None
            else:
                variance = planned_variances_at(self.r, f, counts)
                self._sampling_memo[key] = (
                    counts,
                    cg.deviation(variance, self.delta_sampling),  # soundness side, in U
                    cg.deviation(variance, self.delta_honest),  # completeness side
                )
        return self._sampling_memo[key]

    def size(self, f: NodeFunctional, kappa: float, tail: float, n: int) -> _Sized | None:
        r = self.r
        sampled = self._sampling(f, n)
        if sampled is None:
            return None
        counts, dev, dev_honest = sampled
        n_points = 2 * sum(counts)
        clips = kappa * self.m2
        beta = cg.clip_bias(f.weights, tail * self.m2)  # charged in U: the tail's bound
        # The honest statistic itself moves by the tail's expectation, not its bound.
        shift = cg.clip_bias(f.weights, self.tail_means[self.kappa_index[kappa]] * self.m2)
        lo, hi = _bias_per_unit(f)
        down, up = -lo * self.m2, hi * r.tail_fraction * self.m2
        tol = f.l1_norm * self.shift
        corruption = r.epsilon - self.radius - up - shift - beta - dev - dev_honest - 2 * tol - down
        if r.verifier_trains_all:  # local mode: no Prover values, nothing to spot-check
            if np.any(corruption < 0):
                return None
            return _Sized(
                float(n_points), f, kappa, counts, 0, 0, dev, beta, 0.0 * corruption,
                dev_honest, shift,
            )  # fmt: skip
        if np.any(corruption <= 0):
            return None
        lev = cg.leverage(f.weights, counts, clips)
        tolerated = int(np.floor(corruption / lev).min())
        k = min(n_points, math.ceil(n_points * math.log(1.0 / self.delta_spot) / (tolerated + 1)))
        cost = k + self.evaluation_weight * n_points
        return _Sized(
            cost, f, kappa, counts, tolerated, k, dev, beta, corruption, dev_honest, shift
        )

    def best(self) -> _Sized:
        r = self.r
        low = -rho_max(r.p)
        top = max(self.max_pairs, 8)
        grid = np.unique(np.geomspace(64, top, _N_GRID).astype(np.int64))
        best: _Sized | None = None
        for beta in LP_BETAS:
            f = lp_functional(beta, low)
            for kappa, tail in zip(cg.CLIP_MULTIPLES, self.tails, strict=True):
                for n in grid:
                    s = self.size(f, kappa, tail, int(n))
                    if s is not None and (best is None or s.cost < best.cost):
                        best = s
        if best is not None:  # refine n around the best coarse point
            tail = self.tails[cg.CLIP_MULTIPLES.index(best.kappa)]
            centre = sum(best.counts)
            for n in np.unique(np.geomspace(centre / 1.7, centre * 1.7, 24).astype(np.int64)):
                s = self.size(best.functional, best.kappa, tail, int(n))
                if s is not None and s.cost < best.cost:
                    best = s
        if best is None:
            raise InvalidArgument(
                f"sampling: no clipped-gap plan within {r.max_prover_evaluations:,d} Prover "
                f"evaluations leaves a corruption budget at epsilon={r.epsilon:.6g} with "
                f"completeness radius {self.radius:.6g}; raise epsilon, the evaluation cap or "
                "lower the completeness radius"
            )
        return best


def plan_clipped_gap(request: PlanRequest) -> Plan:
    """The cheapest clipped-gap plan; :class:`InvalidArgument` if none fits.

    The tail the decision charges narrows with every verified run, spot checks
    included, so the search is repeated with the spot checks of the previous
    round counted: ``k_0`` (pilot only), ``k_1`` (pilot + ``k_0``), ``k_2`` (pilot +
    ``k_1``).  The plan draws ``max(k_1, k_2)`` spot checks, at least the ``k_1`` its
    tail assumed, so the planned tail is what the decision will compute.
    Local mode (``verifier_trains_all``) keeps the tail of the pilot alone: every
    challenge point is a verified run there, and the decision's tail is never
    below the planned one.
    """
    search = _Search(request)
    s = search.best()
    if search.tail_runs and not request.verifier_trains_all:
        assumed = s.spot_checks
        search.tails = search.tails_at(search.tail_runs + assumed)
        s = search.best()
        assumed = s.spot_checks
        search.tails = search.tails_at(search.tail_runs + assumed)
        s = search.best()
        if s.spot_checks < assumed:
            s = dataclasses.replace(s, spot_checks=assumed)
    return _plan(search, s)


def _plan(search: _Search, s: _Sized) -> Plan:
    """The :class:`~protocol.plan_types.Plan` of the chosen sizing ``s``."""
    r, f = search.r, s.functional
    clips = tuple(float(c) for c in s.kappa * search.m2)
    tail_index = cg.CLIP_MULTIPLES.index(s.kappa)
    tails = tuple(float(search.tails[tail_index] * m) for m in search.m2)
    variances = tuple(float(v) for v in planned_variances_at(r, f, s.counts))
    lev = cg.leverage(f.weights, s.counts, np.asarray(clips))
    used = s.tolerated * lev
    lo, hi = f.bias_range(1.0)
    down = -lo * search.m2
    up = hi * r.tail_fraction * search.m2
    tol = f.l1_norm * search.shift
    thresholds = r.epsilon - (s.deviations + s.clip_biases + tol + down + used)
    return Plan(
        request=r,
        functional=f,
        pairs_per_node=s.counts,
        threshold=float(thresholds.min()),
        value_bound=r.bound + r.g_bound,
        output_range=2.0 * r.bound,
        clip_at=None,
        tail_bound=float(search.m2.max()),
        bias_lower=float(-down.max()),
        bias_upper=float(up.max()),
        tolerance_slack=tol,
        corruption_budget=float(used.max()),
        sampling_error=float(s.deviations.max()),
        sampling_error_mse=0.0,
        sampling_error_honest=float(s.honest_deviations.max()),
        clip_shift=float(s.clip_shifts.max()),
        leverage=float(lev.max()),
        tolerated_corruptions=s.tolerated,
        spot_checks=s.spot_checks,
        local_trainings=0,
        delta_sampling=search.delta_sampling,
        delta_spot=search.delta_spot,
        budget=_budget(search, s, float(used.max()), float(down.max()), tol),
        clip_levels=clips,
        clip_bias=float(s.clip_biases.max()),
        planned_tails=tails,
        planned_variances=variances,
        delta_tail=search.delta_tail,
        assumptions=tuple(a.replace("tail_fraction", f"{r.tail_fraction:g}") for a in ASSUMPTIONS),
    )


def _budget(
    search: _Search, s: _Sized, corruption: float, down: float, tol: float
) -> tuple[BudgetItem, ...]:
    """The soundness terms of the plan table, with what each one stands for."""
    r = search.r
    return (
        BudgetItem(
            "corruption",
            corruption,
            "none: the Verifier evaluates every point itself"
            if r.verifier_trains_all
            else f"up to {s.tolerated:,d} corrupted pairs unseen; more caught w.p. "
            f">= {1 - search.delta_spot:.4g}",
        ),
        BudgetItem(
            "clipping bias",
            float(s.clip_biases.max()),
            f"||w||_1 E[(q^2-C)_+], C = {s.kappa:g} E[q^2] per output",
        ),
        BudgetItem("bias (downward)", down, "LP functional: none beyond round-off"),
        BudgetItem("tolerance slack", tol, f"tau={r.tolerance:.3g} on every evaluation"),
        BudgetItem(
            "sampling (Prover)",
            float(s.deviations.max()),
            f"normal approximation, delta={search.delta_sampling:.3g} per output",
        ),
    )
