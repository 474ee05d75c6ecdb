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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.api import audit
    from verifier.config import AuditConfig
    from verifier.driver import Auditor, AuditResult, Progress
    from verifier.errors import TransportError

__all__ = ["AuditConfig", "AuditResult", "Auditor", "Progress", "TransportError", "audit"]

# Resolved on first use (PEP 562) so that ``pacda-verifier check-report`` and
# ``show`` (which need only ``protocol``) never import grpc or torch.
_EXPORTS = {
    "audit": "verifier.api",
    "AuditConfig": "verifier.config",
    "AuditResult": "verifier.driver",
    "Auditor": "verifier.driver",
    "Progress": "verifier.driver",
    "TransportError": "verifier.errors",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
