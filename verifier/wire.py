"""The only Verifier module that speaks protobuf: gRPC calls in, domain messages out.

:class:`ProverClient` wraps the ``pacda.v1.Prover`` stub over a channel the
caller provides and turns every message into a frozen domain message of
:mod:`protocol.messages` with the serde the Prover's servicer uses too
(:mod:`protocol.messages_proto`), so the driver never touches ``*_pb2`` types
(CONVENTIONS: adapters only).  It counts the serialized size of every message
received (``bytes_received``: protobuf payload bytes, excluding HTTP/2 and TLS
framing) and maps gRPC failures onto the error hierarchy in one place
(:func:`map_rpc_error`):

* ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``CANCELLED`` -> :class:`TransportError`
  (network failure; a dropped result stream may be resumed);
* every other status -> :class:`verifier.errors.CallFailed`, a
  :class:`protocol.errors.ProverError` (the Prover refused).

A message whose ``oneof`` body is empty raises :class:`VerificationError`.

Sessions are bound to the client that opened them: the Commit header carries a
secret session token, which the client keeps (by session id) and presents in
every Challenge and Open of that session; the driver never sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence

import grpc

from pacda.v1 import prover_pb2, prover_pb2_grpc
from protocol.errors import ProverError
from protocol.messages import (
    AttributionHeader,
    ChallengeRequest,
    CloseRequest,
    CommitItem,
    CommitRequest,
    Opening,
    OpenRequest,
    ResultItem,
    TaskDescription,
)
from protocol.messages_proto import from_commit_chunk, from_proto, from_result_chunk, to_proto
from verifier.errors import CallFailed, TransportError

__all__ = ["ProverClient", "map_rpc_error"]

_TRANSPORT_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}


def map_rpc_error(rpc: str, err: grpc.RpcError) -> ProverError:
    """The pacda error for a failed call (see the module docstring for the table)."""
    code = err.code() if hasattr(err, "code") else None
    name = code.name if code is not None else "UNKNOWN"
    details = err.details() if hasattr(err, "details") else str(err)
    text = f"{rpc}: {name}: {details or 'no details'}"
    if name in _TRANSPORT_CODES:
        return TransportError(f"transport failure in {text}", code=name)
    return CallFailed(f"the Prover refused {text}")


class ProverClient:
    """Typed calls of the ``pacda.v1.Prover`` service over a caller-provided channel.

    Args:
        channel: any ``grpc.Channel`` (plain, TLS, or intercepted).
        timeout_s: deadline of each call (a whole stream counts as one call).
    """

    def __init__(self, channel: grpc.Channel, *, timeout_s: float) -> None:
        self._stub = prover_pb2_grpc.ProverStub(channel)
        self._channel = channel
        self._timeout = timeout_s
        self.bytes_received = 0
        self.messages_received = 0
        self._tokens: dict[str, bytes] = {}

    def _count(self, size: int) -> None:
        self.bytes_received += size
        self.messages_received += 1

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the channel is connected (used before resuming a stream).

        Raises:
            TransportError: not connected within ``timeout_s``.
        """
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError as err:
            raise TransportError(
                f"the Prover is unreachable (no connection within {timeout_s:g}s)"
            ) from err

    def describe(self) -> TaskDescription:
        """``DescribeTask``."""
        try:
            msg: prover_pb2.TaskDescription = self._stub.DescribeTask(
                prover_pb2.DescribeTaskRequest(), timeout=self._timeout
            )
        except grpc.RpcError as err:
            raise map_rpc_error("DescribeTask", err) from None
        self._count(msg.ByteSize())
        return from_proto(msg)

    def commit(self, task_digest: str, mode: str) -> Iterator[CommitItem]:
        """``Commit``: the attribution stream, one domain message per ``CommitChunk``."""
        request = to_proto(CommitRequest(task_digest=task_digest, mode=mode))
        for msg in self._stream("Commit", self._stub.Commit, request):
            item = from_commit_chunk(msg)
            if isinstance(item, AttributionHeader):
                self._tokens[item.session_id] = item.session_token
            yield item

    def challenge(
        self,
        *,
        session_id: str,
        seed: bytes,
        p: float,
        nodes: Sequence[float],
        pairs_per_node: Sequence[int],
        start_point: int,
        chunk_points: int,
    ) -> Generator[ResultItem, None, None]:
        """``Challenge``: the result stream from ``start_point`` on.

        Closing the generator before its end cancels the call (the Prover stops).
        """
        request = ChallengeRequest(
            session_id=session_id,
            seed=seed,
            p=p,
            nodes=tuple(nodes),
            pairs_per_node=tuple(pairs_per_node),
            start_point=start_point,
            chunk_points=chunk_points,
            session_token=self._tokens.get(session_id, b""),
        )
        for msg in self._stream("Challenge", self._stub.Challenge, to_proto(request)):
            yield from_result_chunk(msg)

    def open(self, *, session_id: str, point_indices: Sequence[int]) -> Iterator[Opening]:
        """``Open``: one :class:`Opening` per requested point."""
        request = OpenRequest(
            session_id=session_id,
            point_indices=tuple(point_indices),
            session_token=self._tokens.get(session_id, b""),
        )
        for msg in self._stream("Open", self._stub.Open, to_proto(request)):
            yield from_proto(msg)

    def close(self, session_id: str) -> None:
        """``Close``: the audit is over, the Prover may free the session (best effort).

        Never raises: a Prover that is gone, or one that does not know ``Close``,
        frees the session at its idle deadline instead.
        """
        token = self._tokens.pop(session_id, b"")
        request = to_proto(CloseRequest(session_id=session_id, session_token=token))
        with contextlib.suppress(grpc.RpcError):
            self._stub.Close(request, timeout=min(self._timeout, 10.0))

    def _stream(self, rpc: str, method, request):  # type: ignore[no-untyped-def]
        """Iterate a server stream, counting bytes and mapping gRPC errors."""
        call = method(request, timeout=self._timeout)
        try:
            for msg in call:
                self._count(msg.ByteSize())
                yield msg
        except grpc.RpcError as err:
            raise map_rpc_error(rpc, err) from None
        finally:
            cancel = getattr(call, "cancel", None)  # intercepted calls may be plain iterators
            if cancel is not None:
                cancel()
