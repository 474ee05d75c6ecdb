"""Verifier-side error types (subclasses of the one hierarchy in :mod:`protocol.errors`)."""

from __future__ import annotations

from protocol.errors import ProverError

__all__ = ["CallFailed", "TransportError"]


class CallFailed(ProverError):
    """A call to the Prover ended with a non-OK gRPC status: refused, or the connection broke.

    Told apart from a malformed answer because, once the challenge is issued, a
    call that fails is the Prover ending the audit (recorded as a rejection:
    :mod:`verifier.challenge_log`).
    """


class TransportError(CallFailed):
    """The Prover could not be reached, or the connection broke and could not be resumed.

    Carries the gRPC status name (``"UNAVAILABLE"``, ``"DEADLINE_EXCEEDED"``...)
    as :attr:`code` so callers can tell a network failure from a refusal.
    """

    def __init__(self, message: str, *, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        self.code = code
