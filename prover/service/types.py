"""Domain messages of the Prover service: re-exports of :mod:`protocol.messages`.

The Prover and the Verifier share one set of frozen messages
(:mod:`protocol.messages`) and one serde (:mod:`protocol.messages_proto`);
this module keeps the old import path working.  New code imports
:mod:`protocol.messages`.
"""

from __future__ import annotations

from protocol.messages import (
    AttributionCommitment,
    AttributionHeader,
    AttributionValues,
    ChallengeRequest,
    CommitItem,
    Opening,
    ResultBatch,
    ResultItem,
    ResultRoot,
    TaskDescription,
)

__all__ = [
    "AttributionCommitment",
    "AttributionHeader",
    "AttributionValues",
    "ChallengeRequest",
    "CommitItem",
    "Opening",
    "ResultBatch",
    "ResultItem",
    "ResultRoot",
    "TaskDescription",
]
