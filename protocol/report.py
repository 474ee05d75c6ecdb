"""Signed audit reports (docs/design.md §2, "Audit report").

A report records what was audited (task and attribution digests), how (mode,
planning, the plan with its epsilon budget), what came out (per-output
estimates, intervals, the certified upper bound on ``err``), the decision and
the Prover's commitments (Merkle root, challenge seed, Prover key and
signatures), plus costs and the basis of the soundness claim.

The report *file* is the RFC 8785 canonical JSON (no trailing newline) of::

    {"report": <AuditReport.to_dict()>,
     "signature": {"algorithm": "ed25519",
                   "public_key": <hex of the Verifier's raw 32-byte key>,
                   "value": <hex of Ed25519(canonical_json(report))>}}

Ed25519 is pure Ed25519 of RFC 8032 §5.1.  :func:`verify_report` requires the
file to be *byte for byte* the canonical encoding of what it parses to, so
any change to the file — even whitespace or an escape that decodes to the
same text — is rejected, and needs only :mod:`protocol` (no torch).
Byte strings inside the report are lowercase hex; absent ones are ``""``.

The implementation is split by job: :mod:`protocol.report_fields` (field
checks), :mod:`protocol.report_types` (the report objects and their
construction from a plan and a decision), :mod:`protocol.report_file`
(signing, parsing and verification of report files); this module is the one
import point.
"""

from __future__ import annotations

from protocol.report_fields import utc_timestamp
from protocol.report_file import (
    load_report_unverified,
    report_public_key,
    sign_report,
    verify_report,
)
from protocol.report_types import (
    DECISIONS,
    MODES,
    PLANNINGS,
    REPORT_VERSION,
    SIGNATURE_ALGORITHM,
    SOUNDNESS_PRACTICAL,
    SOUNDNESS_RIGOROUS,
    AuditReport,
    OutputResult,
    outputs_from_decision,
    plan_summary,
)

__all__ = [
    "DECISIONS",
    "MODES",
    "PLANNINGS",
    "REPORT_VERSION",
    "SIGNATURE_ALGORITHM",
    "SOUNDNESS_PRACTICAL",
    "SOUNDNESS_RIGOROUS",
    "AuditReport",
    "OutputResult",
    "load_report_unverified",
    "outputs_from_decision",
    "plan_summary",
    "report_public_key",
    "sign_report",
    "utc_timestamp",
    "verify_report",
]
