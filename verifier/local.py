"""Mode ``local``: certify attributions with no Prover (the non-interactive baseline).

The Verifier commits to nothing and trusts nothing: it draws the challenge
seed itself, trains every point of a committed-mode plan locally (batched
through :func:`prover.engine.train`) and applies the direct gap decision
(:func:`protocol.decision.decide_committed`).  Because every evaluation is
the Verifier's own, the plan's corruption budget (at least eps/8) is not needed; it is
kept as additional margin, so the certified bound is conservative.  Costs:
``2 * n_pairs`` (+ pilot) local trainings, no spot checks, no bytes on the wire.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, StatisticalRejection
from protocol.plan import Plan
from protocol.prg import expand_pairs
from prover.tasks.base import Task
from prover.tasks.device import resolve_device
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import (
    Pilot,
    check_pilot,
    decide_committed_audit,
    pilot_from_runs,
    plan_audit,
    verified_residuals,
)
from verifier.driver import AuditResult, Progress, pilot_variance
from verifier.planning import task_p
from verifier.preview import PlanHook, PlanPreview, preview_plan
from verifier.report_builder import AuditState, build_report, sign
from verifier.retrain import bind_task, private_points, train_points

__all__ = ["certify_local"]


def certify_local(
    task: Task,
    theta0: NDArray[np.float64],
    theta: NDArray[np.float64],
    config: AuditConfig,
    *,
    key: Ed25519PrivateKey,
    rng: np.random.Generator | None = None,
    progress: Progress | None = None,
    on_plan: PlanHook | None = None,
) -> AuditResult:
    """Certify ``g(x) = theta0 + theta x`` (pm encoding) on ``task`` by local evaluation.

    Args:
        task: the task.
        theta0: float64 ``(Z,)``; theta: float64 ``(Z, N)``.
        config: epsilon, delta, planning (``mode`` is ignored: the plan is committed-mode).
        key: signing key of the report (whose ``mode`` is ``"local"``).
        rng: private randomness (default: fresh from :mod:`secrets`).
        progress: ``progress(stage, done, total)``.
        on_plan: called with the :class:`~verifier.preview.PlanPreview` after
            planning, before the local evaluations; may raise
            :class:`~verifier.preview.PlanDeclined` (propagates; no report).

    The Verifier trains on ``config.device`` (resolved here) within its own
    device class's tolerances (no Prover: no second class); the report records
    the device.

    Raises:
        InvalidArgument: scores of the wrong shape, or no plan meets epsilon.
        DeviceUnavailable: ``config.device`` names a GPU this machine lacks.

    Like the gRPC driver, it goes through :mod:`verifier.core`: a pilot that
    proves ``err >= epsilon`` or a plan above ``max_prover_evaluations`` ends in
    a signed *abort* report, not an exception.
    """
    t0 = time.perf_counter()
    device = resolve_device(config.device, task=task)
    task = bind_task(task, device)
    rng = rng if rng is not None else np.random.default_rng(secrets.randbits(256))
    if config.mode != "committed":
        raise InvalidArgument("local certification uses the committed-mode (direct gap) plan")
    commitment = Commitment.unsigned(*_checked_scores(task, theta0, theta), source="local")
    state = AuditState(
        config=config, task_digest=task.digest, report_mode="local", verifier_device=device
    )
    state.commitment = commitment
    note = _notifier(progress)
    own: list[NDArray[np.float64]] = []
    run = _PilotRun()
    try:
        plan, config = _pilot_and_plan(state, task, commitment, rng, own, run, note)
    except StatisticalRejection as err:  # the same verdict the gRPC driver gives
        state.reason = f"{type(err).__name__}: {err}"
        return _finish(state, own, key, t0, None, run.variance)
    if on_plan is not None:  # before the seed is drawn and anything is evaluated
        on_plan(_preview(config, plan, run))
    _evaluate_challenge(state, task, commitment, plan, run.pilot, own, note)
    return _finish(state, own, key, t0, plan, run.variance)


def _notifier(progress: Progress | None) -> Progress:
    """``note(stage, done=0, total=0)``: report to ``progress`` when there is one."""

    def note(stage: str, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(stage, done, total)

    return note


def _preview(config: AuditConfig, plan: Plan, run: _PilotRun) -> PlanPreview:
    """The plan and its cost as shown to ``on_plan`` (local mode, the pilot counted)."""
    return preview_plan(
        config,
        plan,
        pilot_trainings=run.trainings,
        pilot_seconds=run.seconds,
        pilot_variance=run.variance,
        local=True,
    )


def _checked_scores(
    task: Task, theta0: NDArray[np.float64], theta: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``theta0`` and ``theta`` as float64 arrays of the task's shapes ``(Z,)``, ``(Z, N)``."""
    theta0 = np.asarray(theta0, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if theta0.shape != (task.n_outputs,) or theta.shape != (task.n_outputs, task.n_items):
        raise InvalidArgument(
            f"scores must be theta0 ({task.n_outputs},) and theta ({task.n_outputs}, "
            f"{task.n_items}), got {theta0.shape} and {theta.shape}"
        )
    return theta0, theta


@dataclass
class _PilotRun:
    """What the pilot left, filled in as it goes (nothing when there is no pilot)."""

    pilot: Pilot | None = None
    trainings: int = 0
    seconds: float | None = None
    variance: float | None = None


def _pilot_and_plan(
    state: AuditState,
    task: Task,
    commitment: Commitment,
    rng: np.random.Generator,
    own: list[NDArray[np.float64]],
    run: _PilotRun,
    note: Progress,
) -> tuple[Plan, AuditConfig]:
    """The pilot (practical planning without a declared variance), then the local plan.

    Returns the plan and the configuration it was made with (the pilot's Var(f) set).

    Raises:
        StatisticalRejection: the pilot alone proves ``err >= epsilon``, or no plan fits.
    """
    config = state.config
    if config.planning == "practical" and config.variance is None:
        run.trainings = config.pilot_trainings
        note("pilot", 0, run.trainings)
        run.pilot, run.seconds, run.variance = _pilot(state, task, commitment, rng, own)
        config = state.config
    state.planned_variance = run.pilot.variance if run.pilot is not None else config.variance
    plan = state.plan = plan_audit(config, task, commitment, run.pilot, local=True)
    return plan, config


def _evaluate_challenge(
    state: AuditState,
    task: Task,
    commitment: Commitment,
    plan: Plan,
    pilot: Pilot | None,
    own: list[NDArray[np.float64]],
    note: Progress,
) -> None:
    """Draw the seed, train every challenge point locally and decide (``state.decision``)."""
    seed = secrets.token_bytes(32)
    state.challenge_seed = seed
    pairs = expand_pairs(
        seed, np.arange(plan.n_pairs), task.n_items, task_p(task), plan.rho_of_pair()
    )
    x = np.stack([pairs.first, pairs.second], axis=1).reshape(-1, task.n_items)
    seeds = np.stack([pairs.first_seeds, pairs.second_seeds], axis=1).reshape(-1)
    total = len(x)
    done = [0]

    def tick(m: int) -> None:
        done[0] += m
        note("local evaluations", done[0], total)

    # Challenge layout: point 2i = x of pair i, 2i + 1 = its partner.
    chunk = state.config.train_chunk_size
    out = train_points(task, x, seeds, chunk_size=chunk, progress=tick).outputs
    state.verifier_retrainings += total
    own.append(out)
    every = np.arange(total, dtype=np.int64)  # every evaluation is the Verifier's own
    verified = verified_residuals(
        commitment, pairs, pilot=pilot, spot_indices=every, spot_outputs=out
    )
    state.decision = decide_committed_audit(plan, commitment, pairs, out, verified)


def _pilot(
    state: AuditState,
    task: Task,
    commitment: Commitment,
    rng: np.random.Generator,
    own: list[NDArray[np.float64]],
) -> tuple[Pilot, float, float]:
    """The Verifier's pilot runs: (pilot, seconds, Var(f)); ``state.config`` gets Var(f).

    Raises:
        StatisticalRejection: the pilot alone proves ``err >= epsilon``.
    """
    config = state.config
    x, seeds = private_points(rng, config.pilot_trainings, n_items=task.n_items, p=task_p(task))
    t_pilot = time.perf_counter()
    out = train_points(task, x, seeds, chunk_size=config.train_chunk_size).outputs
    seconds = time.perf_counter() - t_pilot
    var = pilot_variance(out)
    config = state.config = config.with_pilot_variance(var)
    pilot = pilot_from_runs(config, task, commitment, x, out)
    state.verifier_retrainings += config.pilot_trainings
    state.pilot_trainings = config.pilot_trainings
    state.variance_verified = True
    own.append(out)
    check_pilot(config, task, pilot)
    return pilot, seconds, var


def _finish(
    state: AuditState,
    own: list[NDArray[np.float64]],
    key: Ed25519PrivateKey,
    t0: float,
    plan: Plan | None,
    pilot_var: float | None,
) -> AuditResult:
    if state.config.epsilon_relative is not None:
        state.variance_f = pilot_var  # the Var(f) that set epsilon
    elif own and sum(len(o) for o in own) >= 2:
        state.variance_f = pilot_variance(np.concatenate(own))
    state.wall_seconds = time.perf_counter() - t0
    report = build_report(state)
    return AuditResult(report, sign(report, key), False, plan, None)
