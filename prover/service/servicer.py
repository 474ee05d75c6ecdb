"""The gRPC adapter: protobuf request -> domain request -> handler -> protobuf answer.

This is the only module of the Prover service that imports the generated
``pacda.v1`` stubs; it converts messages with the serde that the Verifier's
client uses too (:mod:`protocol.messages_proto`, over :mod:`protocol.messages`).
Every method is wrapped by :func:`prover.service.status.translate_errors`,
which maps domain errors to status codes through the one table there.
Streaming methods run under the :class:`~prover.service.streams.StreamGate` (a
cap on concurrent streams and a write deadline per message); every method that
names a session checks its token (:meth:`~prover.service.handlers.ProverHandlers.authorize`) first.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from pacda.v1 import prover_pb2 as pb
from pacda.v1 import prover_pb2_grpc as pb_grpc
from protocol.messages_proto import from_proto, to_commit_chunk, to_proto, to_result_chunk
from prover.service.handlers import ProverHandlers
from prover.service.session import client_of
from prover.service.status import translate_errors
from prover.service.streams import StreamGate

__all__ = ["SERVICE_NAME", "ProverServicer", "register"]

#: Full name of the service, as health checking and reflection know it.
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["Prover"].full_name


class ProverServicer(pb_grpc.ProverServicer):
    """``pacda.v1.Prover`` over a :class:`~prover.service.handlers.ProverHandlers`."""

    def __init__(self, handlers: ProverHandlers, gate: StreamGate) -> None:
        self.handlers = handlers
        self.gate = gate

    @translate_errors
    def DescribeTask(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.DescribeTaskRequest, context: grpc.ServicerContext
    ) -> pb.TaskDescription:
        """See the proto."""
        return to_proto(self.handlers.describe())

    @translate_errors
    def Commit(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.CommitRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.CommitChunk]:
        """See the proto."""
        client = client_of(context.peer())
        req = from_proto(request)

        def items() -> Iterator[pb.CommitChunk]:
            for item in self.handlers.commit(req.task_digest, req.mode, client):
                yield to_commit_chunk(item)

        yield from self.gate.watch("Commit", context, items)

    @translate_errors
    def Challenge(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.ChallengeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ResultChunk]:
        """See the proto."""
        domain = from_proto(request)
        self.handlers.authorize(domain.session_id, domain.session_token)

        def items() -> Iterator[pb.ResultChunk]:
            for item in self.handlers.challenge(domain):
                yield to_result_chunk(item)

        yield from self.gate.watch("Challenge", context, items)

    @translate_errors
    def Open(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.OpenRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Opening]:
        """See the proto."""
        req = from_proto(request)
        self.handlers.authorize(req.session_id, req.session_token)

        def items() -> Iterator[pb.Opening]:
            for item in self.handlers.open(req.session_id, list(req.point_indices)):
                yield to_proto(item)

        yield from self.gate.watch("Open", context, items)

    @translate_errors
    def Close(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.CloseRequest, context: grpc.ServicerContext
    ) -> pb.CloseResponse:
        """See the proto."""
        req = from_proto(request)
        self.handlers.authorize(req.session_id, req.session_token)
        self.handlers.close(req.session_id)
        return pb.CloseResponse()


def register(server: grpc.Server, handlers: ProverHandlers, gate: StreamGate) -> str:
    """Add the Prover service to ``server``; returns its full service name."""
    pb_grpc.add_ProverServicer_to_server(ProverServicer(handlers, gate), server)
    return SERVICE_NAME
