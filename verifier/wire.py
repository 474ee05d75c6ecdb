"""The only Verifier module that speaks protobuf: gRPC calls in, domain objects out.

:class:`ProverClient` wraps the ``pacda.v1.Prover`` stub over a channel the
caller provides and turns every message into a small frozen dataclass, so the
driver never touches ``*_pb2`` types (CONVENTIONS: adapters only).  It counts
the serialized size of every message received (``bytes_received``: protobuf
payload bytes, excluding HTTP/2 and TLS framing) and maps gRPC failures onto
the error hierarchy in one place (:func:`map_rpc_error`):

* ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``CANCELLED`` -> :class:`TransportError`
  (network failure; a dropped result stream may be resumed);
* every other status -> :class:`protocol.errors.ProverError` (the Prover refused).

A message whose ``oneof`` body is empty raises :class:`VerificationError`.

Sessions are bound to the client that opened them: the Commit header carries a
secret session token, which the client keeps (by session id) and presents in
every Challenge and Open of that session; the driver never sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
from numpy.typing import NDArray

from pacda.v1 import prover_pb2, prover_pb2_grpc
from protocol.errors import ProverError, VerificationError
from verifier.errors import TransportError

__all__ = [
    "AttributionHeader",
    "AttributionSeal",
    "AttributionValues",
    "Opening",
    "ProverClient",
    "ResultBatch",
    "ResultRoot",
    "TaskInfo",
    "map_rpc_error",
]

_TRANSPORT_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}


@dataclass(frozen=True)
class TaskInfo:
    """``TaskDescription``: the Prover's task and its raw 32-byte Ed25519 public key."""

    task_toml: str
    task_digest: str
    pacda_version: str
    prover_public_key: bytes
    modes: tuple[str, ...]


@dataclass(frozen=True)
class AttributionHeader:
    """First message of ``Commit`` (``session_token``: the secret that Challenge/Open present).

    ``device_class`` / ``device_name``: where the Prover trains challenge points
    (``""`` from Provers older than the field).
    """

    session_id: str
    n_outputs: int
    n_items: int
    method: str
    meta_json: str
    session_token: bytes = b""
    device_class: str = ""
    device_name: str = ""


@dataclass(frozen=True)
class AttributionValues:
    """A row-major slice of the ``Z x (N+1)`` matrix starting at flat index ``offset``."""

    offset: int
    values: NDArray[np.float64]


@dataclass(frozen=True)
class AttributionSeal:
    """Last message of ``Commit``: the digest and the Prover's signature."""

    attribution_digest: str
    signature: bytes


@dataclass(frozen=True)
class ResultBatch:
    """Results of points ``first_point .. first_point + n_points - 1``.

    ``outputs`` is float64 flat ``(n_points * Z,)`` point-major as sent (the
    driver checks and reshapes it); ``weight_digests`` one entry per point.
    """

    first_point: int
    n_points: int
    outputs: NDArray[np.float64]
    weight_digests: tuple[bytes, ...]


@dataclass(frozen=True)
class ResultRoot:
    """Last message of ``Challenge``: the signed Merkle root."""

    merkle_root: bytes
    n_leaves: int
    signature: bytes


@dataclass(frozen=True)
class Opening:
    """One opened spot check: outputs, weight digest, raw weights and audit path."""

    point_index: int
    outputs: NDArray[np.float64]
    weight_digest: bytes
    weights: bytes
    proof: tuple[bytes, ...]


def map_rpc_error(rpc: str, err: grpc.RpcError) -> ProverError:
    """The pacda error for a failed call (see the module docstring for the table)."""
    code = err.code() if hasattr(err, "code") else None
    name = code.name if code is not None else "UNKNOWN"
    details = err.details() if hasattr(err, "details") else str(err)
    text = f"{rpc}: {name}: {details or 'no details'}"
    if name in _TRANSPORT_CODES:
        return TransportError(f"transport failure in {text}", code=name)
    return ProverError(f"the Prover refused {text}")


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

    def describe(self) -> TaskInfo:
        """``DescribeTask``."""
        try:
            msg = self._stub.DescribeTask(prover_pb2.DescribeTaskRequest(), timeout=self._timeout)
        except grpc.RpcError as err:
            raise map_rpc_error("DescribeTask", err) from None
        self._count(msg.ByteSize())
        return TaskInfo(
            task_toml=msg.task_toml,
            task_digest=msg.task_digest,
            pacda_version=msg.pacda_version,
            prover_public_key=bytes(msg.prover_public_key),
            modes=tuple(msg.modes),
        )

    def commit(
        self, task_digest: str, mode: str
    ) -> Iterator[AttributionHeader | AttributionValues | AttributionSeal]:
        """``Commit``: the attribution stream, one domain object per message."""
        request = prover_pb2.CommitRequest(task_digest=task_digest, mode=mode)
        for msg in self._stream("Commit", self._stub.Commit, request):
            body = msg.WhichOneof("body")
            if body == "header":
                h = msg.header
                token = bytes(h.session_token)
                self._tokens[h.session_id] = token
                yield AttributionHeader(
                    h.session_id,
                    int(h.n_outputs),
                    int(h.n_items),
                    h.method,
                    h.meta_json,
                    token,
                    device_class=h.device_class,
                    device_name=h.device_name,
                )
            elif body == "values":
                yield AttributionValues(
                    int(msg.values.offset), np.asarray(msg.values.values, dtype=np.float64)
                )
            elif body == "commitment":
                c = msg.commitment
                yield AttributionSeal(c.attribution_digest, bytes(c.signature))
            else:
                raise VerificationError("malformed Commit stream: a CommitChunk has no body")

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
    ) -> Iterator[ResultBatch | ResultRoot]:
        """``Challenge``: the result stream from ``start_point`` on."""
        request = prover_pb2.ChallengeRequest(
            session_id=session_id,
            seed=seed,
            p=p,
            nodes=list(nodes),
            pairs_per_node=[int(n) for n in pairs_per_node],
            start_point=start_point,
            chunk_points=chunk_points,
            session_token=self._tokens.get(session_id, b""),
        )
        for msg in self._stream("Challenge", self._stub.Challenge, request):
            body = msg.WhichOneof("body")
            if body == "batch":
                b = msg.batch
                yield ResultBatch(
                    int(b.first_point),
                    int(b.n_points),
                    np.asarray(b.outputs, dtype=np.float64),
                    tuple(bytes(d) for d in b.weight_digests),
                )
            elif body == "root":
                r = msg.root
                yield ResultRoot(bytes(r.merkle_root), int(r.n_leaves), bytes(r.signature))
            else:
                raise VerificationError("malformed Challenge stream: a ResultChunk has no body")

    def open(self, *, session_id: str, point_indices: Sequence[int]) -> Iterator[Opening]:
        """``Open``: one :class:`Opening` per requested point."""
        request = prover_pb2.OpenRequest(
            session_id=session_id,
            point_indices=[int(i) for i in point_indices],
            session_token=self._tokens.get(session_id, b""),
        )
        for msg in self._stream("Open", self._stub.Open, request):
            yield Opening(
                int(msg.point_index),
                np.asarray(msg.outputs, dtype=np.float64),
                bytes(msg.weight_digest),
                bytes(msg.weights),
                tuple(bytes(h) for h in msg.proof),
            )

    def close(self, session_id: str) -> None:
        """``Close``: the audit is over, the Prover may free the session (best effort).

        Never raises: a Prover that is gone, or one that does not know ``Close``,
        frees the session at its idle deadline instead.
        """
        token = self._tokens.pop(session_id, b"")
        request = prover_pb2.CloseRequest(session_id=session_id, session_token=token)
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
