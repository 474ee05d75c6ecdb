"""Run one audit of a (cheating) Prover: real server on port 0, real Verifier."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import torch

from protocol.messages import ChallengeRequest, Opening, ResultItem
from protocol.scores import Scores
from protocol.signing import generate_private_key
from prover.adversaries import Armed, arm
from prover.service import Ed25519Signer, ProverHandlers, ServerOptions, start_server
from prover.service.handlers import ServiceStats
from prover.service.policy import ResultPolicy
from prover.tasks.base import Task
from verifier import AuditConfig, Auditor
from verifier.driver import AuditResult

#: Seed of the Verifier's private generator in this suite (spot checks, pilot).
VERIFIER_SEED = 20240607
#: Root seed of the adversaries' randomness in this suite.
ADVERSARY_SEED = 7


class OneThreadHandlers(ProverHandlers):
    """The real handlers, with one torch intra-op thread on the RPC thread that trains.

    ``torch.set_num_threads`` is per thread under OpenMP; without this, training
    on the server's RPC threads competes with the Verifier for the 2 cores.
    """

    def challenge(self, request: ChallengeRequest) -> Iterator[ResultItem]:
        torch.set_num_threads(1)
        yield from super().challenge(request)

    def open(self, session_id: str, point_indices: Sequence[int]) -> Iterator[Opening]:
        torch.set_num_threads(1)
        yield from super().open(session_id, point_indices)


def armed(task: Task, honest: Scores, *adversaries: str) -> Armed:
    """The adversaries' scores and policy, seeded with :data:`ADVERSARY_SEED`."""
    return arm(list(adversaries), task=task, scores=honest, seed=ADVERSARY_SEED)


def audit(
    task: Task,
    toml: Path,
    scores: Scores,
    policy: ResultPolicy | None,
    *,
    epsilon: float,
    delta: float = 0.05,
    audits: int = 1,
    verifier_seed: int = VERIFIER_SEED,
    early_rejection: bool = True,
    prover_stats: list[ServiceStats] | None = None,
    statistic: str | None = None,
    challenge_log: str | None = "default",
) -> Sequence[AuditResult]:
    """Serve ``scores`` with ``policy`` and run ``audits`` audits against the same server.

    ``early_rejection=False``: the Verifier spot-checks even results that its
    statistic alone rejects (:attr:`verifier.config.AuditConfig.early_rejection`),
    so the tests of the spot checks see them.  ``prover_stats``: the Prover's
    counters (points trained, ...) are appended to it once the audits are done.
    ``statistic``: the Verifier's (``None``: the default).  ``challenge_log``:
    the Verifier's record of challenges (default: the test's own ``$PACDA_HOME``,
    so audit ``j`` of the same scores plans with ``delta / (j (j + 1))``).
    """
    with serving(task, toml, scores, policy) as served:
        try:
            out = []
            for _ in range(audits):
                config = AuditConfig(
                    epsilon=epsilon, delta=delta, early_rejection=early_rejection,
                    statistic=statistic, challenge_log=challenge_log,
                )  # fmt: skip
                rng = np.random.default_rng(verifier_seed)
                auditor = Auditor(task, config, key=generate_private_key(), rng=rng)
                with grpc.insecure_channel(served.address) as channel:
                    out.append(auditor.run(channel))
            return out
        finally:
            if prover_stats is not None:
                prover_stats.append(served.stats)


@dataclass(frozen=True)
class Served:
    """A running in-process Prover: its port and its counters."""

    port: int
    stats: ServiceStats

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def serving(
    task: Task, toml: Path, scores: Scores, policy: ResultPolicy | None = None
) -> Iterator[Served]:
    """A real Prover server for ``scores`` on ``127.0.0.1:0`` (one torch thread per RPC)."""
    handlers = OneThreadHandlers(
        source=task,
        task_toml=toml.read_text(encoding="utf-8"),
        scores=scores,
        signer=Ed25519Signer(generate_private_key()),
        policy=policy,
    )
    server = start_server(handlers, ServerOptions(host="127.0.0.1", port=0))
    try:
        yield Served(server.port, handlers.stats)
    finally:
        server.stop(grace_s=None)


def audit_armed(
    task: Task, toml: Path, honest: Scores, *adversaries: str, epsilon: float
) -> AuditResult:
    """One audit of a Prover armed with ``adversaries``."""
    a = armed(task, honest, *adversaries)
    return audit(task, toml, a.scores, a.policy, epsilon=epsilon)[0]
