"""The gRPC adapter: protobuf request -> domain request -> handler -> protobuf answer.

This is the only module of the Prover service that imports the generated
``pacda.v1`` stubs.  Every method is wrapped by
:func:`prover.service.status.translate_errors`, which maps domain errors to
status codes through the one table there.  Streaming methods run under the
:class:`~prover.service.streams.StreamGate` (a cap on concurrent streams and a
write deadline per message); every method that names a session checks its
token (:meth:`~prover.service.handlers.ProverHandlers.authorize`) first.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from pacda.v1 import prover_pb2 as pb
from pacda.v1 import prover_pb2_grpc as pb_grpc
from prover.service.handlers import ProverHandlers
from prover.service.session import client_of
from prover.service.status import translate_errors
from prover.service.streams import StreamGate
from prover.service.types import (
    AttributionCommitment,
    AttributionHeader,
    ChallengeRequest,
    CommitItem,
    Opening,
    ResultBatch,
    ResultItem,
)

__all__ = ["SERVICE_NAME", "ProverServicer", "register"]

#: Full name of the service, as health checking and reflection know it.
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["Prover"].full_name


def _commit_chunk(item: CommitItem) -> pb.CommitChunk:
    if isinstance(item, AttributionHeader):
        return pb.CommitChunk(
            header=pb.AttributionHeader(
                session_id=item.session_id,
                session_token=item.session_token,
                n_outputs=item.n_outputs,
                n_items=item.n_items,
                method=item.method,
                meta_json=item.meta_json,
                device_class=item.device_class,
                device_name=item.device_name,
            )
        )
    if isinstance(item, AttributionCommitment):
        return pb.CommitChunk(
            commitment=pb.AttributionCommitment(
                attribution_digest=item.attribution_digest, signature=item.signature
            )
        )
    return pb.CommitChunk(
        values=pb.AttributionValues(offset=item.offset, values=item.values.tolist())
    )


def _result_chunk(item: ResultItem) -> pb.ResultChunk:
    if isinstance(item, ResultBatch):
        return pb.ResultChunk(
            batch=pb.ResultBatch(
                first_point=item.first_point,
                n_points=len(item.outputs),
                outputs=item.outputs.reshape(-1).tolist(),
                weight_digests=[row.tobytes() for row in item.weight_digests],
            )
        )
    return pb.ResultChunk(
        root=pb.ResultRoot(
            merkle_root=item.merkle_root, n_leaves=item.n_leaves, signature=item.signature
        )
    )


def _opening(item: Opening) -> pb.Opening:
    return pb.Opening(
        point_index=item.point_index,
        outputs=item.outputs.tolist(),
        weight_digest=item.weight_digest,
        weights=item.weights,
        proof=list(item.proof),
    )


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
        d = self.handlers.describe()
        return pb.TaskDescription(
            task_toml=d.task_toml,
            task_digest=d.task_digest,
            pacda_version=d.pacda_version,
            prover_public_key=d.prover_public_key,
            modes=list(d.modes),
        )

    @translate_errors
    def Commit(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.CommitRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.CommitChunk]:
        """See the proto."""
        client = client_of(context.peer())

        def items() -> Iterator[pb.CommitChunk]:
            for item in self.handlers.commit(request.task_digest, request.mode, client):
                yield _commit_chunk(item)

        yield from self.gate.watch("Commit", context, items)

    @translate_errors
    def Challenge(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.ChallengeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ResultChunk]:
        """See the proto."""
        self.handlers.authorize(request.session_id, request.session_token)
        domain = ChallengeRequest(
            session_id=request.session_id,
            seed=request.seed,
            p=request.p,
            nodes=tuple(request.nodes),
            pairs_per_node=tuple(request.pairs_per_node),
            start_point=request.start_point,
            chunk_points=request.chunk_points,
            session_token=request.session_token,
        )

        def items() -> Iterator[pb.ResultChunk]:
            for item in self.handlers.challenge(domain):
                yield _result_chunk(item)

        yield from self.gate.watch("Challenge", context, items)

    @translate_errors
    def Open(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.OpenRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Opening]:
        """See the proto."""
        self.handlers.authorize(request.session_id, request.session_token)

        def items() -> Iterator[pb.Opening]:
            for item in self.handlers.open(request.session_id, list(request.point_indices)):
                yield _opening(item)

        yield from self.gate.watch("Open", context, items)

    @translate_errors
    def Close(  # noqa: N802 - the name is fixed by the proto
        self, request: pb.CloseRequest, context: grpc.ServicerContext
    ) -> pb.CloseResponse:
        """See the proto."""
        self.handlers.authorize(request.session_id, request.session_token)
        self.handlers.close(request.session_id)
        return pb.CloseResponse()


def register(server: grpc.Server, handlers: ProverHandlers, gate: StreamGate) -> str:
    """Add the Prover service to ``server``; returns its full service name."""
    pb_grpc.add_ProverServicer_to_server(ProverServicer(handlers, gate), server)
    return SERVICE_NAME
