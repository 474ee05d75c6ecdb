"""Plan requests from the Verifier's own data (DESIGN §1 "Units of epsilon", §2 step 3).

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

import numpy as np
from numpy.typing import NDArray

from protocol.hypercube import bias_moments
from protocol.plan import PlanRequest
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
    """

    n: int
    second_moment: float
    variance_f: NDArray[np.float64]


def task_p(task: Task) -> float:
    """Inclusion probability p of a task (from its spec; 0.5 when it declares none)."""
    spec = getattr(task, "spec", None)
    return float(getattr(spec, "p", 0.5))


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
    return PilotStats(
        n=int(outputs.shape[0]),
        second_moment=second,
        variance_f=np.var(outputs, axis=0, ddof=1),
    )


def plan_request(
    config: AuditConfig,
    *,
    task: Task,
    commitment: Commitment,
    variance: float | None,
) -> PlanRequest:
    """The :class:`~protocol.plan.PlanRequest` of an audit.

    b, tau, Z and p come from the Verifier's own task; G from the verified commitment.
    """
    bound = float(task.bound)
    g_bound = attribution_bound(commitment.theta0, commitment.theta)
    if not math.isfinite(g_bound):
        g_bound = bound
    return PlanRequest(
        epsilon=config.epsilon,
        delta=config.delta,
        bound=bound,
        tolerance=float(task.output_tolerance),
        n_outputs=int(task.n_outputs),
        p=task_p(task),
        mode=config.mode,
        planning=config.planning,
        estimator=config.estimator,  # type: ignore[arg-type]
        attribution_bound=g_bound,
        variance=variance if config.planning == "practical" else None,
    )
