"""Receiving a challenge's result stream: resumes, screening, the signed root.

Private to :mod:`verifier.driver` (:meth:`~verifier.driver.Auditor.run`'s
``Challenge`` step).
"""

from __future__ import annotations

from protocol.errors import StatisticalRejection
from protocol.plan import Plan
from prover.tasks.base import Task
from verifier._run import AuditRun, Progress
from verifier._screen import Screen
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.errors import TransportError
from verifier.planning import task_p
from verifier.results import ChallengeResults, ResultCollector

__all__ = ["RESUME_CONNECT_TIMEOUT_S", "receive_results"]

RESUME_CONNECT_TIMEOUT_S = 30.0


def receive_results(
    run: AuditRun,
    commitment: Commitment,
    plan: Plan,
    seed: bytes,
    screen: Screen,
    *,
    task: Task,
    config: AuditConfig,
    note: Progress,
) -> ChallengeResults:
    """Receive the results; stop the stream and abort when the screen rejects a prefix.

    A dropped stream resumes from the last point received, at most
    ``config.max_resumes`` times and never after the signed root.
    """
    n_points = plan.prover_evaluations

    def progress(done: int) -> None:
        note("results", done, n_points)
        screened = screen.observe(collector.outputs, done)
        if screened is not None:
            raise StatisticalRejection(screened.reason(plan))

    collector = ResultCollector(
        n_points=n_points, n_outputs=task.n_outputs, bound=task.bound, progress=progress
    )
    note("results", 0, n_points)
    run.state.stream_resumes = _consume(run, collector, commitment, plan, seed, task, config, note)
    run.state.prover_evaluations = n_points
    results = collector.finish(
        session_id=commitment.session_id,
        task_digest=task.digest,
        attribution_digest=commitment.attribution_digest,
        challenge_seed=seed,
        prover_public_key=run.state.prover_public_key or b"",
    )
    run.state.merkle_root = results.merkle_root
    run.state.root_signature = results.root_signature
    return results


def _consume(
    run: AuditRun,
    collector: ResultCollector,
    commitment: Commitment,
    plan: Plan,
    seed: bytes,
    task: Task,
    config: AuditConfig,
    note: Progress,
) -> int:
    """Feed the Challenge stream into ``collector``, resuming when it drops; the resumes."""
    resumes = 0
    while True:
        stream = run.client.challenge(
            session_id=commitment.session_id,
            seed=seed,
            p=task_p(task),
            nodes=[float(r) for r in plan.functional.nodes],
            pairs_per_node=list(plan.pairs_per_node),
            start_point=collector.received,
            chunk_points=config.chunk_points,
        )
        try:
            collector.consume(stream)
            return resumes
        except TransportError:
            if resumes >= config.max_resumes or collector.root is not None:
                raise
            resumes += 1
            note(f"stream dropped at point {collector.received}; resuming", 0, 0)
            run.client.wait_ready(RESUME_CONNECT_TIMEOUT_S)
        except StatisticalRejection:
            run.state.prover_evaluations = collector.received
            raise
        finally:  # closing the generator cancels the call: the Prover stops evaluating
            stream.close()
