"""The one serde between :mod:`protocol.messages` and the generated ``pacda.v1`` classes.

Both directions for every message: :func:`to_proto` (domain message -> protobuf)
and :func:`from_proto` (protobuf -> domain message), plus the stream envelopes
(``CommitChunk`` and ``ResultChunk``, whose ``oneof body`` holds one message)
in :func:`to_commit_chunk` / :func:`from_commit_chunk` and
:func:`to_result_chunk` / :func:`from_result_chunk`.  The Prover's servicer
(:mod:`prover.service.servicer`) and the Verifier's client
(:mod:`verifier.wire`) are the two halves of this serde: what one encodes the
other decodes with the same code, and ``from_proto(to_proto(m)) == m`` for every
message ``m`` (``tests/unit/test_messages.py``).

This is the only module of :mod:`protocol` that imports protobuf (the ``wire``
extra, through the generated ``pacda.v1.prover_pb2``); ``import protocol`` does
not load it, and it imports neither grpc nor torch.  It never validates: the
decoded message is what the wire carried (the checks are the receiver's), except
that a chunk without a body raises :class:`protocol.errors.VerificationError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import numpy as np

from pacda.v1 import prover_pb2 as pb
from protocol.errors import VerificationError
from protocol.messages import (
    AttributionCommitment,
    AttributionHeader,
    AttributionValues,
    ChallengeRequest,
    CloseRequest,
    CommitItem,
    CommitRequest,
    Message,
    Opening,
    OpenRequest,
    ResultBatch,
    ResultItem,
    ResultRoot,
    TaskDescription,
)

__all__ = [
    "from_commit_chunk",
    "from_proto",
    "from_result_chunk",
    "to_commit_chunk",
    "to_proto",
    "to_result_chunk",
]


# ------------------------------------------------------------------ to protobuf
def _task_description_pb(m: TaskDescription) -> pb.TaskDescription:
    return pb.TaskDescription(
        task_toml=m.task_toml,
        task_digest=m.task_digest,
        pacda_version=m.pacda_version,
        prover_public_key=m.prover_public_key,
        modes=list(m.modes),
    )


def _commit_request_pb(m: CommitRequest) -> pb.CommitRequest:
    return pb.CommitRequest(task_digest=m.task_digest, mode=m.mode)


def _attribution_header_pb(m: AttributionHeader) -> pb.AttributionHeader:
    return pb.AttributionHeader(
        session_id=m.session_id,
        n_outputs=m.n_outputs,
        n_items=m.n_items,
        method=m.method,
        meta_json=m.meta_json,
        session_token=m.session_token,
        device_class=m.device_class,
        device_name=m.device_name,
    )


def _attribution_values_pb(m: AttributionValues) -> pb.AttributionValues:
    return pb.AttributionValues(offset=m.offset, values=m.values.tolist())


def _attribution_commitment_pb(m: AttributionCommitment) -> pb.AttributionCommitment:
    return pb.AttributionCommitment(attribution_digest=m.attribution_digest, signature=m.signature)


def _challenge_request_pb(m: ChallengeRequest) -> pb.ChallengeRequest:
    return pb.ChallengeRequest(
        session_id=m.session_id,
        seed=m.seed,
        p=m.p,
        nodes=list(m.nodes),
        pairs_per_node=list(m.pairs_per_node),
        start_point=m.start_point,
        chunk_points=m.chunk_points,
        session_token=m.session_token,
    )


def _result_batch_pb(m: ResultBatch) -> pb.ResultBatch:
    return pb.ResultBatch(
        first_point=m.first_point,
        n_points=m.n_points,
        outputs=m.outputs.tolist(),
        weight_digests=list(m.weight_digests),
    )


def _result_root_pb(m: ResultRoot) -> pb.ResultRoot:
    return pb.ResultRoot(merkle_root=m.merkle_root, n_leaves=m.n_leaves, signature=m.signature)


def _open_request_pb(m: OpenRequest) -> pb.OpenRequest:
    return pb.OpenRequest(
        session_id=m.session_id, point_indices=list(m.point_indices), session_token=m.session_token
    )


def _opening_pb(m: Opening) -> pb.Opening:
    return pb.Opening(
        point_index=m.point_index,
        outputs=m.outputs.tolist(),
        weight_digest=m.weight_digest,
        weights=m.weights,
        proof=list(m.proof),
    )


def _close_request_pb(m: CloseRequest) -> pb.CloseRequest:
    return pb.CloseRequest(session_id=m.session_id, session_token=m.session_token)


# ---------------------------------------------------------------- from protobuf
def _task_description(p: pb.TaskDescription) -> TaskDescription:
    return TaskDescription(
        task_toml=p.task_toml,
        task_digest=p.task_digest,
        pacda_version=p.pacda_version,
        prover_public_key=bytes(p.prover_public_key),
        modes=tuple(p.modes),
    )


def _commit_request(p: pb.CommitRequest) -> CommitRequest:
    return CommitRequest(task_digest=p.task_digest, mode=p.mode)


def _attribution_header(p: pb.AttributionHeader) -> AttributionHeader:
    return AttributionHeader(
        session_id=p.session_id,
        n_outputs=int(p.n_outputs),
        n_items=int(p.n_items),
        method=p.method,
        meta_json=p.meta_json,
        session_token=bytes(p.session_token),
        device_class=p.device_class,
        device_name=p.device_name,
    )


def _attribution_values(p: pb.AttributionValues) -> AttributionValues:
    return AttributionValues(
        offset=int(p.offset), values=np.asarray(p.values, dtype=np.float64).reshape(-1)
    )


def _attribution_commitment(p: pb.AttributionCommitment) -> AttributionCommitment:
    return AttributionCommitment(
        attribution_digest=p.attribution_digest, signature=bytes(p.signature)
    )


def _challenge_request(p: pb.ChallengeRequest) -> ChallengeRequest:
    return ChallengeRequest(
        session_id=p.session_id,
        seed=bytes(p.seed),
        p=float(p.p),
        nodes=tuple(float(r) for r in p.nodes),
        pairs_per_node=tuple(int(n) for n in p.pairs_per_node),
        start_point=int(p.start_point),
        chunk_points=int(p.chunk_points),
        session_token=bytes(p.session_token),
    )


def _result_batch(p: pb.ResultBatch) -> ResultBatch:
    return ResultBatch(
        first_point=int(p.first_point),
        n_points=int(p.n_points),
        outputs=np.asarray(p.outputs, dtype=np.float64).reshape(-1),
        weight_digests=tuple(bytes(d) for d in p.weight_digests),
    )


def _result_root(p: pb.ResultRoot) -> ResultRoot:
    return ResultRoot(
        merkle_root=bytes(p.merkle_root), n_leaves=int(p.n_leaves), signature=bytes(p.signature)
    )


def _open_request(p: pb.OpenRequest) -> OpenRequest:
    return OpenRequest(
        session_id=p.session_id,
        point_indices=tuple(int(i) for i in p.point_indices),
        session_token=bytes(p.session_token),
    )


def _opening(p: pb.Opening) -> Opening:
    return Opening(
        point_index=int(p.point_index),
        outputs=np.asarray(p.outputs, dtype=np.float64).reshape(-1),
        weight_digest=bytes(p.weight_digest),
        weights=bytes(p.weights),
        proof=tuple(bytes(h) for h in p.proof),
    )


def _close_request(p: pb.CloseRequest) -> CloseRequest:
    return CloseRequest(session_id=p.session_id, session_token=bytes(p.session_token))


_TO: dict[type[Message], Callable[[Any], Any]] = {
    TaskDescription: _task_description_pb,
    CommitRequest: _commit_request_pb,
    AttributionHeader: _attribution_header_pb,
    AttributionValues: _attribution_values_pb,
    AttributionCommitment: _attribution_commitment_pb,
    ChallengeRequest: _challenge_request_pb,
    ResultBatch: _result_batch_pb,
    ResultRoot: _result_root_pb,
    OpenRequest: _open_request_pb,
    Opening: _opening_pb,
    CloseRequest: _close_request_pb,
}
_FROM: dict[type[Any], Callable[[Any], Message]] = {
    pb.TaskDescription: _task_description,
    pb.CommitRequest: _commit_request,
    pb.AttributionHeader: _attribution_header,
    pb.AttributionValues: _attribution_values,
    pb.AttributionCommitment: _attribution_commitment,
    pb.ChallengeRequest: _challenge_request,
    pb.ResultBatch: _result_batch,
    pb.ResultRoot: _result_root,
    pb.OpenRequest: _open_request,
    pb.Opening: _opening,
    pb.CloseRequest: _close_request,
}


@overload
def to_proto(msg: TaskDescription) -> pb.TaskDescription: ...
@overload
def to_proto(msg: CommitRequest) -> pb.CommitRequest: ...
@overload
def to_proto(msg: AttributionHeader) -> pb.AttributionHeader: ...
@overload
def to_proto(msg: AttributionValues) -> pb.AttributionValues: ...
@overload
def to_proto(msg: AttributionCommitment) -> pb.AttributionCommitment: ...
@overload
def to_proto(msg: ChallengeRequest) -> pb.ChallengeRequest: ...
@overload
def to_proto(msg: ResultBatch) -> pb.ResultBatch: ...
@overload
def to_proto(msg: ResultRoot) -> pb.ResultRoot: ...
@overload
def to_proto(msg: OpenRequest) -> pb.OpenRequest: ...
@overload
def to_proto(msg: Opening) -> pb.Opening: ...
@overload
def to_proto(msg: CloseRequest) -> pb.CloseRequest: ...
def to_proto(msg: Message) -> Any:
    """The ``pacda.v1`` protobuf message of a domain message (same name, same fields).

    Raises:
        TypeError: ``msg`` is not one of :mod:`protocol.messages`' message classes.
    """
    convert = _TO.get(type(msg))
    if convert is None:
        raise TypeError(f"no protobuf message for {type(msg).__name__}")
    return convert(msg)


@overload
def from_proto(pb_msg: pb.TaskDescription) -> TaskDescription: ...
@overload
def from_proto(pb_msg: pb.CommitRequest) -> CommitRequest: ...
@overload
def from_proto(pb_msg: pb.AttributionHeader) -> AttributionHeader: ...
@overload
def from_proto(pb_msg: pb.AttributionValues) -> AttributionValues: ...
@overload
def from_proto(pb_msg: pb.AttributionCommitment) -> AttributionCommitment: ...
@overload
def from_proto(pb_msg: pb.ChallengeRequest) -> ChallengeRequest: ...
@overload
def from_proto(pb_msg: pb.ResultBatch) -> ResultBatch: ...
@overload
def from_proto(pb_msg: pb.ResultRoot) -> ResultRoot: ...
@overload
def from_proto(pb_msg: pb.OpenRequest) -> OpenRequest: ...
@overload
def from_proto(pb_msg: pb.Opening) -> Opening: ...
@overload
def from_proto(pb_msg: pb.CloseRequest) -> CloseRequest: ...
def from_proto(pb_msg: Any) -> Message:
    """The domain message of a ``pacda.v1`` protobuf message (same name, same fields).

    Raises:
        TypeError: ``pb_msg`` is not a ``pacda.v1`` message that carries data.
    """
    convert = _FROM.get(type(pb_msg))
    if convert is None:
        raise TypeError(f"no domain message for {type(pb_msg).__name__}")
    return convert(pb_msg)


# ------------------------------------------------------------- stream envelopes
def to_commit_chunk(item: CommitItem) -> pb.CommitChunk:
    """A ``CommitChunk`` whose body is ``item`` (header, values or commitment)."""
    if isinstance(item, AttributionHeader):
        return pb.CommitChunk(header=to_proto(item))
    if isinstance(item, AttributionValues):
        return pb.CommitChunk(values=to_proto(item))
    return pb.CommitChunk(commitment=to_proto(item))


def from_commit_chunk(chunk: pb.CommitChunk) -> CommitItem:
    """The message in a ``CommitChunk``'s body.

    Raises:
        VerificationError: the chunk has no body.
    """
    body = chunk.WhichOneof("body")
    if body == "header":
        return from_proto(chunk.header)
    if body == "values":
        return from_proto(chunk.values)
    if body == "commitment":
        return from_proto(chunk.commitment)
    raise VerificationError("malformed Commit stream: a CommitChunk has no body")


def to_result_chunk(item: ResultItem) -> pb.ResultChunk:
    """A ``ResultChunk`` whose body is ``item`` (a batch or the root)."""
    if isinstance(item, ResultBatch):
        return pb.ResultChunk(batch=to_proto(item))
    return pb.ResultChunk(root=to_proto(item))


def from_result_chunk(chunk: pb.ResultChunk) -> ResultItem:
    """The message in a ``ResultChunk``'s body.

    Raises:
        VerificationError: the chunk has no body.
    """
    body = chunk.WhichOneof("body")
    if body == "batch":
        return from_proto(chunk.batch)
    if body == "root":
        return from_proto(chunk.root)
    raise VerificationError("malformed Challenge stream: a ResultChunk has no body")
