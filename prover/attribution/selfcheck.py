"""The Prover's self-check: how close to optimal are the scores, before serving them.

On held-out retrainings at rho-correlated pairs ``(x, x')`` (docs/design.md §1), with
residuals ``q = f - g_a`` of the scores ``a``:

* **err** — with the audit's default statistic, the degree-1 U-statistic
  (:mod:`protocol.ustatistic`): unbiased for ``err(a) = B_0(q) + B_1(q)`` at
  every degree, over the pairs' first points and over their second points
  (each set independent draws), averaged, with a jackknife error; with a
  direct-gap default, the direct gap estimator
  ``err_hat = sum_j w_j mean(q(x) q(x') at rho_j)``, biased by
  ``sum_{k>D} s_k B_k`` (:func:`protocol.estimators.direct_gap`);
* **B_{>=2}** — ``mean(q^2) - err_hat`` (:func:`protocol.estimators.residual_weight`
  on q; ``B_{>=2}(q) = B_{>=2}(f)`` because ``g_a`` has degree <= 1);
* **mse** — ``mean(q^2)`` over all held-out points (each is marginally B_p);
* the **interval** on err is ``err_hat +- z se`` with ``z`` the normal quantile
  at ``1 - delta/(2Z)`` (union over Z outputs), clipped at 0, and widened
  upwards by the largest downward bias of the functional given the estimated
  ``B_{>=2}`` (:meth:`NodeFunctional.bias_range`);
* **smallest epsilon** — the least eps at which the committed-mode audit a
  Verifier runs by default, planned by :func:`protocol.plan.make_plan` with
  the same p, b, tau, Z, delta and estimator
  (:func:`protocol.stats.default_statistic`: the degree-1 U-statistic under
  practical planning, sized from the held-out residuals' moments as the
  Verifier sizes it from its pilot), accepts attributions with err at the
  interval's upper end with probability ``>= 1 - delta``, i.e. whose
  completeness radius covers it (searched on a 2% geometric grid);
* **LDS** — the Linear Datamodeling Score (Park et al. 2023, TRAK; as in
  dattri): Spearman correlation of ``g_a(x)`` and ``f(x)`` over the held-out
  subsets, per output, and its mean over outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm, spearmanr

from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional, PairSample, direct_gap, residual_weight
from protocol.plan import PlanRequest, make_plan
from protocol.plan_clipped import residual_moments
from protocol.spectrum import degree_one_ustatistic
from protocol.stats import default_statistic
from prover.attribution.sampling import CheckDesign

__all__ = ["OutputCheck", "SelfCheck", "linear_datamodeling_score", "run_self_check"]

FloatArray = NDArray[np.float64]
#: Ratio of the geometric grid on which the smallest epsilon is searched.
EPS_GRID_RATIO = 1.02


@dataclass(frozen=True, kw_only=True)
class OutputCheck:
    """Self-check of one output (squared output units unless noted).

    Attributes:
        variance: sample variance of f over the held-out points.
        mse: mean squared residual ``mean(q^2)``; mse_se its standard error.
        b_ge2: estimate of ``B_{>=2}(f)``, the best MSE any linear datamodel
            reaches; b_ge2_se its standard error.
        err: direct gap estimate of ``err(a)``; err_se its standard error.
        err_low, err_high: the interval (see the module docstring).
        eps_min: smallest audit epsilon accepting err_high w.p. >= 1 - delta
            (``inf`` if no plan up to the search limit does).
        lds: Spearman correlation of predicted and actual outputs (``nan`` if
            either is constant).
    """

    variance: float
    mse: float
    mse_se: float
    b_ge2: float
    b_ge2_se: float
    err: float
    err_se: float
    err_low: float
    err_high: float
    eps_min: float
    lds: float


@dataclass(frozen=True, kw_only=True)
class SelfCheck:
    """The self-check of a set of scores on held-out retrainings.

    Attributes:
        outputs: one :class:`OutputCheck` per output.
        n_pairs: held-out pairs (2 retrainings each).
        functional: name, nodes, weights and degree of the node functional.
        delta: failure probability of the intervals and the epsilon search.
        planning: planner mode of the epsilon search.
        attribution_bound: G, the largest ``|g_a|`` on the held-out points.
        estimator: the audit's estimator the epsilon search planned with
            (the first of :func:`protocol.stats.default_statistic`'s).
        plan_moments: the :class:`~protocol.plan_types.PlanRequest` moment fields
            measured on the held-out residuals.
    """

    outputs: tuple[OutputCheck, ...]
    n_pairs: int
    functional: dict[str, Any]
    delta: float
    planning: str
    attribution_bound: float
    estimator: str = "chebyshev"
    plan_moments: dict[str, Any] = field(default_factory=dict)

    @property
    def lds(self) -> float:
        """Mean LDS over the outputs where it is defined (``nan`` if none)."""
        vals = [o.lds for o in self.outputs if math.isfinite(o.lds)]
        return float(np.mean(vals)) if vals else math.nan

    def worst_relative_err(self) -> float:
        """``max_z err_z / Var_z(f)`` (``inf`` where the variance is 0)."""
        return max(_ratio(o.err, o.variance) for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (non-finite numbers become ``None``)."""
        out: dict[str, Any] = _json_ready(
            {
                "n_pairs": self.n_pairs,
                "functional": self.functional,
                "delta": self.delta,
                "planning": self.planning,
                "attribution_bound": self.attribution_bound,
                "estimator": self.estimator,
                "plan_moments": self.plan_moments,
                "lds_mean": self.lds,
                "outputs": [asdict(o) for o in self.outputs],
            }
        )
        return out

    def table(self) -> str:
        """A readable per-output summary (relative columns are in units of Var(f))."""
        head = (
            f"{'z':>3} {'Var(f)':>10} {'mse':>10} {'B>=2':>10} {'err':>11} "
            f"{'err interval':>23} {'err/Var':>8} {'eps_min':>10} {'LDS':>6}"
        )
        lines = [head]
        for z, o in enumerate(self.outputs):
            lines.append(
                f"{z:>3} {o.variance:>10.4g} {o.mse:>10.4g} {o.b_ge2:>10.4g} {o.err:>11.4g} "
                f"[{o.err_low:>10.4g}, {o.err_high:>10.4g}] {_ratio(o.err, o.variance):>8.2%} "
                f"{o.eps_min:>10.4g} {o.lds:>6.3f}"
            )
        f = self.functional
        lines.append(
            f"mean LDS {self.lds:.4f}; {self.n_pairs} held-out pairs; {f['name']} functional "
            f"degree {f['degree']}, ||w||_1 = {f['l1_norm']:.3g}; intervals at delta={self.delta}"
            f" (union over outputs); eps_min for a committed {self.planning} audit"
            f" ({self.estimator} statistic)"
        )
        return "\n".join(lines)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating | np.integer):
        return _json_ready(value.item())
    return value


def linear_datamodeling_score(predicted: FloatArray, actual: FloatArray) -> FloatArray:
    """Per-output Spearman correlation of ``predicted`` and ``actual`` ``(n, Z)``: ``(Z,)``.

    An output whose predictions or actual values are constant gets ``nan``
    (the rank correlation is undefined there).
    """
    if predicted.shape != actual.shape or predicted.ndim != 2:
        raise InvalidArgument(
            f"predicted and actual must share a shape (n, Z), got {predicted.shape} "
            f"and {actual.shape}"
        )
    out = np.full(predicted.shape[1], np.nan)
    for z in range(predicted.shape[1]):
        a, b = predicted[:, z], actual[:, z]
        if len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0:
            out[z] = float(spearmanr(a, b).statistic)
    return out


def smallest_epsilons(
    targets: FloatArray, radius: Callable[[float], float], *, scale: float
) -> FloatArray:
    """Least eps on a geometric grid with ``radius(eps) >= target``, per target.

    ``radius`` must be non-decreasing in eps (the completeness radius is, up to
    the planner's discrete choice of functional) and at most ``eps / 2``.  The
    search gallops from a guess ``eps ~ target / kappa``, with kappa the last
    observed ``radius(eps) / eps``, then bisects; evaluations are memoised and
    shared by all targets.  Targets not reached at ``eps <= scale`` give ``inf``.
    """
    memo: dict[int, float] = {}
    log_r = math.log(EPS_GRID_RATIO)
    kappa = [0.125]

    def r_at(k: int) -> float:
        if k not in memo:
            eps = math.exp(k * log_r)
            memo[k] = radius(eps)
            if memo[k] > 0:
                kappa[0] = memo[k] / eps
        return memo[k]

    def grid(eps: float) -> int:
        return math.floor(math.log(eps) / log_r)

    k_max = grid(scale) + 1
    out = np.full(len(targets), math.inf)
    for i in np.argsort(targets):
        t = float(targets[i]) if targets[i] > 0 else 1e-12 * scale
        floor_k = grid(2.0 * t) - 1  # radius(eps) <= eps/2 < t at and below this
        if r_at(k_max) < t:
            continue
        guess = min(max(grid(t / kappa[0]), floor_k + 1), k_max)
        step = 1
        if r_at(guess) >= t:  # gallop down to a failing point
            hi, lo = guess, guess - step
            while lo > floor_k and r_at(lo) >= t:
                hi, step = lo, 2 * step
                lo = max(hi - step, floor_k)
            lo = max(lo, floor_k)
        else:  # gallop up to a passing point
            lo, hi = guess, min(guess + step, k_max)
            while r_at(hi) < t:
                lo, step = hi, 2 * step
                hi = min(lo + step, k_max)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if r_at(mid) >= t:
                hi = mid
            else:
                lo = mid
        out[i] = math.exp(hi * log_r)
    return out


def _ustatistic_err(
    rows: list[dict[str, float]],
    design: CheckDesign,
    q1: FloatArray,
    q2: FloatArray,
    p: float,
    crit: float,
) -> None:
    """err of every row by the degree-1 U-statistic (:mod:`protocol.ustatistic`), in place.

    The first points of the pairs are independent draws, and so are the
    second points; each set gives an unbiased U (jackknife error), and err is
    their mean with the larger error (the two sets are correlated through the
    pairs).  ``b_ge2`` becomes ``mse - err``.
    """
    groups = max(2, min(20, design.n_pairs // 2))
    u1, se1 = degree_one_ustatistic(design.first, q1, p, groups=groups)
    u2, se2 = degree_one_ustatistic(design.second, q2, p, groups=groups)
    for z, row in enumerate(rows):
        err = float((u1[z] + u2[z]) / 2.0)
        se = float(max(se1[z], se2[z]))
        row.update(
            err=err,
            err_se=se,
            err_low=max(0.0, err - crit * se),
            err_high=max(0.0, err + crit * se),
            b_ge2=max(0.0, row["mse"] - err),
            b_ge2_se=math.hypot(row["mse_se"], se),
        )


def _completeness_radius(request_for: Callable[[float], PlanRequest]) -> Callable[[float], float]:
    def radius(eps: float) -> float:
        try:
            return make_plan(request_for(eps)).completeness_radius
        except InvalidArgument:  # the plan cannot meet eps (tolerance, sample cap, ...)
            return -math.inf

    return radius


def run_self_check(
    theta0: FloatArray,
    theta: FloatArray,
    design: CheckDesign,
    first: FloatArray,
    second: FloatArray,
    functional: NodeFunctional,
    *,
    bound: float,
    tolerance: float,
    p: float,
    delta: float,
    planning: Literal["practical", "rigorous"] = "practical",
) -> SelfCheck:
    """Self-check scores ``(theta0 (Z,), theta (Z, N))`` (pm) on held-out pairs.

    Args:
        theta0, theta: the scores.
        design: the held-out pairs (:func:`~prover.attribution.sampling.draw_check_pairs`).
        first, second: float64 ``(n, Z)`` outputs at the pairs' two points.
        functional: the node functional the pairs were drawn for.
        bound: b, outputs lie in ``[-b, b]``.
        tolerance: tau of the task (enters the audit plan).
        p: inclusion probability of B_p.
        delta: failure probability (intervals and epsilon search).
        planning: ``practical`` (variance-based; the declared variance is the
            largest held-out Var(f)) or ``rigorous`` (range-based).
    """
    n, z_out = first.shape
    if second.shape != first.shape or n != design.n_pairs or theta.shape[0] != z_out:
        raise InvalidArgument(
            f"outputs must be (n_pairs, Z) = ({design.n_pairs}, {theta.shape[0]}) at both "
            f"points, got {first.shape} and {second.shape}"
        )
    pred1 = design.first.astype(np.float64) @ theta.T + theta0
    pred2 = design.second.astype(np.float64) @ theta.T + theta0
    q1, q2 = first - pred1, second - pred2
    g_bound = float(max(np.abs(pred1).max(), np.abs(pred2).max()))
    actual = np.concatenate([first, second])
    lds = linear_datamodeling_score(np.concatenate([pred1, pred2]), actual)
    crit = float(norm.ppf(1.0 - delta / (2.0 * z_out)))
    rows = []
    for z in range(z_out):
        sample = PairSample(design.node_index, q1[:, z], q2[:, z])
        gap = direct_gap(
            functional, sample, output_range=2.0 * bound, residual_bound=bound + g_bound
        )
        rest = residual_weight(functional, sample, output_bound=bound + g_bound)
        sq = np.concatenate([q1[:, z], q2[:, z]]) ** 2
        tail = max(0.0, rest.value + crit * rest.standard_error)
        bias_lo, _ = functional.bias_range(tail)
        rows.append(
            {
                "variance": float(np.var(actual[:, z], ddof=1)),
                "mse": float(sq.mean()),
                "mse_se": float(sq.std(ddof=1) / math.sqrt(len(sq))),
                "b_ge2": rest.value,
                "b_ge2_se": rest.standard_error,
                "err": gap.value,
                "err_se": gap.standard_error,
                "err_low": max(0.0, gap.value - crit * gap.standard_error),
                "err_high": max(0.0, gap.value + crit * gap.standard_error - bias_lo),
                "lds": float(lds[z]),
            }
        )
    var_max = max(r["variance"] for r in rows)

    statistic = default_statistic("committed", planning)
    estimator = statistic.estimators[0]
    if estimator == "degree-1":  # the audit's own estimate: no bias from any degree
        _ustatistic_err(rows, design, q1, q2, p, crit)
    # The audit's own plan: the default statistic, planned from the moments the
    # Verifier sizes it from, measured here on the held-out runs as its pilot will
    # (planners that need no moments ignore them).
    moments = residual_moments(np.concatenate([q1, q2])).request_fields()

    def request_for(eps: float) -> PlanRequest:
        return PlanRequest(
            epsilon=eps,
            delta=delta,
            bound=bound,
            tolerance=tolerance,
            n_outputs=z_out,
            p=p,
            mode="committed",
            planning=planning,
            estimator=estimator,
            attribution_bound=g_bound,
            variance=max(var_max, 1e-300) if planning == "practical" else None,
            n_items=int(theta.shape[1]),
            **moments,  # type: ignore[arg-type]
        )

    targets = np.array([r["err_high"] for r in rows])
    eps = smallest_epsilons(
        targets, _completeness_radius(request_for), scale=64.0 * (bound + g_bound) ** 2
    )
    outputs = tuple(OutputCheck(eps_min=float(e), **r) for r, e in zip(rows, eps, strict=True))
    return SelfCheck(
        outputs=outputs,
        n_pairs=n,
        functional={
            "name": functional.name,
            "nodes": list(functional.nodes),
            "weights": list(functional.weights),
            "degree": functional.degree,
            "l1_norm": functional.l1_norm,
        },
        delta=delta,
        planning=planning,
        attribution_bound=g_bound,
        estimator=estimator,
        plan_moments=moments,
    )
