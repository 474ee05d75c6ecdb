"""The one error hierarchy of pacda.

Every module raises one of these; callers can catch :class:`PacdaError` for
"anything pacda refused" or a precise subclass.  Argument errors also subclass
:class:`ValueError` so generic callers keep working.
"""

from __future__ import annotations

__all__ = [
    "CommitmentError",
    "InvalidArgument",
    "PacdaError",
    "ProverError",
    "SignatureError",
    "SpotCheckMismatch",
    "StatisticalRejection",
    "VerificationError",
]


class PacdaError(Exception):
    """Base class of every error pacda raises on purpose."""


class InvalidArgument(PacdaError, ValueError):
    """An argument, file or message field is malformed or impossible."""


class VerificationError(PacdaError):
    """A check of the Verifier failed; the audit must abort."""


class CommitmentError(VerificationError):
    """A commitment (digest, Merkle root, inclusion proof) does not match."""


class SignatureError(VerificationError):
    """A signature does not verify under the expected public key."""


class StatisticalRejection(VerificationError):
    """The estimated sub-optimality of the attributions exceeds the threshold."""


class SpotCheckMismatch(VerificationError):
    """A spot-checked result disagrees with the Verifier's own retraining."""


class ProverError(PacdaError):
    """The Prover side failed to do what it was asked (training, storage, serving)."""
