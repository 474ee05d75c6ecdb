"""The Prover service's caps, deadlines and session binding, over real gRPC on 127.0.0.1 / ::1.

Session idle deadline and lifetime, caps per client and in total, health
``NOT_SERVING`` while full, ``Close``, session tokens, the memory budget,
stream slots and the write deadline against never-read streams, and exclusive
port binding.  No sleeps for readiness: every wait polls a condition with a
deadline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pacda.v1 import prover_pb2 as pb
from pacda.v1 import prover_pb2_grpc as pb_grpc
from protocol.errors import InvalidArgument
from protocol.signing import generate_private_key
from prover.service import (
    Ed25519Signer,
    ProverHandlers,
    RunningServer,
    ServerOptions,
    ServiceLimits,
    start_server,
)
from prover.tasks.registry import load_task
from tests.integration._service_util import (
    SYNTHETIC_TOML,
    TOKENS,
    challenge,
    challenge_request,
    commit,
    make_scores,
    needs_ipv6,
    open_points,
    rpc_error,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.02)


@contextmanager
def serving(
    tmp_path: Path, limits: ServiceLimits, options: ServerOptions | None = None
) -> Iterator[RunningServer]:
    """An in-process Prover of the synthetic task without a store, on a free port."""
    task = load_task(SYNTHETIC_TOML)
    handlers = ProverHandlers(
        source=task,
        task_toml=SYNTHETIC_TOML.read_text(encoding="utf-8"),
        scores=make_scores(task, tmp_path / "scores.npz"),
        signer=Ed25519Signer(generate_private_key()),
        limits=limits,
    )
    opts = options if options is not None else ServerOptions(host="[::]", port=0)
    server = start_server(handlers, opts)
    try:
        yield server
    finally:
        server.stop(None)


@contextmanager
def stub_at(address: str) -> Iterator[tuple[pb_grpc.ProverStub, grpc.Channel]]:
    with grpc.insecure_channel(address) as channel:
        yield pb_grpc.ProverStub(channel), channel


def health_of(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(health_pb2.HealthCheckRequest(service="pacda.v1.Prover"), timeout=5)
    return int(answer.status)


def _seed(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


DIGEST = load_task(SYNTHETIC_TOML).digest


# ------------------------------------------------------------ deadlines, caps
def test_idle_sessions_expire_and_free_their_slot(tmp_path: Path) -> None:
    limits = ServiceLimits(max_sessions=2, session_idle_s=0.5)
    with serving(tmp_path, limits) as server, stub_at(f"127.0.0.1:{server.port}") as (stub, ch):
        first = commit(stub, DIGEST).header.session_id
        commit(stub, DIGEST)
        assert health_of(ch) == NOT_SERVING  # the table is full: no new audit possible
        wait_until(lambda: len(server.handlers.sessions) == 0)
        assert server.handlers.sessions.n_expired == 2
        wait_until(lambda: health_of(ch) == SERVING)
        err = rpc_error(lambda: stub.Challenge(challenge_request(first)))
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert err.details() == f"unknown session '{first}'"
        commit(stub, DIGEST)  # the slots are free again


def test_lifetime_frees_a_session_that_keeps_busy(tmp_path: Path) -> None:
    limits = ServiceLimits(session_idle_s=600, session_lifetime_s=1.0)
    with serving(tmp_path, limits) as server, stub_at(f"127.0.0.1:{server.port}") as (stub, _):
        sid = commit(stub, DIGEST).header.session_id
        seed = _seed("lifetime")
        challenge(stub, challenge_request(sid, seed))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # resuming keeps it active; its lifetime ends it
            try:
                challenge(stub, challenge_request(sid, seed, start_point=20))
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.NOT_FOUND
                break
        else:
            raise AssertionError("the session outlived its lifetime by 19 s")
        assert len(server.handlers.sessions) == 0
        assert server.handlers.sessions.n_expired == 1


@needs_ipv6
def test_per_client_cap_and_total_cap(tmp_path: Path) -> None:
    limits = ServiceLimits(max_sessions=3, max_sessions_per_client=2)
    with (
        serving(tmp_path, limits) as server,
        stub_at(f"127.0.0.1:{server.port}") as (v4, ch),
        stub_at(f"[::1]:{server.port}") as (v6, _),
    ):
        commit(v4, DIGEST)
        commit(v4, DIGEST)
        err = rpc_error(lambda: v4.Commit(pb.CommitRequest(task_digest=DIGEST, mode="committed")))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details() == (
            "too many sessions from ipv4:127.0.0.1: this Prover keeps at most 2 per client; "
            "close finished sessions or wait 600 s for idle ones to be freed"
        )
        assert health_of(ch) == SERVING  # one client is full, the Prover is not
        sid = commit(v6, DIGEST).header.session_id  # another client (::1) still gets one
        assert health_of(ch) == NOT_SERVING
        err = rpc_error(lambda: v6.Commit(pb.CommitRequest(task_digest=DIGEST, mode="paper")))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details().startswith("too many sessions: this Prover keeps at most 3;")
        v6.Close(pb.CloseRequest(session_id=sid, session_token=TOKENS[sid]), timeout=5)
        assert health_of(ch) == SERVING
        commit(v6, DIGEST)


def test_close_frees_the_session_and_its_memory(tmp_path: Path) -> None:
    with (
        serving(tmp_path, ServiceLimits()) as server,
        stub_at(f"127.0.0.1:{server.port}") as (
            stub,
            _,
        ),
    ):
        sid = commit(stub, DIGEST).header.session_id
        challenge(stub, challenge_request(sid, _seed("close")))
        assert server.handlers.sessions.memory_bytes == 26 * ServiceLimits.point_bytes(2)
        stub.Close(pb.CloseRequest(session_id=sid, session_token=TOKENS[sid]), timeout=5)
        assert len(server.handlers.sessions) == 0
        assert server.handlers.sessions.memory_bytes == 0
        err = rpc_error(lambda: open_points(stub, sid, [0]))
        assert err.code() == grpc.StatusCode.NOT_FOUND


def test_memory_budget_refuses_before_allocating(tmp_path: Path) -> None:
    limits = ServiceLimits(max_memory_bytes=1 << 20)
    with serving(tmp_path, limits) as server, stub_at(f"127.0.0.1:{server.port}") as (stub, _):
        sid = commit(stub, DIGEST).header.session_id
        request = challenge_request(sid, nodes=[0.0], pairs=[10_000])  # 20,000 points
        err = rpc_error(lambda: stub.Challenge(request))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details() == (
            "not enough memory: this challenge needs 2.2 MiB of session state; "
            "1.0 MiB of the Prover's 1.0 MiB are free"
        )
        assert server.handlers.sessions.memory_bytes == 0
        challenge(stub, challenge_request(sid, _seed("fits")))  # 26 points fit


# ------------------------------------------------------------------- tokens
@needs_ipv6
def test_a_session_is_bound_to_the_client_that_opened_it(tmp_path: Path) -> None:
    with (
        serving(tmp_path, ServiceLimits()) as server,
        stub_at(f"127.0.0.1:{server.port}") as (
            stub,
            _,
        ),
    ):
        c = commit(stub, DIGEST)
        sid, token = c.header.session_id, bytes(c.header.session_token)
        assert len(token) == 32
        assert commit(stub, DIGEST).header.session_token != token
        message = (
            f"session '{sid}' belongs to the client that opened it: "
            "the session token is missing or wrong"
        )
        for wrong in (b"", bytes(32), token[:-1] + bytes([token[-1] ^ 1])):
            err = rpc_error(lambda w=wrong: stub.Challenge(challenge_request(sid, token=w)))  # type: ignore[misc]
            assert (err.code(), err.details()) == (grpc.StatusCode.PERMISSION_DENIED, message)
        with stub_at(f"[::1]:{server.port}") as (thief, _):
            err = rpc_error(lambda: thief.Challenge(challenge_request(sid, token=b"")))
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
            # The token, not the connection, identifies the Verifier: it may reconnect.
            res = challenge(thief, challenge_request(sid, _seed("token"), token=token))
        err = rpc_error(lambda: open_points(stub, sid, [0], token=bytes(32)))
        assert (err.code(), err.details()) == (grpc.StatusCode.PERMISSION_DENIED, message)
        (o,) = open_points(stub, sid, [3])
        assert list(o.outputs) == list(res.outputs[3])
        err = rpc_error(
            lambda: stub.Close(pb.CloseRequest(session_id=sid, session_token=b""), timeout=5)
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert len(server.handlers.sessions) == 2


# ------------------------------------------------------- streams and threads
def test_never_read_streams_cannot_starve_the_server(tmp_path: Path) -> None:
    options = ServerOptions(
        host="[::]",
        port=0,
        max_workers=4,
        max_streams_per_client=2,
        write_timeout_s=1.0,
        housekeeping_s=0.1,
    )
    limits = ServiceLimits(max_sessions_per_client=64)
    with (
        serving(tmp_path, limits, options) as server,
        stub_at(f"127.0.0.1:{server.port}") as (stub, ch),
    ):
        assert server.gate.max_streams == 2
        sids = [commit(stub, DIGEST).header.session_id for _ in range(3)]
        # 200,000 points (~10 MB of results): far more than HTTP/2 lets wait unread.
        stalled = [
            stub.Challenge(challenge_request(s, _seed(s), nodes=[0.0], pairs=[100_000]))
            for s in sids[:2]
        ]
        wait_until(lambda: server.gate.n_write_timeouts == 0 and len(server.gate) == 2)
        # Every slot is taken by a stream nobody reads: health still answers, at once.
        started = time.monotonic()
        assert health_of(ch) == NOT_SERVING
        assert stub.DescribeTask(pb.DescribeTaskRequest(), timeout=5).task_digest == DIGEST
        assert time.monotonic() - started < 5
        err = rpc_error(lambda: stub.Challenge(challenge_request(sids[2])))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details() == (
            "too many streams: this Prover runs at most 2 Commit/Challenge/Open streams at "
            "once; try again later"
        )
        # The write deadline cancels both; the slots come back.
        wait_until(lambda: server.gate.n_write_timeouts == 2 and len(server.gate) == 0)
        for call in stalled:
            with pytest.raises(grpc.RpcError) as info:
                list(call)
            assert info.value.code() == grpc.StatusCode.CANCELLED
        assert health_of(ch) == SERVING
        res = challenge(stub, challenge_request(sids[2], _seed("after")))
        assert res.root.n_leaves == 26


@needs_ipv6
def test_one_client_cannot_take_every_stream_slot(tmp_path: Path) -> None:
    options = ServerOptions(host="[::]", port=0, max_workers=8)  # 6 slots, 3 per client
    with (
        serving(tmp_path, ServiceLimits(), options) as server,
        stub_at(f"127.0.0.1:{server.port}") as (v4, _),
        stub_at(f"[::1]:{server.port}") as (v6, _),
    ):
        assert (server.gate.max_streams, server.gate.max_streams_per_client) == (6, 3)
        sids = [commit(v4, DIGEST).header.session_id for _ in range(4)]
        calls = []
        for s in sids[:3]:
            call = v4.Challenge(challenge_request(s, nodes=[0.0], pairs=[50_000]), timeout=60)
            next(call)  # the stream runs
            calls.append(call)
        err = rpc_error(lambda: v4.Challenge(challenge_request(sids[3])))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details() == (
            "too many streams from ipv4:127.0.0.1: this Prover runs at most 3 "
            "Commit/Challenge/Open streams per client at once; try again later"
        )
        sid = commit(v6, DIGEST).header.session_id  # another client still gets a stream
        assert challenge(v6, challenge_request(sid, _seed("v6"))).root.n_leaves == 26
        for call in calls:
            call.cancel()
        wait_until(lambda: len(server.gate) == 0)


def test_a_cancelled_stream_frees_its_slot(tmp_path: Path) -> None:
    with (
        serving(tmp_path, ServiceLimits()) as server,
        stub_at(f"127.0.0.1:{server.port}") as (
            stub,
            _,
        ),
    ):
        sid = commit(stub, DIGEST).header.session_id
        call = stub.Challenge(challenge_request(sid, nodes=[0.0], pairs=[50_000]), timeout=60)
        next(call)
        assert len(server.gate) == 1
        call.cancel()
        wait_until(lambda: len(server.gate) == 0)
        sessions = server.handlers.sessions
        wait_until(lambda: sessions.get(sid).active == 0)  # its idle clock runs


# ------------------------------------------------------------------- the port
def test_a_port_in_use_cannot_be_bound_twice(tmp_path: Path) -> None:
    with serving(tmp_path, ServiceLimits()) as server:
        other = ProverHandlers(
            source=load_task(SYNTHETIC_TOML),
            task_toml=SYNTHETIC_TOML.read_text(encoding="utf-8"),
            scores=make_scores(load_task(SYNTHETIC_TOML), tmp_path / "other.npz"),
            signer=Ed25519Signer(generate_private_key()),
        )
        with pytest.raises(InvalidArgument) as err:
            start_server(other, ServerOptions(host="[::]", port=server.port))
        assert str(err.value).startswith(f"cannot bind [::]:{server.port}")


def test_server_options_refuse_too_many_stream_slots() -> None:
    with pytest.raises(InvalidArgument) as err:
        ServerOptions(max_workers=4, max_streams=4)
    assert str(err.value) == "max_streams must lie in [1, max_workers - 1 = 3], got 4"
    with pytest.raises(InvalidArgument):
        ServerOptions(max_workers=1)
    with pytest.raises(InvalidArgument) as err:
        ServiceLimits(session_idle_s=0)
    assert str(err.value) == "session_idle_s must be a finite number of seconds > 0, got 0"


BIG_TASK = """\
[task]
kind = "synthetic"
p = 0.5
bound = 6.0
output_tolerance = 1e-12
weight_tolerance = 0.0
n_outputs = 2

[task.spectrum]
n_items = 200000
degree_weights = [0.25, 0.5, 0.15, 0.05]
terms_per_degree = [1, 20, 10, 5]
noise = 0.3
structure_seed = 7
"""


def test_a_commit_stream_broken_off_leaves_no_session(tmp_path: Path) -> None:
    """400,000 attribution values (3.2 MB): the server waits on the client's reads."""
    toml = tmp_path / "big.toml"
    toml.write_text(BIG_TASK, encoding="utf-8")
    task = load_task(toml)
    handlers = ProverHandlers(
        source=task,
        task_toml=BIG_TASK,
        scores=make_scores(task, tmp_path / "scores.npz"),
        signer=Ed25519Signer(generate_private_key()),
    )
    server = start_server(handlers, ServerOptions(host="[::]", port=0))
    try:
        for how in ("cancel", "disconnect"):
            channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
            stub = pb_grpc.ProverStub(channel)
            call = stub.Commit(pb.CommitRequest(task_digest=task.digest, mode="paper"), timeout=60)
            header = next(call).header
            assert len(handlers.sessions) == 1
            assert handlers.sessions.get(header.session_id).committed is False
            if how == "cancel":
                call.cancel()
            channel.close()  # "disconnect": the connection goes away under the stream
            wait_until(lambda: len(handlers.sessions) == 0 and len(server.gate) == 0)
    finally:
        server.stop(None)
