"""The Verifier's pilot: its own trainings on private points before the plan.

One sequence for the gRPC driver (:meth:`verifier.driver.Auditor._plan`) and
local mode (:func:`verifier.local.certify_local`): draw the private points,
train them (the caller's ``train``), ``max_z Var(f_z)``, the configuration
with that variance (:meth:`~verifier.config.AuditConfig.with_pilot_variance`),
the :class:`~verifier.core.Pilot`, the caller's bookkeeping, then
:func:`~verifier.core.check_pilot` (a cheap rejection before any challenge).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from prover.tasks.base import Task
from verifier._pilot import Pilot
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import check_pilot, pilot_from_runs
from verifier.planning import task_p
from verifier.report_builder import AuditState
from verifier.retrain import private_points

__all__ = ["PilotRun", "TrainPoints", "pilot_variance", "record_pilot", "run_pilot"]

FloatArray = NDArray[np.float64]

TrainPoints = Callable[[NDArray[np.int8], NDArray[np.uint64]], FloatArray]
"""``train(x, seeds)``: the outputs ``(n, Z)`` of one model trained per row of ``x``."""


@dataclass(frozen=True)
class PilotRun:
    """What the pilot left (``pilot`` is ``None`` and the rest empty without a pilot).

    Attributes:
        config: the configuration in force (the pilot's Var(f) set when it sets epsilon).
        pilot: the pilot's statistics.
        outputs: the Verifier's own pilot outputs ``(n, Z)``.
        trainings: pilot trainings done.
        seconds: their wall time.
        variance: ``max_z Var(f_z)`` of ``outputs``.
    """

    config: AuditConfig
    pilot: Pilot | None = None
    outputs: FloatArray | None = None
    trainings: int = 0
    seconds: float | None = None
    variance: float | None = None


def run_pilot(
    config: AuditConfig,
    task: Task,
    commitment: Commitment,
    rng: np.random.Generator,
    train: TrainPoints,
    *,
    note: Callable[[str, int, int], object] | None = None,
    record: Callable[[PilotRun], object] | None = None,
) -> PilotRun:
    """The pilot of practical planning without a declared variance (none otherwise).

    Draws ``config.pilot_trainings`` private points from ``rng`` (one draw, nothing
    else), has ``train`` train them, reports ``note("pilot", 0, n)`` first, and
    calls ``record`` with the outcome before :func:`~verifier.core.check_pilot`,
    so the caller's bookkeeping holds when the pilot rejects.

    Raises:
        StatisticalRejection: the pilot alone proves ``err >= epsilon``.
        InvalidArgument: ``epsilon_relative`` and a pilot Var(f) that is not > 0.
    """
    if config.planning != "practical" or config.variance is not None:
        return PilotRun(config)
    n = config.pilot_trainings
    if note is not None:
        note("pilot", 0, n)
    x, seeds = private_points(rng, n, n_items=task.n_items, p=task_p(task))
    t0 = time.perf_counter()
    outputs = train(x, seeds)
    seconds = time.perf_counter() - t0
    variance = pilot_variance(outputs)
    config = config.with_pilot_variance(variance)
    pilot = pilot_from_runs(config, task, commitment, x, outputs)
    done = PilotRun(config, pilot, outputs, n, seconds, variance)
    if record is not None:
        record(done)
    check_pilot(config, task, pilot)
    return done


def record_pilot(state: AuditState, own: list[FloatArray], done: PilotRun) -> None:
    """The audit's bookkeeping of a pilot: configuration, retrainings, own outputs, Var(f)."""
    state.config = done.config
    if done.outputs is not None:
        own.append(done.outputs)
    state.verifier_retrainings += done.trainings
    state.pilot_trainings = done.trainings
    state.variance_verified = True
    if done.config.epsilon_relative is not None:
        state.variance_f = done.variance  # the Var(f) that set epsilon


def pilot_variance(outputs: FloatArray) -> float:
    """``max_z Var(f_z)`` (ddof 1) of the Verifier's own ``outputs`` ``(n, Z)``."""
    return float(np.max(np.var(outputs, axis=0, ddof=1)))
