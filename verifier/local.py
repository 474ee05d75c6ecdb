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

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, StatisticalRejection
from protocol.plan import Plan
from protocol.prg import expand_pairs
from prover.tasks.base import Task
from prover.tasks.device import resolve_device
from verifier._pilot_run import PilotRun, pilot_variance, record_pilot, run_pilot
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import (
    Pilot,
    decide_committed_audit,
    plan_audit,
    verified_residuals,
)
from verifier.driver import AuditResult, Progress
from verifier.planning import task_p
from verifier.preview import PlanHook, PlanPreview, preview_plan
from verifier.report_builder import AuditState, build_report, sign
from verifier.retrain import bind_task, train_points

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
    ran = PilotRun(config)  # no pilot (yet): a pilot that rejects leaves this
    try:
        ran = _pilot(state, task, commitment, rng, own, note)
        plan = _plan(state, task, commitment, ran)
    except StatisticalRejection as err:  # the same verdict the gRPC driver gives
        state.reason = f"{type(err).__name__}: {err}"
        return _finish(state, own, key, t0, None, ran.variance)
    if on_plan is not None:  # before the seed is drawn and anything is evaluated
        on_plan(_preview(ran.config, plan, ran))
    _evaluate_challenge(state, task, commitment, plan, ran.pilot, own, note)
    return _finish(state, own, key, t0, plan, ran.variance)


def _notifier(progress: Progress | None) -> Progress:
    """``note(stage, done=0, total=0)``: report to ``progress`` when there is one."""

    def note(stage: str, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(stage, done, total)

    return note


def _preview(config: AuditConfig, plan: Plan, run: PilotRun) -> PlanPreview:
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


def _pilot(
    state: AuditState,
    task: Task,
    commitment: Commitment,
    rng: np.random.Generator,
    own: list[NDArray[np.float64]],
    note: Progress,
) -> PilotRun:
    """The pilot (practical planning without a declared variance): ``state`` records it.

    Raises:
        StatisticalRejection: the pilot alone proves ``err >= epsilon``.
    """
    chunk = state.config.train_chunk_size

    def train(x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> NDArray[np.float64]:
        return train_points(task, x, seeds, chunk_size=chunk).outputs

    def record(done: PilotRun) -> None:
        record_pilot(state, own, done)

    return run_pilot(state.config, task, commitment, rng, train, note=note, record=record)


def _plan(state: AuditState, task: Task, commitment: Commitment, ran: PilotRun) -> Plan:
    """The local plan, made with the pilot's configuration and statistics (if any).

    Raises:
        StatisticalRejection: no plan fits.
    """
    pilot = ran.pilot
    state.planned_variance = pilot.variance if pilot is not None else ran.config.variance
    plan = state.plan = plan_audit(ran.config, task, commitment, pilot, local=True)
    return plan


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
    # g_a at every point in the challenge layout here, then at either half of the pairs in
    # the decision: the same points, but rows of one product are not bit for bit the other's
    verified = verified_residuals(
        commitment, pairs, pilot=pilot, spot_indices=every, spot_outputs=out
    )
    state.decision = decide_committed_audit(plan, commitment, pairs, out, verified)


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
