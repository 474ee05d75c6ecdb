"""The degree-1 U-statistic: err with no bias from any degree (committed mode, practical planning).

The challenge is ``n`` independent points (pairs at the single node ``rho =
0``); the Verifier computes ``U`` over the committed values clipped at a
per-output level ``c_z = a sqrt(E q_z^2)`` and accepts an output iff

    (sqrt(U + corruption + tolerance + sampling) + sqrt(T_up))^2 < epsilon,

every term from :mod:`protocol.ustatistic` (where each is derived).  The
plan fixes n, the clip multiple a and the spot checks k before the challenge
(so no term's confidence level depends on the data); the spot checks are the
plan's k, drawn uniformly among the n committed points after the signed root.

**Planning** (:class:`_Planner`).  For every clip multiple a and a grid of n,
the planner gives each output the room ``(sqrt(eps) - sqrt(T_up))^2 - (sqrt(r) +
sqrt(T))^2`` (r the completeness radius, T the pilot's expected tail at c and
T_up its upper confidence bound) and spends it on the honest and the
soundness-side sampling deviations, the tolerance and corruption; the
corruption room fixes the altered points tolerated, l, and so the spot checks
``k`` (:func:`protocol.ustatistic.spot_checks_for`).  It keeps the (a, n) that
minimise ``k + prover_weight * (epsilon / max_z E[q_z^2]) * n``, as the clipped
gap's planner does.  The model of ``|H_i| / (n - 1)`` behind the planned
corruption is Gaussian with variance ``r + E[q^2] (N + 1) / (n - 1)`` (the
degree-<=1 part and the noise of the other points' average); only
completeness depends on it: the decision charges what the data show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from protocol import ustatistic as us
from protocol.clipped_gap import tail_upper
from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional
from protocol.plan_types import BudgetItem, DeltaShare, Estimator, Plan, PlanRequest
from protocol.stats.base import AuditData, ChallengeLayout, committed_residuals
from protocol.verdict import Decision, OutputDecision, pair_residuals

__all__ = ["UStatPlan", "UStatistic"]

FloatArray = NDArray[np.float64]

#: Shares of delta: spot checks, the kernel bound, sampling (per output), tail (per output).
SPOT_SHARE, KERNEL_SHARE, SAMPLING_SHARE, TAIL_SHARE = 0.3, 0.05, 0.35, 0.3
#: The planner's n grid: from the least n the sampling terms allow, up to this many times it.
N_RANGE, N_STEPS = 40.0, 28
#: Completeness radius when the request names none, as a fraction of epsilon.
DEFAULT_RADIUS = 0.5
#: Spot checks are sized so that the bound with the pilot's tail is below this share of
#: epsilon (a margin for rounding: the decision's tail is never above the pilot's).
CHOICE_MARGIN = 0.999
#: The fewest spot checks an audit draws (when the plan has as many).
MIN_SPOT_CHECKS = 20
#: Prefixes of the result stream screened, as fractions of the pairs ...
SCREEN_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
#: ... each holding at least this many pairs (twice as many independent points).
MIN_SCREEN_PAIRS = 250
#: Multiplier of the Gaussian tail when the pilot gave no tail profile.
GAUSSIAN_TAIL_FACTOR = 4.0
#: The functional of a challenge of independent points: one node, rho = 0.
INDEPENDENT = NodeFunctional(name="independent points", nodes=(0.0,), weights=(1.0,), degree=0)


def _gaussian_abs_tail(a: float) -> float:
    """``E[(|Z| - a)_+^2]`` for a standard normal Z: ``2 [(1 + a^2)(1 - Phi(a)) - a phi(a)]``."""
    nd = NormalDist()
    return max(0.0, 2.0 * ((1.0 + a * a) * (1.0 - nd.cdf(a)) - a * nd.pdf(a)))


@dataclass(frozen=True)
class UStatPlan:
    """The U-statistic's own plan details (:attr:`protocol.plan_types.Plan.details`).

    Per-output tuples have one value per output; the terms are the planned
    values at the worst output (the decision computes its own from the data).
    """

    multiple: float
    clip: tuple[float, ...]
    points: int
    tolerated: int
    kappa: float
    n_items: int
    radius: float
    zeta2: tuple[float, ...]
    zeta1_sound: tuple[float, ...]
    tail_expected: tuple[float, ...]
    tail_upper: tuple[float, ...]
    deviation: float
    deviation_honest: float
    corruption: float
    tolerance: float
    delta_spot: float
    delta_kernel: float
    delta_sampling: float
    delta_tail: float
    local: bool = False

    @property
    def completeness_radius(self) -> float:
        return self.radius

    def planned_variance(self) -> FloatArray:
        """Per output: ``Var U`` at err = epsilon (the decision's floor)."""
        return us.variance(self.points, np.asarray(self.zeta1_sound), np.asarray(self.zeta2))

    def table_lines(self, plan: Plan) -> list[str]:
        r = plan.request
        eps = r.epsilon

        def row(name: str, value: float, note: str) -> str:
            return f"    {name:<24} {value:>9.3g}  {100 * value / eps:>5.1f}%  {note}"

        tail = max(self.tail_upper)
        return [
            f"  statistic: degree-1 U-statistic over {self.points:,d} independent points "
            f"(no bias from any degree; N = {self.n_items:,d})",
            f"  values clipped at {self.multiple:g} x sqrt(E[q^2]) per output "
            f"(largest clip {max(self.clip):.4g})",
            f"  Prover evaluations        {plan.prover_evaluations:>14,d}",
            f"  Verifier spot checks      {plan.spot_checks:>14,d}",
            f"  Verifier retrainings      {plan.verifier_retrainings:>14,d}  (plus the pilot)",
            "  accept an output iff (sqrt(U + corruption + tolerance + sampling) + "
            f"sqrt(tail))^2 < epsilon = {eps:.3g}",
            "  planned terms (worst output; % of epsilon):",
            row(
                "completeness radius",
                self.radius,
                f"scores with err up to this pass w.p. >= {1 - r.delta:g}",
            ),
            row("honest sampling noise", self.deviation_honest, "how far U may land above err"),
            row(
                "sampling",
                self.deviation,
                f"normal approximation, delta={self.delta_sampling:.3g} per output",
            ),
            row(
                "corruption",
                self.corruption,
                f"up to {self.tolerated:,d} altered values unseen (with their cross terms); "
                f"more caught w.p. >= {1 - self.delta_spot:.4g}",
            ),
            row("tolerance", self.tolerance, f"tau = {r.tolerance:.3g} on every value"),
            row(
                "clipping tail",
                tail,
                f"E[(|q| - c)_+^2] upper bound, delta={self.delta_tail:.3g} per output",
            ),
        ]


class UStatistic:
    """The degree-1 U-statistic (committed mode, practical planning, independent points)."""

    name = "u-statistic"
    summary = "degree-1 U-statistic over independent points: no bias from any degree"
    layout = ChallengeLayout(mode="committed")
    plans_within_cap = True
    estimators: tuple[Estimator, ...] = ("degree-1",)
    plannings: tuple[str, ...] = ("practical",)

    def check(self, request: PlanRequest) -> None:
        if request.mode != self.layout.mode or request.planning not in self.plannings:
            raise InvalidArgument(
                f"the {self.name} statistic serves committed mode with practical planning only"
            )
        if request.estimator not in (*self.estimators, "lp"):
            raise InvalidArgument(
                f"the {self.name} statistic takes the degree-1 estimator, not {request.estimator!r}"
            )
        if request.n_items is None or request.n_items < 1:
            raise InvalidArgument(f"the {self.name} statistic needs the task's N (n_items)")

    def plan(self, request: PlanRequest) -> Plan:
        return _Planner(request).plan()

    def delta_split(self, plan: Plan) -> tuple[DeltaShare, ...]:
        d = _details(plan)
        z = plan.request.n_outputs
        return (
            DeltaShare("spot checks", d.delta_spot),
            DeltaShare("kernel bound", d.delta_kernel),
            DeltaShare("sampling, per output", d.delta_sampling, z),
            DeltaShare("clipping tail, per output", d.delta_tail, z),
        )

    def assumptions(self, plan: Plan) -> tuple[str, ...]:
        d = _details(plan)
        return (
            "U is normally distributed to within its deviation at the planned or observed "
            "variance, whichever is larger (a U-statistic over thousands of points)",
            "the runs the Verifier trained itself (pilot and spot checks) represent the "
            f"residuals' tail beyond the clip ({d.multiple:g} x sqrt(E[q^2])): E[(|q| - c)_+^2] "
            "is bounded by their normal-approximation upper confidence bound",
            "the pilot's E[q^2] (inflated) sizes the plan; completeness, not soundness, "
            "depends on it",
        )

    def spot_checks(self, plan: Plan, data: AuditData) -> int:
        """The fewest spot checks (at least :data:`MIN_SPOT_CHECKS`) whose bound could accept.

        With ``l(k)`` the altered points k draws may miss
        (:func:`protocol.ustatistic.tolerated_for`), the smallest k at which the
        bound, with the pilot's tail (:func:`_tail`), falls below
        :data:`CHOICE_MARGIN` epsilon; the plan's own when none does.  The draws
        come after this choice, from the Verifier's private randomness, so
        whatever the results, more than ``l(k)`` altered points are caught with
        probability ``>= 1 - delta_spot``.
        """
        d = _details(plan)
        if d.local:
            return 0
        run = _Pass.of(plan, d, data)
        tail = _tail(plan, d, data.verified_residuals, with_spot_checks=False)
        floor = min(plan.spot_checks, MIN_SPOT_CHECKS)

        def fits(k: int) -> bool:
            ell = us.tolerated_for(d.points, k, d.delta_spot)
            return bool(np.all(run.terms(ell, tail).upper < CHOICE_MARGIN * plan.request.epsilon))

        if not fits(plan.spot_checks):
            return plan.spot_checks
        lo, hi = floor, plan.spot_checks  # fits(hi)
        if fits(lo):
            return lo
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return hi

    def screen_looks(self, plan: Plan) -> tuple[int, ...]:
        """Prefixes of :data:`SCREEN_FRACTIONS` of the pairs, each of at least
        :data:`MIN_SCREEN_PAIRS` pairs (none in local mode: nothing streams)."""
        if _details(plan).local:
            return ()
        n = plan.n_pairs
        looks = sorted({int(n * f) for f in SCREEN_FRACTIONS})
        return tuple(m for m in looks if m >= MIN_SCREEN_PAIRS)

    def screening_bounds(self, plan: Plan, data: AuditData, delta: float) -> FloatArray:
        """Lower bounds on err from the first pairs.

        ``(sqrt(max(U - z sqrt(V), 0)) - sqrt(T_up))_+^2`` per output.

        The prefix's points are independent draws, so U over their clipped
        values is unbiased for ``|E[v phi]|^2`` (an honest Prover's values);
        ``|E[r phi]| >= |E[v phi]| - sqrt(T)`` (the clipping term) with the
        plan's tail bound; V is the prefix's observed variance (normal
        approximation, as in the decision).
        """
        d = _details(plan)
        run = _Pass._compute(plan, d, data, planned_floor=False)
        z_low = run.estimate - us.deviation(run.observed_variance, delta)
        root = np.sqrt(np.maximum(z_low, 0.0)) - np.sqrt(np.asarray(d.tail_upper))
        return np.asarray(np.maximum(root, 0.0) ** 2)

    def decide(self, plan: Plan, data: AuditData) -> Decision:
        d = _details(plan)
        run = _Pass.of(plan, d, data)
        k = plan.spot_checks if data.spot_checks is None else int(data.spot_checks)
        tail = _tail(plan, d, data.verified_residuals, with_spot_checks=True)
        ell = 0 if d.local else us.tolerated_for(d.points, k, d.delta_spot)
        return _verdict(plan, run, ell, tail, early=False)

    def decide_early(self, plan: Plan, data: AuditData) -> Decision | None:
        """The rejection before any spot check when no spot-check outcome could accept.

        Spot checks enter the bound through the tail term (``>= 0``) and the
        tolerated alterations; if the bound with no tail and the plan's full
        spot checks already reaches epsilon, the audit rejects now.
        """
        d = _details(plan)
        run = _Pass.of(plan, d, data)
        ell = 0 if d.local else us.tolerated_for(d.points, plan.spot_checks, d.delta_spot)
        decision = _verdict(plan, run, ell, np.zeros(plan.request.n_outputs), early=True)
        return None if decision.accept else decision


def _tail(
    plan: Plan, d: UStatPlan, verified: FloatArray | None, *, with_spot_checks: bool
) -> FloatArray:
    """The clipping tail's bound: the smaller of the pilot's and every verified run's.

    ``verified`` holds the pilot's ``plan.request.tail_runs`` runs first, then
    the spot checks' (:func:`verifier.core.verified_residuals`).  Each bound
    takes half of ``delta_tail``, so the smaller holds with probability
    ``>= 1 - delta_tail``; the spot checks are sized with the pilot's, which
    the decision's can then only lower: more verified runs never turn an
    accepting size into a rejection.
    """
    clip = np.asarray(d.clip)
    if verified is None or len(verified) < 2:
        return np.asarray(d.tail_upper)
    runs = plan.request.tail_runs
    pilot = verified[:runs] if 2 <= runs <= len(verified) else verified
    tail = us.clipping_tail(pilot, clip, d.delta_tail / 2.0)
    if with_spot_checks and len(verified) > len(pilot):
        tail = np.minimum(tail, us.clipping_tail(verified, clip, d.delta_tail / 2.0))
    return np.asarray(tail)


def _verdict(plan: Plan, run: _Pass, ell: int, tail: FloatArray, *, early: bool) -> Decision:
    eps = plan.request.epsilon
    terms = run.terms(ell, tail)
    upper = terms.upper
    verdicts = []
    for z in range(plan.request.n_outputs):
        accept = bool(upper[z] < eps)
        reason = ""
        if not accept:
            when = " (before any spot check)" if early else ""
            reason = (
                f"output {z}: certified bound {upper[z]:.6g} >= epsilon {eps:.6g}{when}: "
                f"U {terms.estimate[z]:.4g} + sampling {terms.deviation[z]:.3g} + corruption "
                f"{terms.corruption[z]:.3g} ({ell:,d} altered values tolerated) + tolerance "
                f"{terms.tolerance[z]:.3g}, clipping tail {terms.tail[z]:.3g}"
            )
        dev = float(terms.deviation[z])
        est = float(terms.estimate[z])
        verdicts.append(
            OutputDecision(
                output=z,
                estimate=est,
                standard_error=float(math.sqrt(max(terms.observed_variance[z], 0.0))),
                interval=(est - dev, est + dev),
                certified_upper=float(upper[z]),
                accept=accept,
                clipped_fraction=float(run.clipped[z]),
                reason=reason,
            )
        )
    return Decision(all(v.accept for v in verdicts), eps, tuple(verdicts))


def _details(plan: Plan) -> UStatPlan:
    if not isinstance(plan.details, UStatPlan):
        raise InvalidArgument(f"plan by {plan.statistic!r} is not a U-statistic plan")
    return plan.details


def _prefix_residuals(plan: Plan, data: AuditData) -> tuple[FloatArray, FloatArray]:
    """Checked residuals of the first pairs of the stream, ``(m, Z)`` each."""
    if data.first_predictions is None or data.second_predictions is None:
        raise InvalidArgument("screening needs g_a at the challenge points")
    return pair_residuals(
        plan,
        first_outputs=data.first_outputs,
        second_outputs=data.second_outputs,
        first_predictions=data.first_predictions,
        second_predictions=data.second_predictions,
        rows=data.first_outputs.shape[0],
    )


def _interleave(first: NDArray[Any], second: NDArray[Any]) -> NDArray[Any]:
    """Rows ``first[0], second[0], first[1], ...``: the challenge's point order."""
    out = np.empty((2 * first.shape[0], *first.shape[1:]), dtype=first.dtype)
    out[0::2], out[1::2] = first, second
    return out


@dataclass(frozen=True)
class _Pass:
    """One pass over the challenge's values: everything but the spot checks' share."""

    plan: Plan
    details: UStatPlan
    values: FloatArray
    kernel: us.KernelPass
    estimate: FloatArray
    deviation: FloatArray
    observed_variance: FloatArray
    clipped: FloatArray

    @classmethod
    def of(cls, plan: Plan, d: UStatPlan, data: AuditData) -> _Pass:
        """The pass over ``data`` (the last one is kept: an audit asks up to three times)."""
        key = (plan, data.first_outputs, data.second_outputs, data.first_predictions,
               data.second_predictions, data.first_points, data.second_points)  # fmt: skip
        if _LAST and all(a is b for a, b in zip(_LAST[0], key, strict=True)):
            cached: _Pass = _LAST[1]
            return cached
        run = cls._compute(plan, d, data)
        _LAST[:] = [key, run]
        return run

    @classmethod
    def _compute(
        cls, plan: Plan, d: UStatPlan, data: AuditData, *, planned_floor: bool = True
    ) -> _Pass:
        if data.first_points is None or data.second_points is None:
            raise InvalidArgument("the u-statistic needs the challenge points")
        if planned_floor:  # the whole challenge
            r1, r2 = committed_residuals(plan, data)
        else:  # a prefix of it (screening)
            r1, r2 = _prefix_residuals(plan, data)
        r = _interleave(r1, r2)
        x = _interleave(np.asarray(data.first_points), np.asarray(data.second_points))
        n = r.shape[0]
        clip = np.asarray(d.clip)
        v = np.clip(r, -clip[None, :], clip[None, :])
        kp = us.kernel_pass(x, plan.request.p, v)
        zeta1 = np.var(v * kp.h / (n - 1.0), axis=0, ddof=1)
        observed = us.variance(n, zeta1, kp.zeta2)
        floor = d.planned_variance() if planned_floor else np.zeros_like(observed)
        dev = us.deviation(np.maximum(observed, floor), d.delta_sampling)
        clipped = np.mean(np.abs(r) > clip[None, :], axis=0)
        return cls(plan, d, v, kp, us.ustatistic(v, kp.h), dev, observed, np.asarray(clipped))

    def terms(self, ell: int, tail: FloatArray) -> us.UTerms:
        """Every term of the bound with ``ell`` altered values tolerated and this ``tail``."""
        d, kp = self.details, self.kernel
        n = self.values.shape[0]
        clip = np.asarray(d.clip)
        h_abs = np.abs(kp.h)
        ell = min(ell, n)
        gram = us.sparse_gram_bound(ell, n, d.n_items, self.plan.request.p, d.delta_kernel / 2.0)
        cross = us.cross_bound(ell, clip, d.kappa, gram, float(np.min(kp.norms)))
        corruption = us.corruption_bound(kp.h, self.values, ell, clip, cross)
        tolerance = us.tolerance_bound(
            h_abs, self.plan.request.tolerance, kp.eigen, clip=clip, tolerated=ell, gram=gram,
            diag_max=float(np.max(kp.norms)),
        )  # fmt: skip
        return us.UTerms(
            self.estimate, corruption, tolerance, self.deviation, tail, self.observed_variance
        )


#: The last pass (its inputs by identity, and the pass): see :meth:`_Pass.of`.
_LAST: list[Any] = []


@dataclass(frozen=True)
class _Choice:
    cost: float
    multiple: float
    points: int
    tolerated: int
    spot_checks: int
    deviation: float
    deviation_honest: float
    corruption: float
    tolerance: float


class _Planner:
    """The U-statistic's planner (module docstring)."""

    def __init__(self, request: PlanRequest) -> None:
        r = self.r = request
        if r.n_items is None:
            raise InvalidArgument("the u-statistic needs the task's N (n_items)")
        self.n_items = int(r.n_items)
        z = r.n_outputs
        var = float(r.variance) if r.variance is not None else r.bound**2
        m2 = r.second_moments if r.second_moments is not None else (var,) * z
        self.m2 = np.asarray(m2, dtype=np.float64)
        self.eps = r.epsilon
        self.radius = (
            r.completeness_radius
            if r.completeness_radius is not None
            else DEFAULT_RADIUS * r.epsilon
        )
        self.delta_spot = SPOT_SHARE * r.delta
        self.delta_kernel = KERNEL_SHARE * r.delta
        self.delta_sampling = SAMPLING_SHARE * r.delta / z
        self.delta_tail = TAIL_SHARE * r.delta / z
        self.inflation = r.moment_inflation

    # -- the tail at a clip multiple ------------------------------------------------
    def _tails(self, i: int, a: float) -> tuple[FloatArray, FloatArray]:
        """Expected and upper-bound tail ``E[(|q| - c)_+^2]`` per output at multiple ``a``."""
        r = self.r
        if r.abs_tail_profile is not None and r.abs_tail_spread is not None and r.tail_runs > 1:
            mean = r.abs_tail_profile[i]
            # the decision's pilot bound takes half the tail's delta (_tail)
            upper = tail_upper(mean, r.abs_tail_spread[i], r.tail_runs, self.delta_tail / 2.0)
        else:
            mean = upper = GAUSSIAN_TAIL_FACTOR * _gaussian_abs_tail(a)
        return self.m2 * mean, self.m2 * upper

    # -- the terms at n points ----------------------------------------------------------
    def _zeta(self, err: float) -> tuple[FloatArray, FloatArray]:
        zeta1 = self.inflation * self.m2 * err
        zeta2 = self.inflation * (self.n_items + 1.0) * self.m2**2
        return zeta1, zeta2

    def _deviation(self, n: int, err: float) -> FloatArray:
        zeta1, zeta2 = self._zeta(err)  # the decision's deviation function, at its delta
        return us.deviation(us.variance(n, zeta1, zeta2), self.delta_sampling)

    def _row_scale(self, n: int) -> FloatArray:
        """Planned standard deviation of ``H_i / (n - 1)`` per output."""
        return np.asarray(
            np.sqrt(self.radius + self.inflation * self.m2 * (self.n_items + 1.0) / (n - 1.0))
        )

    def _tolerance(self, n: int) -> FloatArray:
        tau = self.r.tolerance
        eigen = 2.0 * (math.sqrt(n) + math.sqrt(self.n_items + 1.0)) ** 2
        return np.asarray(
            2.0 * tau * self._row_scale(n) * math.sqrt(2.0 / math.pi)
            + tau * tau * eigen / (n - 1.0)
        )

    def _tolerated(
        self, n: int, clip: FloatArray, room: FloatArray, kappa: float
    ) -> tuple[int, float]:
        """The most altered points ``l`` whose planned corruption fits ``room``, and its value.

        Planned first-order term ``2 sum_top (c + |v|) |H_i| / (n (n - 1)) = 4 (c +
        sqrt(E q^2)) s phi(z_f)`` (f = l / n, ``|H_i| / (n - 1)`` Gaussian with
        standard deviation s), plus the cross terms' bound.
        """
        s = self._row_scale(n)
        p = self.r.p
        # |phi_i|^2 = 1 + sum_k phi_k^2, mean N + 1; its planned least value over n points
        spread = math.sqrt(self.n_items * ((1 - p) ** 2 / p + p * p / (1 - p) - 1.0))
        diag = 1.0 + self.n_items - 5.0 * spread

        def corruption(ell: int) -> FloatArray:
            f = ell / n
            zq = float(ndtri(1.0 - f / 2.0))
            first = (
                4.0
                * (clip + np.sqrt(self.m2))
                * s
                * math.exp(-0.5 * zq * zq)
                / math.sqrt(2.0 * math.pi)
            )
            gram = us.sparse_gram_bound(ell, n, self.n_items, self.r.p, self.delta_kernel / 2.0)
            cross = us.cross_bound(ell, clip, kappa, gram, diag) / (n * (n - 1.0))
            return np.asarray(first + cross)

        if np.any(corruption(1) > room):
            return 0, 0.0
        lo, hi = 1, max(2, n // 2)  # corruption(lo) fits
        if np.all(corruption(hi) <= room):
            return hi, float(np.max(corruption(hi)))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if np.all(corruption(mid) <= room) else (lo, mid)
        return lo, float(np.max(corruption(lo)))

    def _least_points(self, room: FloatArray, share: float = 0.6) -> int:
        """Smallest even n whose two sampling deviations and tolerance fit ``share`` of ``room``."""

        def fits(n: int) -> bool:
            dev = self._deviation(n, self.eps) + self._deviation(n, self.radius)
            return bool(np.all(dev + self._tolerance(n) <= share * room))

        hi = 16
        while not fits(hi):
            hi *= 2
            if hi > self.r.max_prover_evaluations:
                raise InvalidArgument(
                    f"sampling: no plan within {self.r.max_prover_evaluations:,d} Prover "
                    "evaluations meets the sampling terms; raise epsilon or the cap"
                )
        lo = hi // 2
        while hi - lo > max(2, lo // 500):
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return hi + hi % 2

    def plan(self) -> Plan:
        weight = self.r.prover_weight * self.eps / float(self.m2.max())
        best: _Choice | None = None
        reasons: list[str] = []
        for i, a in enumerate(us.CLIP_MULTIPLES):
            clip = a * np.sqrt(self.m2)
            expected, upper = self._tails(i, a)
            outer = np.maximum(math.sqrt(self.eps) - np.sqrt(upper), 0.0) ** 2
            room = outer - (math.sqrt(self.radius) + np.sqrt(expected)) ** 2
            if np.any(room <= 0.0):
                reasons.append(f"clip x{a:g}: the tail leaves no room")
                continue
            try:
                least = self._least_points(room, 1.0 if self.r.verifier_trains_all else 0.6)
            except InvalidArgument as err:
                reasons.append(f"clip x{a:g}: {err}")
                continue
            if self.r.verifier_trains_all:  # local mode: nothing to corrupt, no spot check
                if best is None or least < best.cost:
                    best = _Choice(
                        float(least), a, least, 0, 0, float(self._deviation(least, self.eps).max()),
                        float(self._deviation(least, self.radius).max()), 0.0,
                        float(self._tolerance(least).max()),
                    )  # fmt: skip
                continue
            top = min(int(N_RANGE * least), self.r.max_prover_evaluations)
            grid = np.unique(np.geomspace(least, max(top, least), N_STEPS).astype(np.int64))
            for n in (int(g + g % 2) for g in grid):
                if n > self.r.max_prover_evaluations:
                    continue
                dev = self._deviation(n, self.eps)
                dev_h = self._deviation(n, self.radius)
                tol = self._tolerance(n)
                kappa = us.kernel_bound(n, self.n_items, self.r.p, self.delta_kernel / 2.0)
                corr_room = room - dev - dev_h - tol
                if np.any(corr_room <= 0.0):
                    continue
                ell, corr = self._tolerated(n, clip, corr_room, kappa)
                k = us.spot_checks_for(n, ell, self.delta_spot)
                cost = k + weight * n
                if best is None or cost < best.cost:
                    best = _Choice(
                        cost, a, n, ell, k, float(dev.max()), float(dev_h.max()), corr,
                        float(tol.max()),
                    )  # fmt: skip
        if best is None:
            raise InvalidArgument(
                "no u-statistic plan fits: "
                + "; ".join(reasons[-3:] or ["no room at any n"])
                + " (raise epsilon, lower the completeness radius or the cap on evaluations)"
            )
        return self._plan(best)

    def _plan(self, c: _Choice) -> Plan:
        r = self.r
        i = us.CLIP_MULTIPLES.index(c.multiple)
        expected, upper = self._tails(i, c.multiple)
        clip = c.multiple * np.sqrt(self.m2)
        zeta1, zeta2 = self._zeta(self.eps)
        kappa = us.kernel_bound(c.points, self.n_items, r.p, self.delta_kernel / 2.0)
        details = UStatPlan(
            multiple=c.multiple,
            clip=tuple(float(v) for v in clip),
            points=c.points,
            tolerated=c.tolerated,
            kappa=kappa,
            n_items=self.n_items,
            radius=self.radius,
            zeta2=tuple(float(v) for v in zeta2),
            zeta1_sound=tuple(float(v) for v in zeta1),
            tail_expected=tuple(float(v) for v in expected),
            tail_upper=tuple(float(v) for v in upper),
            deviation=c.deviation,
            deviation_honest=c.deviation_honest,
            corruption=c.corruption,
            tolerance=c.tolerance,
            delta_spot=self.delta_spot,
            delta_kernel=self.delta_kernel,
            delta_sampling=self.delta_sampling,
            delta_tail=self.delta_tail,
            local=r.verifier_trains_all,
        )
        budget = (
            BudgetItem("sampling (Prover)", c.deviation, "normal approximation, planned variance"),
            BudgetItem(
                "corruption",
                c.corruption,
                f"up to {c.tolerated:,d} altered values unseen; more caught w.p. "
                f">= {1 - self.delta_spot:.4g}",
            ),
            BudgetItem("tolerance", c.tolerance, f"tau={r.tolerance:.3g} on every value"),
            BudgetItem("clipping tail", float(upper.max()), "E[(|q| - c)_+^2], upper bound"),
        )
        return Plan(
            request=r,
            functional=INDEPENDENT,
            pairs_per_node=(c.points // 2,),
            threshold=self.eps,
            value_bound=float(clip.max()),
            output_range=2.0 * r.bound,
            clip_at=None,
            tail_bound=float(upper.max()),
            bias_lower=0.0,
            bias_upper=0.0,
            tolerance_slack=c.tolerance,
            corruption_budget=c.corruption,
            sampling_error=c.deviation,
            sampling_error_mse=0.0,
            leverage=c.corruption / max(c.tolerated, 1),
            tolerated_corruptions=c.tolerated,
            spot_checks=c.spot_checks,
            local_trainings=0,
            delta_sampling=self.delta_sampling,
            delta_spot=self.delta_spot,
            budget=budget,
            delta_tail=self.delta_tail,
            sampling_error_honest=c.deviation_honest,
            details=details,
        )
