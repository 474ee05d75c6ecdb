"""What an audit asks for (:class:`PlanRequest`) and what the planner commits to (:class:`Plan`).

Both are plain, frozen data; the planners that turn one into the other live
with the statistics, in :mod:`protocol.stats` (:func:`protocol.plan.make_plan`
asks the registry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from protocol.challenge import node_of_pair, rho_of_pair
from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional
from protocol.hypercube import check_p

__all__ = [
    "ESTIMATORS",
    "BudgetItem",
    "DeltaShare",
    "Estimator",
    "Mode",
    "Plan",
    "PlanDetails",
    "PlanRequest",
    "Planning",
]

Mode = Literal["committed", "paper"]
Planning = Literal["rigorous", "practical"]
Estimator = Literal["chebyshev", "three-point", "three-point-nnls", "lp", "degree-1"]

#: Estimator families by name (the CLI choices come from here).
ESTIMATORS: tuple[str, ...] = ("chebyshev", "three-point", "three-point-nnls", "lp", "degree-1")


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
            retrainings + prover_weight * (epsilon / max_z E[q_z^2]) * Prover
            evaluations`` under the cap (scale-free: :mod:`protocol.plan_clipped`).
        statistic: the registered statistic to plan with (:mod:`protocol.stats`);
            ``None``: the one serving mode, planning and estimator.
        n_items: N, the task's number of training items (the degree-1
            U-statistic's variance grows with N + 1); ``None``: not known.
        abs_tail_profile, abs_tail_spread: degree-1 U-statistic planning: mean
            and standard deviation of ``(|q| / sqrt(E q^2) - a)_+^2`` at every
            multiple a of :data:`protocol.ustatistic.CLIP_MULTIPLES` over the
            ``tail_runs`` pilot runs (default: a Gaussian residual's, times 4).
        verifier_trains_all: ``lp`` planning, local mode: the Verifier evaluates
            every challenge point itself, so nothing is corrupted, no spot check
            is drawn and the whole margin goes to estimation; the planner
            minimises the points it trains.
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
    tail_fraction: float = 0.1
    max_prover_evaluations: int = 20_000_000
    prover_weight: float = 0.05
    moment_inflation: float = 1.5
    verifier_trains_all: bool = False
    statistic: str | None = None
    n_items: int | None = None
    abs_tail_profile: tuple[float, ...] | None = None
    abs_tail_spread: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self._check_core()
        self._check_planner_options()
        self._check_statistic_fit()

    def _check_core(self) -> None:
        """Accuracy, bound, tolerance, shape, and the mode/planning/estimator names."""
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

    def _check_planner_options(self) -> None:
        """The planner's tuning options: radius, inflation, tail, caps, moments, G."""
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

    def _check_statistic_fit(self) -> None:
        """Practical planning's variance and clip (which statistic fits: :mod:`protocol.stats`)."""
        if self.planning == "practical":
            if self.variance is None:
                raise InvalidArgument("practical planning needs a declared or pilot variance")
            _positive("variance", self.variance)
            _positive("clip_sigmas", self.clip_sigmas)

    @property
    def g_bound(self) -> float:
        return self.bound if self.attribution_bound is None else self.attribution_bound


def _positive(name: str, value: float) -> None:
    if not (value > 0.0 and math.isfinite(value)):
        raise InvalidArgument(f"{name} must be finite and > 0, got {value}")


@dataclass(frozen=True)
class DeltaShare:
    """One share of delta: the failure probability one term of the statistic may spend.

    ``delta`` is per use; ``uses`` is how many times it is spent (e.g. once per
    output), so the shares' ``delta * uses`` add up to at most the request's delta.
    """

    name: str
    delta: float
    uses: int = 1

    @property
    def total(self) -> float:
        return self.delta * self.uses


class PlanDetails(Protocol):
    """A statistic's own plan details (:attr:`Plan.details`), beyond the shared fields."""

    @property
    def completeness_radius(self) -> float:
        """Honest scores with err below this pass with probability ``>= 1 - delta``."""
        ...

    def table_lines(self, plan: Plan) -> list[str]:
        """The plan table's account of the statistic: its terms, where epsilon goes."""
        ...


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
    clip_shift: float | None = None
    statistic_name: str = ""
    delta_split: tuple[DeltaShare, ...] = ()
    details: PlanDetails | None = None

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
        """The registered statistic that made this plan (:mod:`protocol.stats`)."""
        return self.statistic_name

    @property
    def slack(self) -> float:
        """Unused soundness margin ``epsilon - threshold - terms`` (>= 0).

        0 for plans with their own :attr:`details`, whose terms fill epsilon.
        """
        if self.details is not None:
            return 0.0
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
        at ``delta / (2Z)`` per output, where the others charge the planned one,
        and the clipping tail's expected shift rather than its upper bound.
        A statistic with its own :attr:`details` states its own radius.
        """
        if self.details is not None:
            return self.details.completeness_radius
        sampling = (
            self.sampling_error
            if self.sampling_error_honest is None
            else self.sampling_error_honest
        )
        shift = self.clip_bias if self.clip_shift is None else self.clip_shift
        return max(
            0.0,
            self.threshold
            - shift
            - self.bias_upper
            - self.tolerance_slack
            - sampling
            - self.sampling_error_mse,
        )

    def node_of_pair(self) -> np.ndarray:
        """Node index of every pair: int64 ``(n_pairs,)`` (:mod:`protocol.challenge` layout)."""
        return node_of_pair(self.pairs_per_node)

    def rho_of_pair(self) -> np.ndarray:
        """Node value rho of every pair: float64 ``(n_pairs,)`` (:mod:`protocol.challenge`)."""
        return rho_of_pair(self.functional.nodes, self.pairs_per_node)

    def _epsilon_split(self) -> list[str]:
        """Clipped-gap plans: where epsilon goes, in numbers rounded to what they mean.

        For each output the terms add up to epsilon (the planner leaves no
        slack); shown is each term's largest value over the outputs.
        """
        r = self.request
        eps = r.epsilon

        def row(name: str, value: float, note: str) -> str:
            value = 0.0 if abs(value) < 1e-9 * eps else value
            return f"    {name:<24} {value:>9.3g}  {100 * value / eps:>5.1f}%  {note}"

        honest = self.sampling_error_honest or 0.0
        budget = {b.name: b for b in self.budget}
        lines = [
            f"  accept an output iff err_hat + sampling + clipping + corruption + tolerance "
            f"< epsilon = {eps:.3g}",
            "  where epsilon goes (largest value over the outputs; % of epsilon):",
            "   kept for honest scores (completeness):",
            row(
                "completeness radius",
                self.completeness_radius,
                f"scores with err up to this pass w.p. >= {1 - r.delta:g}",
            ),
            row("honest sampling noise", honest, "how far err_hat may land above err"),
            row(
                "upward bias allowance",
                self.bias_upper,
                f"degree >= 3 terms, assumed <= {r.tail_fraction:g} E[q^2]",
            ),
            row("clipping shift", self.clip_shift or 0.0, "the tail's expected effect"),
            "   charged in every certified bound (soundness):",
            row("sampling", self.sampling_error, budget["sampling (Prover)"].note),
            row("clipping bias", self.clip_bias or 0.0, budget["clipping bias"].note),
            row("corruption", self.corruption_budget, budget["corruption"].note),
            row("tolerance", self.tolerance_slack, f"tau = {r.tolerance:.3g} per evaluation"),
        ]
        if abs(self.bias_lower) >= 1e-9 * eps:
            lines.append(row("bias (downward)", abs(self.bias_lower), "LP round-off"))
        lines.append(
            f"  spot checks: up to {self.spot_checks:,d}; fewer when the results sit well "
            "inside epsilon (the Verifier sizes them after the results arrive)"
        )
        return lines

    def table(self) -> str:
        """A readable, itemised account of the plan and where epsilon goes."""
        r = self.request
        lines = [
            f"pacda plan: mode={r.mode} planning={r.planning} estimator={self.functional.name}"
            + (f" statistic={self.statistic}" if self.statistic else ""),
            f"  epsilon={r.epsilon:.6g} delta={r.delta:.3g} b={r.bound:.6g} tau={r.tolerance:.3g}"
            f" Z={r.n_outputs} p={r.p:.3g}",
        ]
        if self.details is not None:
            lines.extend(self.details.table_lines(self))
            lines.extend(self._delta_and_assumptions())
            return "\n".join(lines)
        lines += [
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
            for item in self.budget:
                lines.append(f"    {item.name:<22} {item.value:>12.6g}  {item.note}")
            lines.append(f"    {'slack':<22} {self.slack:>12.6g}  unused margin")
            lines.append(
                f"  completeness: honest err <= {self.completeness_radius:.6g} accepted "
                f"w.p. >= {1 - r.delta:.6g}"
            )
        else:
            lines.extend(self._epsilon_split())
        lines.extend(self._delta_and_assumptions())
        return "\n".join(lines)

    def _delta_and_assumptions(self) -> list[str]:
        r = self.request
        lines: list[str] = []
        if self.delta_split:
            lines.append(f"  delta = {r.delta:.3g} split by {self.statistic}:")
            for share in self.delta_split:
                uses = f" x {share.uses}" if share.uses > 1 else ""
                lines.append(f"    {share.name:<24} {share.delta:>10.3g}{uses}")
        if self.assumptions:
            lines.append("  practical-mode assumptions:")
            lines.extend(f"    - {a}" for a in self.assumptions)
        return lines
