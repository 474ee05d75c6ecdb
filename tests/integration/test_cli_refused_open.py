"""After the signed root, a Prover that will not open spot checks gets an ABORT (exit 1).

The real ``pacda-verifier audit`` process talks to a real gRPC Prover in this
process.  Two ways of not opening, both after the Merkle root was signed:

* :class:`~prover.adversaries.refuse_open.RefuseOpenPolicy` shifts 20% of the
  results by 1e-3 (beyond tau) and answers every ``Open`` with an error status;
* an honest Prover behind a TCP relay that cuts every connection, and stops
  listening, the moment the first ``Open`` reaches the Prover (a disconnect).

Either way the verdict is ABORT with the reason "Prover refused to open spot
checks", exit status 1 (3 is for failures before the root), and the signed
report records what the Verifier's own retraining of the requested points
found: the liar's mismatches, or the honest Prover's agreement.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.messages import Opening
from protocol.report import AuditReport, verify_report
from protocol.scores import Scores
from protocol.signing import generate_private_key, load_public_key, write_keypair
from prover.adversaries.refuse_open import RefuseOpenPolicy
from prover.service import Ed25519Signer, ServerOptions, start_server
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from tests.adversarial._audit import OneThreadHandlers
from tests.integration.test_audit_real import SYNTHETIC
from verifier.driver import REFUSED_OPEN

BIN = Path(sys.executable).parent


class Relay:
    """A TCP relay to ``target``; :meth:`cut` drops every connection and stops listening."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.cut_done = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if self.cut_done:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            self.cut_done = True
            self.listener.close()
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


class CutOnOpen(ResultPolicy):
    """Honest, except that the first ``Open`` cuts the relay before anything is sent."""

    def __init__(self) -> None:
        self.relay: Relay | None = None

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        if self.relay is not None:
            self.relay.cut()
        return opening


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task(SYNTHETIC)


def serve(task: Task, policy: ResultPolicy):  # type: ignore[no-untyped-def]
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    scores = Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact")
    handlers = OneThreadHandlers(
        source=task,
        task_toml=SYNTHETIC.read_text(encoding="utf-8"),
        scores=scores,
        signer=Ed25519Signer(generate_private_key()),
        policy=policy,
    )
    return start_server(handlers, ServerOptions(host="127.0.0.1", port=0))


def audit_cli(address: str, tmp: Path) -> tuple[subprocess.CompletedProcess[str], AuditReport]:
    key, pub = write_keypair(tmp / "v")
    report = tmp / "r.json"
    done = subprocess.run(
        [str(BIN / "pacda-verifier"), "audit", "--prover", address, "--task", str(SYNTHETIC),
         "--epsilon", "0.3", "--delta", "0.05", "--key", str(key), "--report", str(report),
         "--timeout", "60"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PACDA_HOME": str(tmp)},
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done, verify_report(report.read_bytes(), load_public_key(pub))


def test_refusal_after_the_root_is_an_abort_with_evidence(task: Task, tmp_path: Path) -> None:
    policy = RefuseOpenPolicy(0.2, shift=1e-3, rng=np.random.default_rng(7))
    server = serve(task, policy)
    try:
        done, report = audit_cli(f"127.0.0.1:{server.port}", tmp_path)
    finally:
        server.stop(grace_s=None)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: ABORT" in done.stdout
    assert f"reason:  {REFUSED_OPEN}" in done.stdout
    assert report.decision == "abort" and report.reason.startswith(REFUSED_OPEN)
    assert "this Prover does not open its results" in report.reason
    assert report.merkle_root and report.prover_root_signature  # the root was signed
    k = report.costs["spot_checks"]  # drawn: at most the planned (docs/protocol.md)
    assert 0 < k <= report.plan["spot_checks"]  # type: ignore[index]
    assert f"the Verifier retrained the {k} requested points itself" in report.reason
    # About 20% of the k points were lies; far beyond tau, so they all show.
    found = re.search(r"itself: (\d+) of the (\d+) requested points", report.reason)
    assert found is not None and int(found.group(2)) == k, report.reason
    assert 0.1 * k < int(found.group(1)) < 0.3 * k, report.reason
    assert f"disagree with the Prover's signed results beyond tau={task.output_tolerance:g}" in (
        report.reason
    )
    assert report.costs["verifier_retrainings"] == 200 + k


def test_disconnect_on_open_is_an_abort_not_a_transport_failure(task: Task, tmp_path: Path) -> None:
    policy = CutOnOpen()
    server = serve(task, policy)
    relay = policy.relay = Relay(("127.0.0.1", server.port))
    try:
        done, report = audit_cli(f"127.0.0.1:{relay.port}", tmp_path)
    finally:
        relay.cut()
        server.stop(grace_s=None)
    assert done.returncode == 1, done.stdout + done.stderr
    assert report.decision == "abort" and report.reason.startswith(REFUSED_OPEN)
    assert "Open failed: transport failure in Open" in report.reason
    assert report.merkle_root and report.prover_root_signature
    k = report.costs["spot_checks"]
    assert 0 < k <= report.plan["spot_checks"]  # type: ignore[index]
    assert f"all {k} agree with the Prover's signed results" in report.reason
