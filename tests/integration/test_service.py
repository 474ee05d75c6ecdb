"""The Prover service over real gRPC on port 0, driven by a raw client.

Happy path (signed commitment, signed Merkle root, inclusion proofs), resumed
and dropped streams, a restart on the same store, two concurrent sessions, and
every hostile request with its exact status code and message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from numpy.typing import NDArray

from pacda.v1 import prover_pb2 as pb
from pacda.v1 import prover_pb2_grpc as pb_grpc
from protocol.challenge import rho_of_pair
from protocol.digests import attribution_digest
from protocol.errors import InvalidArgument
from protocol.merkle import MerkleTree, result_leaf, verify_inclusion
from protocol.prg import expand_pairs
from protocol.scores import Scores
from protocol.signing import (
    commitment_statement,
    generate_private_key,
    public_key_from_bytes,
    root_statement,
    verify_json,
)
from prover.service import (
    Ed25519Signer,
    ProverHandlers,
    ResultPolicy,
    RunningServer,
    ServerOptions,
    ServiceLimits,
    start_server,
)
from prover.service.plan import ChallengePlan
from prover.service.status import INTERNAL_MESSAGE
from prover.store import ResultStore
from prover.tasks.base import Task, TrainedBatch
from prover.tasks.registry import load_task
from tests.integration._service_util import (
    SYNTHETIC_TOML,
    challenge,
    challenge_request,
    commit,
    make_scores,
    open_points,
    rpc_error,
)

MAX_RECEIVE = 64 * 1024
LIMITS = ServiceLimits(
    max_points=400,
    max_open=8,
    max_sessions_per_client=1024,  # the module's tests share one Prover and one client host
    values_per_chunk=16,
    default_chunk_points=5,
    train_block=8,
    train_chunk=4,
)
N_POINTS = 26  # the default plan of challenge_request: 13 pairs
EMPTY = hashlib.sha256(b"").digest()


@dataclass
class Prover:
    """A running in-process Prover and a client stub."""

    task: Task
    scores: Scores
    handlers: ProverHandlers
    server: RunningServer
    channel: grpc.Channel
    stub: pb_grpc.ProverStub


def _serve(
    task: Task,
    scores: Scores,
    store: ResultStore | None,
    limits: ServiceLimits = LIMITS,
    **kwargs: object,
) -> tuple[ProverHandlers, RunningServer, grpc.Channel]:
    handlers = ProverHandlers(
        source=task,
        task_toml=SYNTHETIC_TOML.read_text(encoding="utf-8"),
        scores=scores,
        signer=Ed25519Signer(generate_private_key()),
        store=store,
        limits=limits,
        **kwargs,  # type: ignore[arg-type]
    )
    server = start_server(
        handlers, ServerOptions(host="[::]", port=0, max_receive_bytes=MAX_RECEIVE)
    )
    return handlers, server, grpc.insecure_channel(f"localhost:{server.port}")


@pytest.fixture(scope="module")
def prover(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prover]:
    tmp = tmp_path_factory.mktemp("prover")
    task = load_task(SYNTHETIC_TOML)
    scores = make_scores(task, tmp / "scores.npz")
    with ResultStore.open_for_task(tmp / "store", task, store_weights=True) as store:
        handlers, server, channel = _serve(task, scores, store)
        yield Prover(task, scores, handlers, server, channel, pb_grpc.ProverStub(channel))
        channel.close()
        server.stop(None)


def _seed(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _public_key(p: Prover) -> object:
    return public_key_from_bytes(p.handlers.signer.public_key)


def _expected_outputs(p: Prover, seed: bytes) -> NDArray[np.float64]:
    """Outputs of the default plan computed directly from the PRG and the task."""
    rhos = rho_of_pair((0.0, 0.5, -0.5), (4, 6, 3))
    pairs = expand_pairs(seed, np.arange(13), p.task.n_items, 0.5, rhos)
    x = np.stack([pairs.first, pairs.second], axis=1).reshape(N_POINTS, -1)
    seeds = np.stack([pairs.first_seeds, pairs.second_seeds], axis=1).reshape(-1)
    return p.task.train_batch(x, seeds).outputs


# ------------------------------------------------------------------ happy path
def test_describe_health_and_reflection(prover: Prover) -> None:
    d = prover.stub.DescribeTask(pb.DescribeTaskRequest(), timeout=10)
    assert d.task_digest == prover.task.digest
    assert d.task_toml == SYNTHETIC_TOML.read_text(encoding="utf-8")
    assert len(d.prover_public_key) == 32
    assert list(d.modes) == ["committed", "paper"]
    assert d.pacda_version
    health = health_pb2_grpc.HealthStub(prover.channel)
    for service in ("", "pacda.v1.Prover"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(prover.channel)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = list(refl.ServerReflectionInfo(iter([req]), timeout=10))
    names = {s.name for s in answer.list_services_response.service}
    assert {"pacda.v1.Prover", "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("mode", ["committed", "paper"])
def test_commit_streams_matrix_and_signed_commitment(prover: Prover, mode: str) -> None:
    c = commit(prover.stub, prover.task.digest, mode)
    s = prover.scores
    assert (c.header.n_outputs, c.header.n_items) == (s.n_outputs, s.n_items)
    assert c.header.method == "test" and c.header.meta_json == '{"purpose":"service tests"}'
    assert len(c.header.session_id) == 32 and int(c.header.session_id, 16) >= 0
    np.testing.assert_array_equal(c.matrix[:, 0], s.theta0)
    np.testing.assert_array_equal(c.matrix[:, 1:], s.theta)
    assert c.n_messages == 2 + -(-s.n_outputs * (s.n_items + 1) // 16)  # chunks of 16 values
    assert c.commitment.attribution_digest == attribution_digest(s.theta0, s.theta)
    statement = commitment_statement(
        session_id=c.header.session_id,
        task_digest=prover.task.digest,
        attribution_digest=c.commitment.attribution_digest,
        mode=mode,
    )
    verify_json(_public_key(prover), statement, c.commitment.signature)  # type: ignore[arg-type]
    other = commit(prover.stub, prover.task.digest, mode)
    assert other.header.session_id != c.header.session_id


def test_happy_path_root_and_openings_verify(prover: Prover) -> None:
    c = commit(prover.stub, prover.task.digest)
    sid, seed = c.header.session_id, _seed("happy")
    res = challenge(prover.stub, challenge_request(sid, seed))
    assert [b.n_points for b in res.batches] == [5, 5, 5, 5, 5, 1]
    tol = prover.task.output_tolerance  # batch composition may change the last bits
    np.testing.assert_allclose(res.outputs, _expected_outputs(prover, seed), rtol=0, atol=tol)
    assert res.digests == [EMPTY] * N_POINTS  # synthetic: nothing trained, P = 0
    leaves = [result_leaf(i, res.outputs[i], res.digests[i]) for i in range(N_POINTS)]
    assert res.root.merkle_root == MerkleTree(leaves).root
    assert res.root.n_leaves == N_POINTS
    statement = root_statement(
        session_id=sid,
        task_digest=prover.task.digest,
        attribution_digest=c.commitment.attribution_digest,
        challenge_seed=seed,
        merkle_root=res.root.merkle_root,
        n_leaves=N_POINTS,
    )
    verify_json(_public_key(prover), statement, res.root.signature)  # type: ignore[arg-type]
    openings = open_points(prover.stub, sid, [25, 0, 7])
    assert [o.point_index for o in openings] == [25, 0, 7]
    for o in openings:
        assert list(o.outputs) == list(res.outputs[o.point_index])
        assert o.weight_digest == EMPTY and o.weights == b""
        leaf = result_leaf(o.point_index, np.asarray(o.outputs), o.weight_digest)
        verify_inclusion(res.root.merkle_root, N_POINTS, o.point_index, leaf, list(o.proof))


def test_resume_returns_identical_batches_and_trains_nothing(prover: Prover) -> None:
    sid = commit(prover.stub, prover.task.digest).header.session_id
    first = challenge(prover.stub, challenge_request(sid, _seed("resume")))
    trained = prover.handlers.stats.n_trained
    again = challenge(prover.stub, challenge_request(sid, _seed("resume"), start_point=10))
    assert [b.SerializeToString() for b in again.batches] == [
        b.SerializeToString() for b in first.batches[2:]
    ]
    assert again.root == first.root
    whole = challenge(prover.stub, challenge_request(sid, _seed("resume"), chunk_points=100))
    assert len(whole.batches) == 1 and whole.root == first.root
    np.testing.assert_array_equal(whole.outputs, first.outputs)
    only_root = challenge(prover.stub, challenge_request(sid, _seed("resume"), start_point=26))
    assert only_root.batches == [] and only_root.root == first.root
    assert prover.handlers.stats.n_trained == trained


def test_dropped_stream_resumes_without_retraining(prover: Prover) -> None:
    sid = commit(prover.stub, prover.task.digest).header.session_id
    seed = _seed("dropped")
    before = prover.handlers.stats.n_trained
    call = prover.stub.Challenge(challenge_request(sid, seed), timeout=60)
    got = next(call).batch
    call.cancel()
    assert got.first_point == 0 and got.n_points == 5
    rest = challenge(prover.stub, challenge_request(sid, seed, start_point=5))
    outputs = np.concatenate([np.asarray(got.outputs).reshape(5, -1), rest.outputs])
    expected = _expected_outputs(prover, seed)
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=prover.task.output_tolerance)
    assert prover.handlers.stats.n_trained - before == N_POINTS  # each point trained once


def test_two_concurrent_sessions_and_a_hostile_client(prover: Prover) -> None:
    def audit(tag: str) -> bytes:
        sid = commit(prover.stub, prover.task.digest).header.session_id
        res = challenge(prover.stub, challenge_request(sid, _seed(tag), chunk_points=3))
        for o in open_points(prover.stub, sid, [1, 2, 3]):
            leaf = result_leaf(o.point_index, np.asarray(o.outputs), o.weight_digest)
            verify_inclusion(res.root.merkle_root, N_POINTS, o.point_index, leaf, list(o.proof))
        return bytes(res.root.merkle_root)

    def hostile() -> grpc.StatusCode:
        err = rpc_error(lambda: prover.stub.Challenge(challenge_request("x" * 1000)))
        return err.code()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=3) as pool:
        a, b = pool.submit(audit, "session-a"), pool.submit(audit, "session-b")
        bad = pool.submit(hostile)
        roots = (a.result(timeout=60), b.result(timeout=60))
    assert bad.result() == grpc.StatusCode.NOT_FOUND
    assert roots[0] != roots[1]
    assert prover.stub.DescribeTask(pb.DescribeTaskRequest(), timeout=10).task_digest


# -------------------------------------------------------------- hostile requests
def _committed(prover: Prover) -> str:
    return commit(prover.stub, prover.task.digest).header.session_id


def _check(err: grpc.RpcError, code: grpc.StatusCode, message: str) -> None:
    assert err.code() == code
    assert err.details() == message


CHALLENGE_CASES = [
    ({"seed": bytes(31)}, "challenge seed must be 32 bytes, got 31"),
    ({"seed": bytes(33)}, "challenge seed must be 32 bytes, got 33"),
    ({"p": 0.25}, "p must equal the task's p = 0.5, got 0.25"),
    ({"p": float("nan")}, "p must equal the task's p = 0.5, got nan"),
    ({"nodes": (0.0, 1.5, 0.1)}, "nodes[1]: rho must lie in [-1, 1] for p=0.5, got 1.5"),
    ({"nodes": (0.0, -1.25, 0.1)}, "nodes[1]: rho must lie in [-1, 1] for p=0.5, got -1.25"),
    ({"nodes": (float("nan"), 0.5, 0.1)}, "nodes[0]: rho must be finite, got nan"),
    ({"nodes": (float("inf"), 0.5, 0.1)}, "nodes[0]: rho must be finite, got inf"),
    ({"nodes": (), "pairs": ()}, "plan has no nodes"),
    ({"pairs": (1, 2)}, "plan has 3 nodes but 2 pair counts"),
    ({"pairs": (0, 0, 0)}, "plan has no pairs"),
    ({"pairs": (100, 100, 1)}, "plan has 402 points; this Prover serves at most 400 per challenge"),
    (
        {"pairs": (2**62, 2**62, 1)},
        "plan has 18446744073709551618 points; this Prover serves at most 400 per challenge",
    ),
    ({"start_point": 27}, "start_point 27 is beyond the 26 points"),
]


@pytest.mark.parametrize(("change", "message"), CHALLENGE_CASES)
def test_malformed_challenge_is_invalid_argument(
    prover: Prover, change: dict[str, object], message: str
) -> None:
    sid = _committed(prover)
    err = rpc_error(lambda: prover.stub.Challenge(challenge_request(sid, **change)))  # type: ignore[arg-type]
    _check(err, grpc.StatusCode.INVALID_ARGUMENT, message)


def test_refusals_are_logged_with_their_reason(
    prover: Prover, caplog: pytest.LogCaptureFixture
) -> None:
    sid = _committed(prover)
    with caplog.at_level(logging.WARNING, logger="prover.service"):
        rpc_error(lambda: prover.stub.Challenge(challenge_request(sid, bytes(5))))
    (record,) = [r for r in caplog.records if r.name == "prover.service"]
    text = record.getMessage()
    assert text.startswith("Challenge from ") and text.endswith(
        "refused with INVALID_ARGUMENT: challenge seed must be 32 bytes, got 5"
    )


def test_unknown_session(prover: Prover) -> None:
    err = rpc_error(lambda: prover.stub.Challenge(challenge_request("nope")))
    _check(err, grpc.StatusCode.NOT_FOUND, "unknown session 'nope'")
    err = rpc_error(lambda: open_points(prover.stub, "nope", [0]))
    _check(err, grpc.StatusCode.NOT_FOUND, "unknown session 'nope'")
    err = rpc_error(lambda: open_points(prover.stub, "y" * 5000, [0]))
    _check(
        err,
        grpc.StatusCode.NOT_FOUND,
        f"unknown session {'y' * 40!r}... (5000 characters)",
    )


def test_replayed_session_is_failed_precondition(prover: Prover) -> None:
    sid = _committed(prover)
    challenge(prover.stub, challenge_request(sid, _seed("replay")))
    message = (
        f"replayed session: session '{sid}' was already challenged with a different seed or plan"
    )
    for change in (
        {"seed": _seed("other")},
        {"pairs": (4, 6, 4)},
        {"nodes": (0.0, 0.5, -0.25)},
    ):
        request = challenge_request(sid, **{"seed": _seed("replay"), **change})  # type: ignore[arg-type]
        err = rpc_error(lambda r=request: prover.stub.Challenge(r))  # type: ignore[misc]
        _check(err, grpc.StatusCode.FAILED_PRECONDITION, message)
    trained = prover.handlers.stats.n_trained
    challenge(prover.stub, challenge_request(sid, _seed("replay"), start_point=4))  # a resume
    assert prover.handlers.stats.n_trained == trained


def test_open_before_root_is_failed_precondition(prover: Prover) -> None:
    sid = _committed(prover)
    err = rpc_error(lambda: open_points(prover.stub, sid, [0]))
    _check(
        err,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"session '{sid}' has no results root yet; "
        "Open is allowed only after the Challenge stream ended with its root",
    )


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([], "point_indices is empty"),
        ([1, 2, 3, 1], "duplicate point index 1"),
        ([0, 26], "point index 26 is out of range (n_leaves = 26)"),
        ([2**64 - 1], "point index 18446744073709551615 is out of range (n_leaves = 26)"),
        (list(range(9)), "too many point indices: 9 > 8 per request"),
    ],
)
def test_malformed_open_is_invalid_argument(
    prover: Prover, indices: list[int], message: str
) -> None:
    sid = _committed(prover)
    challenge(prover.stub, challenge_request(sid, _seed("open")))
    err = rpc_error(lambda: open_points(prover.stub, sid, indices))
    _check(err, grpc.StatusCode.INVALID_ARGUMENT, message)


def test_malformed_commit_is_invalid_argument(prover: Prover) -> None:
    err = rpc_error(lambda: prover.stub.Commit(pb.CommitRequest(task_digest="sha256:00")))
    _check(
        err,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"task digest mismatch: this Prover serves {prover.task.digest}, "
        "the request names 'sha256:00'",
    )
    request = pb.CommitRequest(task_digest=prover.task.digest, mode="interactive")
    err = rpc_error(lambda: prover.stub.Commit(request))
    _check(
        err,
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown mode 'interactive'; this Prover serves ['committed', 'paper']",
    )


def test_oversize_message_is_refused_by_grpc(prover: Prover) -> None:
    request = challenge_request("s", nodes=[0.0] * 10_000, pairs=[1] * 10_000)
    size = request.ByteSize()
    assert size > MAX_RECEIVE
    err = rpc_error(lambda: prover.stub.Challenge(request))
    _check(
        err,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"SERVER: Received message larger than max ({size} vs. {MAX_RECEIVE})",
    )
    assert prover.stub.DescribeTask(pb.DescribeTaskRequest(), timeout=10).task_digest


# ---------------------------------------------------- restart, policies, weights
class _Broken(ResultPolicy):
    """A policy with a bug: the service must answer INTERNAL and stay up."""

    def results(self, *args: object, **kwargs: object) -> tuple[NDArray, NDArray]:  # type: ignore[type-arg]
        raise RuntimeError("boom")


def test_restart_on_the_same_store_trains_nothing_again(tmp_path: Path) -> None:
    task = load_task(SYNTHETIC_TOML)
    scores = make_scores(task, tmp_path / "scores.npz")
    roots = []
    for run_no in range(2):
        with ResultStore.open_for_task(tmp_path / "store", task, store_weights=True) as store:
            handlers, server, channel = _serve(task, scores, store)
            try:
                stub = pb_grpc.ProverStub(channel)
                sid = commit(stub, task.digest).header.session_id
                roots.append(challenge(stub, challenge_request(sid, _seed("restart"))).root)
                expected = (N_POINTS, 0) if run_no == 0 else (0, N_POINTS)
                stats = handlers.stats
                assert (stats.n_trained, stats.n_from_store) == expected
            finally:
                channel.close()
                server.stop(None)
    assert roots[0].merkle_root == roots[1].merkle_root


def test_session_cap_is_resource_exhausted(tmp_path: Path) -> None:
    task = load_task(SYNTHETIC_TOML)
    scores = make_scores(task, tmp_path / "scores.npz")
    _, server, channel = _serve(task, scores, None, ServiceLimits(max_sessions=2))
    try:
        stub = pb_grpc.ProverStub(channel)
        commit(stub, task.digest)
        commit(stub, task.digest)
        request = pb.CommitRequest(task_digest=task.digest, mode="paper")
        err = rpc_error(lambda: stub.Commit(request))
        _check(
            err,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too many sessions: this Prover keeps at most 2; idle sessions are freed after 600 s",
        )
    finally:
        channel.close()
        server.stop(None)


def test_unexpected_error_is_internal_and_the_server_stays_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = load_task(SYNTHETIC_TOML)
    scores = make_scores(task, tmp_path / "scores.npz")
    _, server, channel = _serve(task, scores, None, policy=_Broken())
    try:
        stub = pb_grpc.ProverStub(channel)
        sid = commit(stub, task.digest).header.session_id
        with caplog.at_level(logging.ERROR, logger="prover.service"):
            err = rpc_error(lambda: stub.Challenge(challenge_request(sid)))
        _check(err, grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        assert any("boom" in (r.exc_text or "") for r in caplog.records)
        assert stub.DescribeTask(pb.DescribeTaskRequest(), timeout=10).task_digest == task.digest
    finally:
        channel.close()
        server.stop(None)


class WeightedPlanted(Task):
    """The synthetic task plus fake deterministic weights ``[outputs, x / 2]`` (P = Z + N)."""

    def __init__(self, base: Task) -> None:
        self.base = base

    digest = property(lambda self: "sha256:" + "ab" * 32)
    n_items = property(lambda self: self.base.n_items)
    n_outputs = property(lambda self: self.base.n_outputs)
    bound = property(lambda self: self.base.bound)
    output_tolerance = property(lambda self: 0.0)
    weight_tolerance = property(lambda self: 0.0)

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        out = self.base.train_batch(x, seeds).outputs
        return TrainedBatch(outputs=out, weights=np.concatenate([out, x / 2.0], axis=1))


@pytest.mark.parametrize("use_store", [False, True])
def test_openings_carry_weights_matching_their_digests(tmp_path: Path, use_store: bool) -> None:
    task = WeightedPlanted(load_task(SYNTHETIC_TOML))
    scores = make_scores(task, tmp_path / "scores.npz")
    with ExitStack() as stack:
        store = None
        if use_store:
            path = tmp_path / "store"
            store = stack.enter_context(ResultStore.open_for_task(path, task, store_weights=True))
        handlers, server, channel = _serve(task, scores, store, p=0.5)
        try:
            stub = pb_grpc.ProverStub(channel)
            sid = commit(stub, task.digest).header.session_id
            res = challenge(stub, challenge_request(sid, _seed("weights")))
            openings = open_points(stub, sid, [3, 20, 9])
        finally:
            channel.close()
            server.stop(None)
    for o in openings:
        weights = np.frombuffer(o.weights, dtype="<f8")
        assert weights.shape == (task.n_outputs + task.n_items,)
        np.testing.assert_array_equal(weights[: task.n_outputs], o.outputs)
        assert hashlib.sha256(o.weights).digest() == o.weight_digest == res.digests[o.point_index]
        leaf = result_leaf(o.point_index, np.asarray(o.outputs), o.weight_digest)
        verify_inclusion(res.root.merkle_root, N_POINTS, o.point_index, leaf, list(o.proof))
    assert handlers.stats.n_opened_retrained == 0


def test_a_store_without_weights_is_refused(tmp_path: Path) -> None:
    task = load_task(SYNTHETIC_TOML)
    scores = make_scores(task, tmp_path / "scores.npz")
    with (
        ResultStore.open_for_task(tmp_path / "store", task) as store,
        pytest.raises(InvalidArgument) as err,
    ):
        _serve(task, scores, store)
    assert str(err.value) == (
        f"result store {tmp_path / 'store'} keeps only weight digests; the Prover needs "
        "store_weights=True to open spot checks with the exact committed weights"
    )


def test_plan_layout_interleaves_the_nodes() -> None:
    plan = ChallengePlan(seed=_seed("layout"), p=0.5, nodes=(0.1, 0.2), pairs_per_node=(2, 3))
    # positions: node 0 at 1/4, 3/4; node 1 at 1/6, 1/2, 5/6
    np.testing.assert_array_equal(plan.pair_rhos(np.arange(5)), [0.2, 0.1, 0.2, 0.1, 0.2])
    x, seeds = plan.points(np.array([5, 0, 1]), 7)
    pairs = expand_pairs(plan.seed, [2, 0], 7, 0.5, [0.2, 0.2])
    np.testing.assert_array_equal(x, [pairs.second[0], pairs.first[1], pairs.second[1]])
    np.testing.assert_array_equal(
        seeds, [pairs.second_seeds[0], pairs.first_seeds[1], pairs.second_seeds[1]]
    )
