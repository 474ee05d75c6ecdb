"""A raw gRPC client of ``pacda.v1.Prover`` and fixtures shared by the service tests."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from numpy.typing import NDArray

from pacda.v1 import prover_pb2 as pb
from pacda.v1 import prover_pb2_grpc as pb_grpc
from protocol.scores import Scores, save_scores
from prover.tasks.base import Task

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC_TOML = ROOT / "examples" / "tasks" / "synthetic.toml"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


#: Tests that need two client hosts on one machine use 127.0.0.1 and ::1.
needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1)")

#: Session tokens handed out by the Commit streams run through :func:`commit`, by session id;
#: :func:`challenge_request` and :func:`open_points` present them unless told otherwise.
TOKENS: dict[str, bytes] = {}


def make_scores(task: Task, path: Path) -> Scores:
    """Some (not optimal) scores of ``task``, saved at ``path``."""
    rng = np.random.default_rng(np.random.SeedSequence(5))
    scores = Scores(
        theta0=rng.normal(size=task.n_outputs),
        theta=rng.normal(scale=0.05, size=(task.n_outputs, task.n_items)),
        task_digest=task.digest,
        method="test",
        meta={"purpose": "service tests"},
    )
    save_scores(path, scores)
    return scores


@dataclass
class Committed:
    """What a Commit stream delivered."""

    header: pb.AttributionHeader
    matrix: NDArray[np.float64]
    commitment: pb.AttributionCommitment
    n_messages: int


def commit(stub: pb_grpc.ProverStub, task_digest: str, mode: str = "committed") -> Committed:
    """Run Commit; reassemble the matrix from its chunks, checking offsets are contiguous."""
    chunks = list(stub.Commit(pb.CommitRequest(task_digest=task_digest, mode=mode), timeout=30))
    assert chunks[0].WhichOneof("body") == "header"
    assert chunks[-1].WhichOneof("body") == "commitment"
    header = chunks[0].header
    values: list[float] = []
    for c in chunks[1:-1]:
        assert c.WhichOneof("body") == "values"
        assert c.values.offset == len(values)
        values.extend(c.values.values)
    matrix = np.asarray(values).reshape(header.n_outputs, header.n_items + 1)
    TOKENS[header.session_id] = bytes(header.session_token)
    return Committed(header, matrix, chunks[-1].commitment, len(chunks))


def challenge_request(
    session_id: str,
    seed: bytes = bytes(range(32)),
    *,
    p: float = 0.5,
    nodes: Sequence[float] = (0.0, 0.5, -0.5),
    pairs: Sequence[int] = (4, 6, 3),
    start_point: int = 0,
    chunk_points: int = 0,
    token: bytes | None = None,
) -> pb.ChallengeRequest:
    """A ChallengeRequest (default plan: 13 pairs, 26 points; default token: the Commit's)."""
    return pb.ChallengeRequest(
        session_token=TOKENS.get(session_id, b"") if token is None else token,
        session_id=session_id,
        seed=seed,
        p=p,
        nodes=list(nodes),
        pairs_per_node=list(pairs),
        start_point=start_point,
        chunk_points=chunk_points,
    )


@dataclass
class Results:
    """What a Challenge stream delivered."""

    batches: list[pb.ResultBatch]
    root: pb.ResultRoot

    @property
    def outputs(self) -> NDArray[np.float64]:
        """float64 ``(n, Z)`` of the streamed points."""
        rows = [np.asarray(b.outputs).reshape(b.n_points, -1) for b in self.batches]
        return np.concatenate(rows)

    @property
    def digests(self) -> list[bytes]:
        """The streamed weight digests."""
        return [d for b in self.batches for d in b.weight_digests]


def challenge(stub: pb_grpc.ProverStub, request: pb.ChallengeRequest) -> Results:
    """Run Challenge to its end; batches must be contiguous from ``start_point``."""
    chunks = list(stub.Challenge(request, timeout=60))
    assert chunks[-1].WhichOneof("body") == "root"
    batches = [c.batch for c in chunks[:-1]]
    expect = request.start_point
    for b in batches:
        assert b.first_point == expect
        assert len(b.outputs) % b.n_points == 0 and len(b.weight_digests) == b.n_points
        expect += b.n_points
    return Results(batches, chunks[-1].root)


def open_points(
    stub: pb_grpc.ProverStub, session_id: str, indices: Sequence[int], token: bytes | None = None
) -> list[pb.Opening]:
    """Run Open (default token: the Commit's)."""
    req = pb.OpenRequest(
        session_id=session_id,
        point_indices=list(indices),
        session_token=TOKENS.get(session_id, b"") if token is None else token,
    )
    return list(stub.Open(req, timeout=60))


def rpc_error(call: object) -> grpc.RpcError:
    """The RpcError raised by calling (and, for streams, draining) ``call()``."""
    try:
        result = call()  # type: ignore[operator]
        if not isinstance(result, pb.TaskDescription):
            list(result)
    except grpc.RpcError as err:
        return err
    raise AssertionError("the call succeeded")
