"""The Prover's gRPC service (``pacda.v1.Prover``, ``protos/pacda/v1/prover.proto``).

Layers, outermost first: :mod:`~prover.service.server` (transport: limits,
keep-alive, TLS, health, reflection), :mod:`~prover.service.servicer` (the only
module that sees protobuf), :mod:`~prover.service.status` (the one
error-to-status table), :mod:`~prover.service.handlers` (the protocol on domain
objects), :mod:`~prover.service.session` (sessions: caps per client and in total,
idle deadline, lifetime, memory budget, session tokens) and
:mod:`~prover.service.plan`.  :mod:`~prover.service.streams` keeps slow or
never-read streams from starving the server (stream slots, write deadline).
Cheating Provers plug in through :class:`~prover.service.policy.ResultPolicy`.
"""

from prover.service.errors import ServerBusy, SessionStateError, UnknownSession
from prover.service.handlers import MODES, ProverHandlers, ServiceStats
from prover.service.limits import ServiceLimits
from prover.service.plan import ChallengePlan, plan_from_request
from prover.service.policy import HonestPolicy, ResultPolicy
from prover.service.server import RunningServer, ServerOptions, TlsFiles, start_server
from prover.service.signer import Ed25519Signer, Signer
from prover.service.status import STATUS_TABLE

__all__ = [
    "MODES",
    "STATUS_TABLE",
    "ChallengePlan",
    "Ed25519Signer",
    "HonestPolicy",
    "ProverHandlers",
    "ResultPolicy",
    "RunningServer",
    "ServerBusy",
    "ServerOptions",
    "ServiceLimits",
    "ServiceStats",
    "SessionStateError",
    "Signer",
    "TlsFiles",
    "UnknownSession",
    "plan_from_request",
    "start_server",
]
