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
adds only the transport and the commitment checks.

Every failure — transport, refusal, malformed or hostile message, NaN/inf,
out-of-range outputs, bad proof, digest or signature mismatch, spot-check
disagreement — ends the audit with ``decision = "abort"`` and a readable
reason; :class:`AuditResult.transport_failure` tells network failures apart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from protocol.decision import Decision
from protocol.errors import PacdaError, ProverError, StatisticalRejection, VerificationError
from protocol.plan import Plan
from protocol.prg import ExpandedPairs, expand_pairs
from protocol.report import AuditReport
from prover.tasks.base import Task
from prover.tasks.device import resolve_device
from prover.tasks.registry import load_task
from verifier.commitment import Commitment, receive_commitment
from verifier.config import AuditConfig
from verifier.core import (
    Pilot,
    Screen,
    check_pilot,
    decide_paper_audit,
    merge_spot_checks,
    pilot_from_runs,
    plan_audit,
    spot_check_and_decide,
)
from verifier.errors import TransportError
from verifier.planning import task_p
from verifier.preview import PlanHook, preview_plan
from verifier.refusal import REFUSED_OPEN, OpenRefused, refusal_evidence
from verifier.report_builder import AuditState, build_report, sign
from verifier.results import ChallengeResults, ResultCollector
from verifier.retrain import DeviceBoundTask, bind_task, private_points, train_points
from verifier.spotcheck import (
    SpotCheckResult,
    check_openings,
    draw_spot_checks,
    retrain_and_compare,
)
from verifier.wire import Opening, ProverClient, TaskInfo

__all__ = ["REFUSED_OPEN", "AuditResult", "Auditor", "OpenRefused", "Progress"]

Progress = Callable[[str, int, int], object]
"""``progress(stage, done, total)``; ``total == 0`` marks a stage without a count."""

RESUME_CONNECT_TIMEOUT_S = 30.0


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


@dataclass
class _Run:
    """Mutable per-run scratch (one per :meth:`Auditor.run`)."""

    client: ProverClient
    state: AuditState
    config: AuditConfig
    task: DeviceBoundTask  # on the Verifier's device, within the tolerances in force
    info: TaskInfo | None = None
    commitment: Commitment | None = None
    plan: Plan | None = None
    seed: bytes | None = None
    pilot: Pilot | None = None
    spot: SpotCheckResult | None = None
    own_outputs: list[NDArray[np.float64]] = field(default_factory=list)


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
        self.config = config
        self.device = resolve_device(config.device, task=self.task)
        self.key = key
        self._own_rng = rng is None
        self.rng = rng if rng is not None else np.random.default_rng(secrets.randbits(256))
        self.progress = progress
        self.on_plan = on_plan

    def _note(self, stage: str, done: int = 0, total: int = 0) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def run(self, channel: grpc.Channel) -> AuditResult:
        """Run one audit over ``channel``; never raises for a Prover-side failure."""
        t0 = time.perf_counter()
        if self._own_rng:  # a fresh private generator per audit (see the class docstring)
            self.rng = np.random.default_rng(secrets.randbits(256))
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
        except TransportError as err:
            transport = True
            state.reason = f"transport failure: {err}"
        except VerificationError as err:
            state.reason = f"{type(err).__name__}: {err}"
        except ProverError as err:
            state.reason = f"ProverError: {err}"
        except PacdaError as err:  # e.g. InvalidArgument from the planner: no plan fits
            state.reason = f"{type(err).__name__}: {err}"
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

        if plan.request.mode == "committed":
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
        cfg, task = run.config, run.task
        run.state.variance_verified = False
        n, seconds, pilot_var = 0, None, None
        if cfg.planning == "practical" and cfg.variance is None:
            n = cfg.pilot_trainings
            self._note("pilot", 0, n)
            x, seeds = private_points(self.rng, n, n_items=task.n_items, p=task_p(task))
            t0 = time.perf_counter()
            out = train_points(
                task,
                x,
                seeds,
                chunk_size=cfg.train_chunk_size,
                progress=self._counter("pilot", n),
            ).outputs
            seconds = time.perf_counter() - t0
            pilot_var = pilot_variance(out)
            cfg = run.config = run.state.config = cfg.with_pilot_variance(pilot_var)
            run.pilot = pilot_from_runs(cfg, task, commitment, x, out)
            run.own_outputs.append(out)
            run.state.verifier_retrainings += n
            run.state.pilot_trainings = n
            run.state.variance_verified = True
            if cfg.epsilon_relative is not None:
                run.state.variance_f = pilot_var  # the Var(f) that set epsilon
            check_pilot(cfg, task, run.pilot)
        run.state.planned_variance = run.pilot.variance if run.pilot else cfg.variance
        plan = run.plan = plan_audit(cfg, task, commitment, run.pilot)
        run.state.plan = plan
        self._note("plan", 1, 1)
        if self.on_plan is not None:  # before the seed is drawn and any challenge sent
            self.on_plan(
                preview_plan(
                    cfg,
                    plan,
                    pilot_trainings=n,
                    pilot_seconds=seconds,
                    pilot_variance=pilot_var,
                )
            )
        return plan

    def _counter(self, stage: str, total: int) -> Callable[[int], object]:
        done = [0]

        def tick(m: int) -> None:
            done[0] += m
            self._note(stage, done[0], total)

        return tick

    def _challenge(
        self, run: _Run, commitment: Commitment, plan: Plan, seed: bytes, screen: Screen
    ) -> ChallengeResults:
        """Receive the results; stop the stream and abort when the screen rejects a prefix."""
        n_points = plan.prover_evaluations

        def progress(done: int) -> None:
            self._note("results", done, n_points)
            screened = screen.observe(collector.outputs, done)
            if screened is not None:
                raise StatisticalRejection(screened.reason(plan))

        collector = ResultCollector(
            n_points=n_points, n_outputs=self.task.n_outputs, bound=self.task.bound,
            progress=progress,
        )  # fmt: skip
        resumes = 0
        self._note("results", 0, n_points)
        while True:
            stream = run.client.challenge(
                session_id=commitment.session_id,
                seed=seed,
                p=task_p(self.task),
                nodes=[float(r) for r in plan.functional.nodes],
                pairs_per_node=list(plan.pairs_per_node),
                start_point=collector.received,
                chunk_points=self.config.chunk_points,
            )
            try:
                collector.consume(stream)
                break
            except TransportError:
                if resumes >= self.config.max_resumes or collector.root is not None:
                    raise
                resumes += 1
                self._note(f"stream dropped at point {collector.received}; resuming", 0, 0)
                run.client.wait_ready(RESUME_CONNECT_TIMEOUT_S)
            except StatisticalRejection:
                run.state.prover_evaluations = collector.received
                raise
            finally:  # closing the generator cancels the call: the Prover stops evaluating
                getattr(stream, "close", lambda: None)()
        run.state.stream_resumes = resumes
        run.state.prover_evaluations = n_points
        results = collector.finish(
            session_id=commitment.session_id,
            task_digest=self.task.digest,
            attribution_digest=commitment.attribution_digest,
            challenge_seed=seed,
            prover_public_key=run.state.prover_public_key or b"",
        )
        run.state.merkle_root = results.merkle_root
        run.state.root_signature = results.root_signature
        return results

    def _spot_checks(
        self,
        run: _Run,
        results: ChallengeResults,
        plan: Plan,
        seed: bytes,
        indices: NDArray[np.int64],
    ) -> SpotCheckResult:
        commitment = run.commitment
        if commitment is None:
            raise VerificationError("internal: spot checks before commitment")
        self._note("open", 0, len(indices))
        step = self.config.open_batch
        batches = [indices[i : i + step].tolist() for i in range(0, len(indices), step)]
        openings: list[Opening] = []
        try:
            for b in batches:
                openings.extend(run.client.open(session_id=commitment.session_id, point_indices=b))
        except ProverError as err:  # a refusal, an error status or a broken connection
            raise self._refused(run, results, plan, seed, indices, f"Open failed: {err}") from None
        answered = {op.point_index for op in openings}
        missing = [int(i) for i in indices if int(i) not in answered]
        if missing:
            why = f"{len(missing)} of {len(indices)} requested points not opened"
            raise self._refused(run, results, plan, seed, indices, why)
        opened = check_openings(openings, indices, results)
        k = len(indices)
        run.state.verifier_retrainings += k
        spot = retrain_and_compare(
            run.task,
            seed=seed,
            indices=indices,
            opened=opened,
            results=results,
            p=task_p(self.task),
            rho_of_pair=plan.rho_of_pair(),
            chunk_size=self.config.train_chunk_size,
            progress=self._counter("spot checks", k),
        )
        return spot

    def _refused(
        self,
        run: _Run,
        results: ChallengeResults,
        plan: Plan,
        seed: bytes,
        indices: NDArray[np.int64],
        why: str,
    ) -> OpenRefused:
        """Retrain the requested points anyway and state the mismatches as evidence."""
        k = len(indices)
        self._note("retraining refused spot checks", 0, k)
        err, spot = refusal_evidence(
            run.task,
            results,
            plan,
            seed,
            indices,
            why,
            chunk_size=self.config.train_chunk_size,
            progress=self._counter("retraining refused spot checks", k),
        )
        run.state.verifier_retrainings += k
        run.own_outputs.append(spot.own_outputs)
        run.spot = run.state.spot = spot if run.spot is None else merge_spot_checks(run.spot, spot)
        return err

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


def pilot_variance(outputs: NDArray[np.float64]) -> float:
    """``max_z Var(f_z)`` (ddof 1) of the Verifier's own ``outputs`` ``(n, Z)``."""
    return float(np.max(np.var(outputs, axis=0, ddof=1)))
