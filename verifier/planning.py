"""Plan requests from the Verifier's own data (docs/design.md §1 "Units of epsilon", §2 step 3).

Practical planning needs an upper bound on the second moment of the values
the statistic multiplies: residuals ``q = f - g_a`` in committed mode (their
variance is what the direct gap estimator's cost scales with), ``f - c`` in
paper mode.  Unless the user declares one, it comes from a *pilot* of the
Verifier's own trainings on points drawn from private randomness — verified
values only, never the Prover's, which a Prover could shape to loosen the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from protocol.hypercube import bias_moments
from protocol.plan import PlanRequest
from protocol.plan_clipped import residual_moments
from prover.tasks.base import Task
from verifier.commitment import Commitment, attribution_bound
from verifier.config import AuditConfig

__all__ = ["PilotStats", "paper_centre", "pilot_stats", "plan_request", "task_p"]


@dataclass(frozen=True)
class PilotStats:
    """What the pilot measured (every value from the Verifier's own trainings).

    Attributes:
        n: number of pilot trainings.
        second_moment: ``max_z mean(v_z^2)`` of the planned values (before inflation).
        variance_f: float64 ``(Z,)`` sample variance of the raw outputs ``f``.
        residual_mean: float64 ``(Z,)`` mean of ``q = f - g_a`` over the pilot.
        residual_sd: float64 ``(Z,)`` sample standard deviation of ``q``.
        residual_second, residual_fourth: float64 ``(Z,)`` ``mean(q^2)``, ``mean(q^4)``.
        tail_profile: planned ``E[(u - kappa)_+]`` for ``u = q^2 / mean(q^2)`` pooled
            over outputs, at every clip multiple kappa (:func:`tail_profile`).
        tail_spread: the standard deviation of ``(u - kappa)_+`` at every kappa.
        abs_tail_profile, abs_tail_spread: the same for ``(|q| / sqrt(mean q^2) - a)_+^2``
            at every multiple a of :data:`protocol.ustatistic.CLIP_MULTIPLES`
            (the degree-1 U-statistic's clipping tail).
    """

    n: int
    second_moment: float
    variance_f: NDArray[np.float64]
    residual_mean: NDArray[np.float64]
    residual_sd: NDArray[np.float64]
    residual_second: NDArray[np.float64] | None = None
    residual_fourth: NDArray[np.float64] | None = None
    tail_profile: tuple[float, ...] | None = None
    tail_spread: tuple[float, ...] | None = None
    abs_tail_profile: tuple[float, ...] | None = None
    abs_tail_spread: tuple[float, ...] | None = None


def task_p(task: Task) -> float:
    """Inclusion probability p of a task (:attr:`prover.tasks.base.Task.p`)."""
    return float(task.p)


def paper_centre(
    commitment: Commitment, *, p: float, bound: float, practical: bool
) -> NDArray[np.float64]:
    """Paper-mode centre: 0 (rigorous), else ``E_{B_p}[g_a] = theta0 + mu sum_i theta_i``.

    The practical centre is clipped to ``[-b, b]``; it is fixed before any result arrives.
    """
    if not practical:
        return np.zeros_like(commitment.theta0)
    mu, _ = bias_moments(p)
    centre = commitment.theta0 + mu * commitment.theta.sum(axis=1)
    return np.asarray(np.clip(centre, -bound, bound))


def pilot_stats(
    outputs: NDArray[np.float64],
    predictions: NDArray[np.float64],
    *,
    mode: str,
    centre: NDArray[np.float64],
) -> PilotStats:
    """Second moment of the planned values from pilot outputs ``(n, Z)`` and ``g_a`` there."""
    values = outputs - predictions if mode == "committed" else outputs - centre[None, :]
    second = float(np.max(np.mean(values**2, axis=0)))
    n = int(outputs.shape[0])
    residual = outputs - predictions
    moments = residual_moments(residual)
    return PilotStats(
        n=n,
        second_moment=second,
        variance_f=np.var(outputs, axis=0, ddof=1),
        residual_mean=np.mean(residual, axis=0),
        residual_sd=np.std(residual, axis=0, ddof=1) if n > 1 else np.zeros(residual.shape[1]),
        residual_second=np.asarray(moments.second, dtype=np.float64),
        residual_fourth=np.asarray(moments.fourth, dtype=np.float64),
        tail_profile=moments.tail_profile,
        tail_spread=moments.tail_spread,
        abs_tail_profile=moments.abs_tail_profile,
        abs_tail_spread=moments.abs_tail_spread,
    )


def pilot_gap_lower_bound(pilot: PilotStats, delta: float) -> NDArray[np.float64]:
    """Per-output lower confidence bound on ``err(a)`` from the pilot alone.

    ``err(a) = B_0(q) + B_1(q) >= B_0(q) = (E q)^2`` for ``q = f - g_a``
    (docs/design.md §1).  The pilot runs are the Verifier's own, so a mean residual far
    from zero proves a large err without any Prover value.  Bound:
    ``max(0, |mean| - z sd / sqrt(n))^2`` with ``z`` the normal quantile at
    ``delta`` (a normal approximation for the mean of ``n`` runs).
    """
    z = float(NormalDist().inv_cdf(1.0 - delta))
    half = z * pilot.residual_sd / math.sqrt(max(pilot.n, 1))
    return np.asarray(np.maximum(np.abs(pilot.residual_mean) - half, 0.0) ** 2)


def plan_request(
    config: AuditConfig,
    *,
    task: Task,
    commitment: Commitment,
    variance: float | None,
    pilot: PilotStats | None = None,
    local: bool = False,
) -> PlanRequest:
    """The :class:`~protocol.plan.PlanRequest` of an audit.

    b, tau, Z and p come from the Verifier's own task; G from the verified commitment.
    ``local``: the Verifier evaluates every challenge point itself (local mode).
    """
    bound = float(task.bound)
    g_bound = attribution_bound(commitment.theta0, commitment.theta)
    if not math.isfinite(g_bound):
        g_bound = bound
    return PlanRequest(
        epsilon=config.require_epsilon(),
        delta=config.delta,
        bound=bound,
        tolerance=float(task.output_tolerance),
        n_outputs=int(task.n_outputs),
        p=task_p(task),
        mode=config.mode,
        planning=config.planning,
        estimator=config.resolved_estimator,  # type: ignore[arg-type]
        attribution_bound=g_bound,
        variance=variance if config.planning == "practical" else None,
        completeness_radius=config.completeness_radius,
        tail_fraction=config.tail_fraction,
        max_prover_evaluations=config.max_prover_evaluations,
        prover_weight=config.prover_weight,
        moment_inflation=config.variance_inflation,
        verifier_trains_all=local,
        statistic=config.statistic,
        n_items=int(task.n_items),
        **_moments(pilot),
    )


def _moments(pilot: PilotStats | None) -> dict[str, Any]:
    """Per-output moments and the tail profile of a pilot (none without one)."""
    if pilot is None or pilot.residual_second is None or pilot.residual_fourth is None:
        return {}
    return {
        "second_moments": tuple(float(v) for v in pilot.residual_second),
        "fourth_moments": tuple(float(v) for v in pilot.residual_fourth),
        "tail_profile": pilot.tail_profile,
        "tail_spread": pilot.tail_spread,
        "tail_runs": pilot.n,
        "abs_tail_profile": pilot.abs_tail_profile,
        "abs_tail_spread": pilot.abs_tail_spread,
    }
