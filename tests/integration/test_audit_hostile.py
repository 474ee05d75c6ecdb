"""The Verifier against hostile Provers: every failure is an abort with a reason.

:class:`ScriptedProver` is an in-process ``pacda.v1.Prover`` servicer that is
honest by default and misbehaves on request (``faults``); it lets these tests
send messages the real service never would (NaN, wrong lengths, bad proofs).
It trains with :func:`prover.engine.train` and the Merkle/signing helpers of
:mod:`protocol`, i.e. exactly the honest contract of ``prover.proto``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from pacda.v1 import prover_pb2, prover_pb2_grpc
from protocol.challenge import rho_of_pair
from protocol.digests import attribution_digest, weight_digest
from protocol.merkle import MerkleTree, result_leaf
from protocol.prg import expand_pairs
from protocol.signing import (
    commitment_statement,
    generate_private_key,
    public_key_bytes,
    root_statement,
    sign_json,
)
from protocol.taskspec import pacda_version
from prover.engine import train
from prover.tasks.registry import load_task
from tests.adversarial.test_scores import REJECTED
from verifier import AuditConfig, Auditor

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "examples" / "tasks" / "synthetic.toml"


class ScriptedProver(prover_pb2_grpc.ProverServicer):
    """Honest Prover with optional faults (names in :data:`FAULTS`)."""

    def __init__(self, task: Any, theta0: np.ndarray, theta: np.ndarray, faults: set[str]) -> None:
        self.task = task
        self.theta0, self.theta = theta0, theta
        self.faults = faults
        self.key = generate_private_key()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.dropped = False

    def DescribeTask(self, request: Any, context: Any) -> Any:  # noqa: N802
        digest = "sha256:" + "0" * 64 if "task_digest" in self.faults else self.task.digest
        return prover_pb2.TaskDescription(
            task_toml="",
            task_digest=digest,
            pacda_version=pacda_version(),
            prover_public_key=public_key_bytes(self.key.public_key()),
            modes=["committed", "paper"],
        )

    def Commit(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        sid = uuid.uuid4().hex
        matrix = np.concatenate([self.theta0[:, None], self.theta], axis=1)
        digest = attribution_digest(self.theta0, self.theta)
        self.sessions[sid] = {"mode": request.mode, "digest": digest}
        Z, N1 = matrix.shape
        yield prover_pb2.CommitChunk(
            header=prover_pb2.AttributionHeader(
                session_id=sid, n_outputs=Z, n_items=N1 - 1, method="exact"
            )
        )
        flat = matrix.reshape(-1).copy()
        if "nan_attribution" in self.faults:
            flat[3] = np.nan
        for off in range(0, flat.size, 37):
            if "gap_attribution" in self.faults and off == 37:
                continue
            yield prover_pb2.CommitChunk(
                values=prover_pb2.AttributionValues(offset=off, values=flat[off : off + 37])
            )
        if "wrong_attribution_digest" in self.faults:
            digest = "sha256:" + "1" * 64
        stmt = commitment_statement(
            session_id=sid,
            task_digest=self.task.digest,
            attribution_digest=digest,
            mode=request.mode,
        )
        sig = sign_json(self.key, stmt)
        if "bad_commit_signature" in self.faults:
            sig = bytes(64)
        yield prover_pb2.CommitChunk(
            commitment=prover_pb2.AttributionCommitment(attribution_digest=digest, signature=sig)
        )

    def _results(self, sid: str, request: Any) -> dict[str, Any]:
        s = self.sessions[sid]
        if "outputs" in s:
            return s
        n_pairs = int(sum(request.pairs_per_node))
        rhos = rho_of_pair(tuple(request.nodes), tuple(request.pairs_per_node))
        pairs = expand_pairs(request.seed, np.arange(n_pairs), self.task.n_items, request.p, rhos)
        x = np.empty((2 * n_pairs, self.task.n_items), dtype=np.int8)
        x[0::2], x[1::2] = pairs.first, pairs.second
        seeds = np.empty(2 * n_pairs, dtype=np.uint64)
        seeds[0::2], seeds[1::2] = pairs.first_seeds, pairs.second_seeds
        trained = train(self.task, x, seeds)
        outputs = trained.outputs.copy()
        weights = trained.weights if trained.weights is not None else np.zeros((len(x), 0))
        if "corrupt_all" in self.faults:
            outputs = np.clip(outputs + 0.5, -self.task.bound, self.task.bound)
        digests = [weight_digest(w) for w in weights]
        tree = MerkleTree([result_leaf(i, outputs[i], d) for i, d in enumerate(digests)])
        s.update(outputs=outputs, weights=weights, digests=digests, tree=tree, seed=request.seed)
        return s

    def Challenge(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        s = self._results(request.session_id, request)
        outputs, digests = s["outputs"].copy(), s["digests"]
        if "nan_output" in self.faults:
            outputs[1, 0] = np.nan
        if "out_of_range" in self.faults:
            outputs[1, 0] = 10 * self.task.bound
        n = len(outputs)
        step = max(1, request.chunk_points)
        for first in range(int(request.start_point), n, step):
            m = min(step, n - first)
            if "duplicate_batch" in self.faults and first == step:
                first = 0
            if "short_batch" in self.faults:
                m_out = outputs[first : first + m].reshape(-1)[:-1]
            else:
                m_out = outputs[first : first + m].reshape(-1)
            yield prover_pb2.ResultChunk(
                batch=prover_pb2.ResultBatch(
                    first_point=first,
                    n_points=m,
                    outputs=m_out,
                    weight_digests=digests[first : first + m],
                )
            )
            if "drop_once" in self.faults and not self.dropped and first > 0:
                self.dropped = True
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset (scripted)")
        root = s["tree"].root
        if "bad_root" in self.faults:
            root = bytes(32)
        stmt = root_statement(
            session_id=request.session_id,
            task_digest=self.task.digest,
            attribution_digest=self.sessions[request.session_id]["digest"],
            challenge_seed=request.seed,
            merkle_root=root,
            n_leaves=n,
        )
        sig = bytes(64) if "bad_root_signature" in self.faults else sign_json(self.key, stmt)
        yield prover_pb2.ResultChunk(
            root=prover_pb2.ResultRoot(merkle_root=root, n_leaves=n, signature=sig)
        )

    def Open(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        s = self.sessions[request.session_id]
        idx = list(request.point_indices)
        if "missing_opening" in self.faults:
            idx = idx[1:]
        for i in idx:
            w = s["weights"][i]
            if "wrong_weights" in self.faults:
                w = np.append(w + 1.0, 1.0)
            proof = s["tree"].proof(i)
            if "bad_proof" in self.faults and proof:
                proof = [bytes(32), *proof[1:]]
            yield prover_pb2.Opening(
                point_index=i,
                outputs=s["outputs"][i],
                weight_digest=s["digests"][i],
                weights=np.ascontiguousarray(w, dtype="<f8").tobytes(),
                proof=proof,
            )


class Server:
    """A real gRPC server on port 0 around a servicer."""

    def __init__(self, servicer: Any) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prover_pb2_grpc.add_ProverServicer_to_server(servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def stop(self) -> None:
        self.server.stop(grace=None)


def synthetic_task() -> Any:
    return load_task(SYNTHETIC)


def run_scripted(faults: set[str], *, scale: float = 1.0, mode: str = "committed", **cfg: Any):
    """Audit a ScriptedProver with the honest optimal synthetic attributions (x scale)."""
    task = synthetic_task()
    theta0, theta = task.function.optimal_attribution()
    server = Server(ScriptedProver(task, theta0 * scale, theta * scale, faults))
    try:
        config = AuditConfig(
            epsilon=cfg.pop("epsilon", 0.3), delta=0.05, mode=mode, pilot_trainings=400, **cfg
        )
        with server.channel() as channel:
            return Auditor(task, config, key=generate_private_key()).run(channel)
    finally:
        server.stop()


def test_scripted_honest_prover_is_accepted() -> None:
    result = run_scripted(set())
    assert result.report.decision == "accept", result.report.reason


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        ("task_digest", "task digest mismatch"),
        ("nan_attribution", "NaN or infinite"),
        ("gap_attribution", "expected 37"),
        ("wrong_attribution_digest", "attribution digest mismatch"),
        ("bad_commit_signature", "commitment signature is invalid"),
        ("nan_output", "NaN or inf outputs"),
        ("out_of_range", "outside [-6, 6]"),
        ("duplicate_batch", "duplicate indices"),
        ("short_batch", "outputs, expected"),
        ("bad_root", "Merkle root mismatch"),
        ("bad_root_signature", "root signature is invalid"),
        ("missing_opening", "not opened"),
        ("bad_proof", "bad Merkle proof"),
        ("wrong_weights", "weights do not match their digest"),
        ("corrupt_all", "spot check failed"),
    ],
)
def test_hostile_prover_aborts_with_reason(fault: str, text: str) -> None:
    # corrupt_all's numbers alone already reject; draw the spot checks anyway to see them fail
    result = run_scripted({fault}, chunk_points=16, early_rejection=fault != "corrupt_all")
    assert result.report.decision == "abort"
    assert text in result.report.reason
    assert not result.transport_failure


def test_dropped_stream_is_resumed() -> None:
    result = run_scripted({"drop_once"}, chunk_points=16)
    assert result.report.decision == "accept", result.report.reason


def test_halved_scores_are_rejected() -> None:
    # halving the exact scores gives err = 0.1875 per output (exact): above epsilon 0.15
    task = synthetic_task()
    theta0, theta = task.function.optimal_attribution()
    assert float(task.function.err(theta0 * 0.5, theta * 0.5).min()) >= 1.2 * 0.15
    result = run_scripted(set(), scale=0.5, epsilon=0.15)
    assert result.report.decision == "abort"
    assert re.search(REJECTED, result.report.reason), result.report.reason


def test_unreachable_prover_is_a_transport_failure() -> None:
    task = synthetic_task()
    config = AuditConfig(epsilon=0.3, delta=0.05, rpc_timeout_s=5)
    with grpc.insecure_channel("127.0.0.1:1") as channel:
        result = Auditor(task, config, key=generate_private_key()).run(channel)
    assert result.transport_failure
    assert result.report.decision == "abort"
    assert "transport failure" in result.report.reason


def test_each_audit_draws_from_a_fresh_private_generator() -> None:
    """Without a caller's generator, every run reseeds from ``secrets`` (issue 11)."""
    task = synthetic_task()
    config = AuditConfig(epsilon=0.3, delta=0.05, rpc_timeout_s=5)
    auditor = Auditor(task, config, key=generate_private_key())
    states = []
    for _ in range(2):
        with grpc.insecure_channel("127.0.0.1:1") as channel:
            assert auditor.run(channel).transport_failure
        states.append(auditor.rng.bit_generator.state["state"]["state"])
    assert states[0] != states[1]
    given = np.random.default_rng(5)
    fixed = Auditor(task, config, key=generate_private_key(), rng=given)
    with grpc.insecure_channel("127.0.0.1:1") as channel:
        fixed.run(channel)
    assert fixed.rng is given  # a caller's generator is kept (tests, replays)
