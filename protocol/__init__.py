"""pacda protocol core: pure, torch-free statistics, commitments and reports.

The public face, importable from ``protocol`` itself without torch or grpc, is
what a report checker and a Verifier embedded in another program need:

* reports: :class:`AuditReport`, :func:`verify_report`,
  :func:`load_report_unverified`, keys (:func:`load_public_key`, :func:`key_id`);
* planning and deciding: :class:`PlanRequest`, :class:`Plan`, :func:`make_plan`,
  :func:`decide` (with :class:`AuditData`), :func:`decide_committed`,
  :func:`decide_paper`, :class:`Decision`;
* the statistics: :class:`Statistic`, :func:`register`, :func:`statistic_names`;
* the challenge: :func:`expand_pairs`, :func:`expand_points`;
* the errors (:class:`PacdaError` and its subclasses).

The public modules are those names' homes (``protocol.report``,
``protocol.signing``, ``protocol.plan``, ``protocol.decision``,
``protocol.stats``, ``protocol.prg``, ``protocol.errors``) plus the file formats
(``protocol.scores``, ``protocol.taskspec``, ``protocol.digests``,
``protocol.merkle``, ``protocol.canonical_json``). Every other module of the
package is internal to pacda and may change without notice.
"""

from protocol.decision import Decision, OutputDecision, decide, decide_committed, decide_paper
from protocol.errors import (
    CommitmentError,
    InvalidArgument,
    PacdaError,
    ProverError,
    SignatureError,
    SpotCheckMismatch,
    StatisticalRejection,
    VerificationError,
)
from protocol.plan import Plan, PlanRequest, make_plan
from protocol.prg import PRG_VERSION, expand_pairs, expand_points
from protocol.report import (
    REPORT_VERSION,
    AuditReport,
    OutputResult,
    load_report_unverified,
    verify_report,
)
from protocol.signing import key_id, load_public_key
from protocol.stats import AuditData, Statistic, register
from protocol.stats import names as statistic_names

__all__ = [
    "PRG_VERSION",
    "REPORT_VERSION",
    "AuditData",
    "AuditReport",
    "CommitmentError",
    "Decision",
    "InvalidArgument",
    "OutputDecision",
    "OutputResult",
    "PacdaError",
    "Plan",
    "PlanRequest",
    "ProverError",
    "SignatureError",
    "SpotCheckMismatch",
    "Statistic",
    "StatisticalRejection",
    "VerificationError",
    "decide",
    "decide_committed",
    "decide_paper",
    "expand_pairs",
    "expand_points",
    "key_id",
    "load_public_key",
    "load_report_unverified",
    "make_plan",
    "register",
    "statistic_names",
    "verify_report",
]
