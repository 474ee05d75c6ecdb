"""The Verifier's protocol state machine over a caller-provided gRPC channel (docs/design.md §2).

Order of one audit (both modes)::

    DescribeTask  -> task digest must equal the Verifier's own load of TASK.toml
    Commit        -> attributions streamed, digest recomputed, signature verified
    (pilot)       -> practical planning: Var from the Verifier's own trainings
    seed, plan    -> a fresh 32-byte seed is drawn only now, after the commitment
    Challenge     -> results streamed (resumed if dropped), Merkle root rebuilt, signature
    (rejection)   -> clipped-gap plans: at once, without spot checks, when no spot-check
                     outcome could accept (verifier.core)
    spot checks   -> as many as the results call for (at most the plan's), drawn from
                     private randomness only now, after the root
    Open          -> proofs, weight digests, local retraining within tolerance; a refusal
                     after the root is an abort with retrained evidence (verifier.refusal)
    (local)       -> paper mode: plan.local_trainings fresh models on private points
    decision      -> protocol.decision; a signed AuditReport
    (later stages)-> clipped-gap plans rejected at the first stage: more spot checks at
                     a higher clip level when that can still accept (verifier.core)

The statistics (pilot, plan, spot-check draws, decision, later stages) are
:mod:`verifier.core`'s, shared with local mode and the benchmarks; this module
adds only the transport and the commitment checks (the result stream in
:mod:`verifier._stream`, the Open plumbing in :mod:`verifier._opening`).

Every failure — transport, refusal, malformed or hostile message, NaN/inf,
out-of-range outputs, bad proof, digest or signature mismatch, spot-check
disagreement — ends the audit with ``decision = "abort"`` and a readable
reason; :class:`AuditResult.transport_failure` tells network failures apart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from protocol.decision import Decision
from protocol.errors import PacdaError, ProverError, VerificationError
from protocol.plan import Plan
from protocol.prg import ExpandedPairs, expand_pairs
from protocol.report import AuditReport
from protocol.stats import statistic_of
from prover.tasks.base import Task
from prover.tasks.device import resolve_device
from prover.tasks.registry import load_task
from verifier._opening import open_and_retrain
from verifier._pilot_run import PilotRun, record_pilot, run_pilot
from verifier._pilot_run import pilot_variance as pilot_variance
from verifier._run import AuditRun as _Run
from verifier._run import Progress as Progress
from verifier._run import progress_counter
from verifier._stream import RESUME_CONNECT_TIMEOUT_S as RESUME_CONNECT_TIMEOUT_S
from verifier._stream import receive_results
from verifier.challenge_log import delta_for_audit, resolve_challenge_log
from verifier.commitment import Commitment, receive_commitment
from verifier.config import AuditConfig
from verifier.core import (
    Screen,
    decide_paper_audit,
    merge_spot_checks,
    plan_audit,
    spot_check_and_decide,
)
from verifier.errors import CallFailed, TransportError
from verifier.planning import task_p
from verifier.preview import PlanHook, preview_plan
from verifier.refusal import REFUSED_OPEN, OpenRefused
from verifier.report_builder import AuditState, build_report, sign
from verifier.results import ChallengeResults
from verifier.retrain import bind_task, private_points, train_points
from verifier.spotcheck import SpotCheckResult, draw_spot_checks
from verifier.wire import ProverClient

__all__ = ["REFUSED_OPEN", "AuditResult", "Auditor", "OpenRefused", "Progress"]


@dataclass(frozen=True)
class AuditResult:
    """The outcome of one audit.

    Attributes:
        report: the typed report (``decision`` is ``"accept"`` or ``"abort"``).
        document: the signed report file content (canonical JSON bytes).
        transport_failure: the audit aborted because the Prover was unreachable.
        plan: the plan in force (``None`` if the audit stopped before planning).
        spot_checks: the spot-check agreement (``None`` if never reached).
    """

    report: AuditReport
    document: bytes
    transport_failure: bool
    plan: Plan | None
    spot_checks: SpotCheckResult | None


class Auditor:
    """Audits a Prover; embeds the whole Verifier side of the protocol.

    Args:
        task: the Verifier's own task (a loaded :class:`Task` or the path of a TASK.toml).
        config: epsilon, delta, mode, planning and transport options.
        key: the Verifier's Ed25519 signing key for the report.
        rng: the Verifier's *private* generator (spot checks, pilot and local
            points); default: a fresh one seeded with 256 bits from :mod:`secrets`
            for every audit (:meth:`run`), so no audit's draws tell anything about
            another's.  A given generator is used as it is (tests, replays).  Never
            share it with the Prover.
        progress: optional progress callback.
        on_plan: called once with the :class:`~verifier.preview.PlanPreview`
            after planning and before any challenge is sent; it may raise
            :class:`~verifier.preview.PlanDeclined`, which propagates out of
            :meth:`run` (no report: nothing was audited).

    :attr:`config` is the configuration given until an audit ends; then, until
    the next :meth:`run`, the one that audit used: with ``epsilon_relative``,
    ``config.epsilon`` is ``None`` before and the absolute epsilon set from the
    pilot after (``report.plan["epsilon"]``; unchanged when the audit stopped
    before its pilot); with a challenge record (``config.challenge_log``),
    ``config.delta`` is the share of delta this audit spent, ``delta / (j (j + 1))``
    for audit ``j`` of these scores (:mod:`verifier.challenge_log`).  Every
    :meth:`run` starts from the configuration given (assigning :attr:`config`
    gives a new one).

    The Verifier retrains on ``config.device``, resolved here
    (:attr:`device`); the tolerances in force are those between its device
    class and the one the Prover announces in its Commit header (the larger
    declared pair when they differ), and the report records both devices.

    Raises:
        DeviceUnavailable: ``config.device`` names a GPU this machine lacks
            (an :class:`~protocol.errors.InvalidArgument`).
    """

    def __init__(
        self,
        task: Task | str | Path,
        config: AuditConfig,
        *,
        key: Ed25519PrivateKey,
        rng: np.random.Generator | None = None,
        progress: Progress | None = None,
        on_plan: PlanHook | None = None,
    ) -> None:
        self.task = task if isinstance(task, Task) else load_task(task)
        self.config = config  # the configuration given (see the class docstring)
        self.device = resolve_device(config.device, task=self.task)
        self.key = key
        self._own_rng = rng is None
        self.rng = rng if rng is not None else np.random.default_rng(secrets.randbits(256))
        self.progress = progress
        self.on_plan = on_plan

    @property
    def config(self) -> AuditConfig:
        """The configuration given, or the one the last audit used (see the class docstring)."""
        return self._config

    @config.setter
    def config(self, config: AuditConfig) -> None:
        self._given = self._config = config

    def _note(self, stage: str, done: int = 0, total: int = 0) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def run(self, channel: grpc.Channel) -> AuditResult:
        """Run one audit over ``channel``; never raises for a Prover-side failure."""
        t0 = time.perf_counter()
        if self._own_rng:  # a fresh private generator per audit (see the class docstring)
            self.rng = np.random.default_rng(secrets.randbits(256))
        self._config = self._given  # each audit starts from the configuration given
        state = AuditState(
            config=self.config, task_digest=self.task.digest, verifier_device=self.device
        )
        client = ProverClient(channel, timeout_s=self.config.rpc_timeout_s)
        bound = bind_task(self.task, self.device)  # rebound to the Prover's class at Commit
        run = _Run(client=client, state=state, config=self.config, task=bound)
        transport = False
        try:
            decision = self._protocol(run)
            state.decision = decision
        except OpenRefused as err:  # after the signed root: an abort, not a transport failure
            state.reason = str(err)
        except CallFailed as err:
            if state.challenge_seed is not None:  # it saw the points: going away is an answer
                state.reason = (
                    f"the Prover ended the audit after the challenge was issued ({err}); "
                    "recorded as a rejection (verifier.challenge_log)"
                )
            elif isinstance(err, TransportError):
                transport = True
                state.reason = f"transport failure: {err}"
            else:
                state.reason = f"ProverError: {err}"
        except VerificationError as err:
            state.reason = f"{type(err).__name__}: {err}"
        except ProverError as err:
            state.reason = f"ProverError: {err}"
        except PacdaError as err:  # e.g. InvalidArgument from the planner: no plan fits
            state.reason = f"{type(err).__name__}: {err}"
        finally:  # also when on_plan declines the plan
            self._config = run.config  # the one the audit used: epsilon set from the pilot
        if run.commitment is not None and not transport:
            run.client.close(run.commitment.session_id)  # the Prover frees the session now
        state.bytes_received = run.client.bytes_received
        state.wall_seconds = time.perf_counter() - t0
        report = build_report(state)
        self._note("done", 1, 1)
        return AuditResult(
            report=report,
            document=sign(report, self.key),
            transport_failure=transport,
            plan=run.plan,
            spot_checks=run.spot,
        )

    # -- the protocol, step by step ------------------------------------------------
    def _protocol(self, run: _Run) -> Decision:
        self._hello(run)
        commitment = self._commit(run)
        plan = self._plan(run, commitment)
        seed = run.seed = secrets.token_bytes(32)  # fresh, and only after the commitment
        self._record_challenge(run, commitment, seed)  # durably, before the Prover sees it
        run.state.challenge_seed = seed
        pairs = self._pairs(plan, seed)
        screen = Screen(self.config, plan, commitment, pairs)
        results = self._challenge(run, commitment, plan, seed, screen)

        def check(indices: NDArray[np.int64]) -> SpotCheckResult:
            spot = self._spot_checks(run, results, plan, seed, indices)
            run.own_outputs.append(spot.own_outputs)
            run.spot = run.state.spot = (
                spot if run.spot is None else merge_spot_checks(run.spot, spot)
            )
            return spot

        if not statistic_of(plan).layout.local_trainings:
            # Spot checks are drawn from the private generator only now, after the root.
            decision, _ = spot_check_and_decide(
                run.config,
                plan,
                commitment,
                pairs,
                results.outputs,
                pilot=run.pilot,
                rng=self.rng,
                check=check,
                note=lambda text: self._note(text, 0, 0),
            )
        else:
            check(draw_spot_checks(self.rng, plan.prover_evaluations, plan.spot_checks))
            decision = self._decide_paper(run, commitment, plan, results)
        self._record_variance(run)
        return decision

    def _pairs(self, plan: Plan, seed: bytes) -> ExpandedPairs:
        p = task_p(self.task)
        return expand_pairs(seed, np.arange(plan.n_pairs), self.task.n_items, p, plan.rho_of_pair())

    def _hello(self, run: _Run) -> None:
        self._note("describe task")
        info = run.info = run.client.describe()
        run.state.prover_public_key = info.prover_public_key
        if info.task_digest != self.task.digest:
            raise VerificationError(
                f"task digest mismatch: the Prover serves {info.task_digest!r}, the Verifier's "
                f"task is {self.task.digest!r} (different spec, dataset or pacda version "
                f"{info.pacda_version!r})"
            )
        if info.modes and self.config.mode not in info.modes:
            raise ProverError(
                f"the Prover does not offer mode {self.config.mode!r} (offers {list(info.modes)})"
            )

    def _commit(self, run: _Run) -> Commitment:
        self._note("commit")
        info = run.info
        if info is None:
            raise VerificationError("internal: commit before hello")
        c = run.commitment = receive_commitment(
            run.client.commit(self.task.digest, self.config.mode),
            task_digest=self.task.digest,
            mode=self.config.mode,
            n_outputs=self.task.n_outputs,
            n_items=self.task.n_items,
            prover_public_key=info.prover_public_key,
            max_values=self.config.max_attribution_values,
        )
        run.state.commitment = c
        run.task = bind_task(self.task, self.device, c.device_class)
        return c

    def _plan(self, run: _Run, commitment: Commitment) -> Plan:
        self._take_delta_share(run, commitment)
        cfg, task = run.config, run.task
        run.state.variance_verified = False

        n, chunk = cfg.pilot_trainings, cfg.train_chunk_size

        def train(x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> NDArray[np.float64]:
            tick = self._counter("pilot", n)
            return train_points(task, x, seeds, chunk_size=chunk, progress=tick).outputs

        def record(done: PilotRun) -> None:
            run.config = done.config
            run.pilot = done.pilot
            record_pilot(run.state, run.own_outputs, done)

        ran = run_pilot(cfg, task, commitment, self.rng, train, note=self._note, record=record)
        cfg = ran.config
        run.state.planned_variance = run.pilot.variance if run.pilot else cfg.variance
        plan = run.plan = plan_audit(cfg, task, commitment, run.pilot)
        run.state.plan = plan
        self._note("plan", 1, 1)
        if self.on_plan is not None:  # before the seed is drawn and any challenge sent
            self.on_plan(
                preview_plan(
                    cfg,
                    plan,
                    pilot_trainings=ran.trainings,
                    pilot_seconds=ran.seconds,
                    pilot_variance=ran.variance,
                )
            )
        return plan

    @staticmethod
    def _take_delta_share(run: _Run, commitment: Commitment) -> None:
        """Audit ``j`` of these scores spends ``delta / (j (j + 1))`` (verifier.challenge_log).

        Counted after the commitment (the attribution digest is known), recorded
        when the challenge is drawn (:meth:`_record_challenge`).
        """
        log = run.challenge_log = resolve_challenge_log(run.config.challenge_log)
        if log is None:
            return
        key = run.state.prover_public_key or b""
        j = log.audits_started(key, commitment.attribution_digest) + 1
        run.state.audits_started = j
        run.state.delta_requested = run.config.delta
        run.config = replace(run.config, delta=delta_for_audit(run.config.delta, j))

    def _record_challenge(self, run: _Run, commitment: Commitment, seed: bytes) -> None:
        log, j = run.challenge_log, run.state.audits_started
        if log is None or j is None:
            return
        log.record(
            prover_key=run.state.prover_public_key or b"",
            attribution_digest=commitment.attribution_digest,
            task_digest=self.task.digest,
            challenge_seed=seed,
            audit=j,
            delta=run.config.delta,
        )

    def _counter(self, stage: str, total: int) -> Callable[[int], object]:
        return progress_counter(self._note, stage, total)

    def _challenge(
        self, run: _Run, commitment: Commitment, plan: Plan, seed: bytes, screen: Screen
    ) -> ChallengeResults:
        """Receive the results; stop the stream and abort when the screen rejects a prefix."""
        return receive_results(
            run, commitment, plan, seed, screen, task=self.task, config=self.config, note=self._note
        )

    def _spot_checks(
        self,
        run: _Run,
        results: ChallengeResults,
        plan: Plan,
        seed: bytes,
        indices: NDArray[np.int64],
    ) -> SpotCheckResult:
        """Open, check and retrain ``indices`` (:func:`verifier._opening.open_and_retrain`)."""
        return open_and_retrain(
            run,
            results,
            plan,
            seed,
            indices,
            p=task_p(self.task),
            config=self.config,
            note=self._note,
        )

    def _decide_paper(
        self, run: _Run, commitment: Commitment, plan: Plan, results: ChallengeResults
    ) -> Decision:
        task, p = run.task, task_p(self.task)
        n = plan.local_trainings
        self._note("local trainings", 0, n)
        x, seeds = private_points(self.rng, n, n_items=task.n_items, p=p)
        local = train_points(
            task,
            x,
            seeds,
            chunk_size=self.config.train_chunk_size,
            progress=self._counter("local trainings", n),
        ).outputs
        run.state.verifier_retrainings += n
        run.own_outputs.append(local)
        return decide_paper_audit(plan, commitment, task, results.outputs, x, local)

    @staticmethod
    def _record_variance(run: _Run) -> None:
        if run.config.epsilon_relative is not None:
            return  # the report keeps the pilot's Var(f), which set epsilon
        own = np.concatenate(run.own_outputs) if run.own_outputs else np.zeros((0, 1))
        if own.shape[0] >= 2:
            run.state.variance_f = pilot_variance(own)
