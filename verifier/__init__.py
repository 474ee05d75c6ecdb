"""The pacda Verifier: audit a Prover over gRPC and hand back a signed report.

Embedding::

    import grpc
    from verifier import audit

    with grpc.insecure_channel("localhost:50051") as channel:
        report = audit(channel, "task.toml", epsilon=0.4, delta=0.05)
    print(report.decision, report.reason)

:class:`Auditor` runs the same driver and also returns the signed file bytes,
the plan and the spot-check agreement (:class:`AuditResult`).  The public API
speaks domain types only (no protobuf).  Offline report checks need only
:mod:`protocol` (:func:`protocol.report.verify_report`).
"""

from __future__ import annotations

from verifier.api import audit
from verifier.config import AuditConfig
from verifier.driver import AuditResult, Auditor, Progress
from verifier.errors import TransportError

__all__ = ["AuditConfig", "AuditResult", "Auditor", "Progress", "TransportError", "audit"]
