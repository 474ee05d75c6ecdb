"""Audits of the real Prover service (``pacda-prover serve --port 0`` subprocess).

The Verifier runs in-process through the library API with a client
interceptor that logs the RPC sequence, so the tests can assert the message
order docs/design.md §2 requires: the challenge seed is sent only after the Commit
stream completed, and spot-check indices only after the Merkle root arrived.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from protocol.scores import Scores, save_scores
from protocol.signing import generate_private_key
from prover.tasks.registry import load_task
from tests.adversarial.test_scores import REJECTED
from verifier import AuditConfig, Auditor, audit

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "examples" / "tasks" / "synthetic.toml"
BIN = Path(sys.executable).parent


class ProverProcess:
    """``pacda-prover serve`` on port 0; the address is read from its first stdout line."""

    def __init__(self, task: Path, scores: Path) -> None:
        self.proc = subprocess.Popen(
            [
                str(BIN / "pacda-prover"),
                "serve",
                "--task",
                str(task),
                "--scores",
                str(scores),
                "--port",
                "0",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            # One intra-op thread: the server trains while the Verifier (this process)
            # trains too; two OpenMP pools on 2 busy cores slow both tenfold.
            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"prover did not start: {line!r}")
        self.address = line.split()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def write_scores(path: Path, scale: float) -> Path:
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()
    scores = Scores(
        theta0=theta0 * scale, theta=theta * scale, task_digest=task.digest, method="exact"
    )
    save_scores(path, scores, overwrite=True)
    return path


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProverProcess]:
    d = tmp_path_factory.mktemp("honest")
    server = ProverProcess(SYNTHETIC, write_scores(d / "scores.npz", 1.0))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def halved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProverProcess]:
    d = tmp_path_factory.mktemp("halved")
    server = ProverProcess(SYNTHETIC, write_scores(d / "scores.npz", 0.5))
    yield server
    server.stop()


class OrderLog(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Logs ``(event, detail)``: each call with its request, and each stream's end or root."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        self.events.append((details.method.rsplit("/", 1)[-1], request))
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        name = details.method.rsplit("/", 1)[-1]
        self.events.append((name, request))
        response = continuation(details, request)

        def watch() -> Iterator[Any]:
            for msg in response:
                if name == "Challenge" and msg.WhichOneof("body") == "root":
                    self.events.append(("root received", None))
                yield msg
            self.events.append((f"{name} ended", None))

        return watch()


def test_honest_committed_accepted_and_message_order(honest: ProverProcess) -> None:
    log = OrderLog()
    with grpc.insecure_channel(honest.address) as raw:
        channel = grpc.intercept_channel(raw, log)
        report = audit(channel, SYNTHETIC, epsilon=0.3, delta=0.05, key=generate_private_key())
    assert report.decision == "accept", report.reason
    assert report.mode == "committed"
    assert report.costs["prover_evaluations"] == report.plan["prover_evaluations"]
    names = [e for e, _ in log.events]
    assert names[:4] == ["DescribeTask", "Commit", "Commit ended", "Challenge"]
    assert names.index("root received") < names.index("Open")
    seed = next(r.seed for e, r in log.events if e == "Challenge")
    assert len(seed) == 32 and seed.hex() == report.challenge_seed
    assert all(e != "Open" for e in names[: names.index("root received")])
    opened = [i for e, r in log.events if e == "Open" for i in r.point_indices]
    # the spot checks the results call for, at most the planned ones
    assert len(opened) == len(set(opened)) == report.costs["spot_checks"]
    assert 0 < len(opened) <= report.plan["spot_checks"]


def test_honest_paper_accepted(honest: ProverProcess) -> None:
    config = AuditConfig(epsilon=1.0, delta=0.05, mode="paper")
    with grpc.insecure_channel(honest.address) as channel:
        result = Auditor(SYNTHETIC, config, key=generate_private_key()).run(channel)
    assert result.report.decision == "accept", result.report.reason
    assert result.plan is not None and result.plan.local_trainings > 0
    assert result.report.costs["verifier_retrainings"] >= result.plan.local_trainings


def test_halved_scores_rejected(halved: ProverProcess) -> None:
    # halved exact scores: err = 0.1875 per output (exact), above epsilon = 0.15; at
    # epsilon = 0.3 they may pass (err < epsilon), and now often do
    with grpc.insecure_channel(halved.address) as channel:
        report = audit(channel, SYNTHETIC, epsilon=0.15, delta=0.05, key=generate_private_key())
    assert report.decision == "abort"
    assert re.search(REJECTED, report.reason), report.reason


def test_two_audits_draw_fresh_seeds(honest: ProverProcess) -> None:
    seeds = set()
    for _ in range(2):
        with grpc.insecure_channel(honest.address) as channel:
            report = audit(channel, SYNTHETIC, epsilon=1.0, delta=0.05, key=generate_private_key())
        seeds.add(report.challenge_seed)
    assert len(seeds) == 2 and all(len(s) == 64 for s in seeds)
    assert np.all([len(s) == 64 for s in seeds])
