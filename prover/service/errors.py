"""Errors of the Prover service that have no counterpart in :mod:`protocol.errors`.

They extend the one hierarchy (:class:`protocol.errors.PacdaError`) and are
mapped to gRPC status codes in :mod:`prover.service.status`, next to the
:mod:`protocol.errors` classes the handlers raise.
"""

from __future__ import annotations

from protocol.errors import PacdaError

__all__ = [
    "PermissionDenied",
    "ServerBusy",
    "SessionExpired",
    "SessionStateError",
    "UnknownSession",
    "show_id",
]


class UnknownSession(PacdaError, LookupError):
    """The request names a session this Prover does not know (gRPC ``NOT_FOUND``)."""


class SessionStateError(PacdaError):
    """The request is well-formed but not allowed in the session's state.

    Examples: a challenge before the commitment completed, a second challenge
    with a different seed or plan (a replayed session), an opening before the
    results' root was sent.  gRPC ``FAILED_PRECONDITION``.
    """


class ServerBusy(PacdaError):
    """A server-wide resource cap is reached, e.g. too many open sessions.

    gRPC ``RESOURCE_EXHAUSTED``.
    """


def show_id(session_id: str, limit: int = 40) -> str:
    """A session id as it appears in messages: quoted, cut to ``limit`` characters."""
    if len(session_id) > limit:
        return repr(session_id[:limit]) + f"... ({len(session_id)} characters)"
    return repr(session_id)


class SessionExpired(UnknownSession):
    """The session was freed (expired or closed) (gRPC ``NOT_FOUND``)."""


class PermissionDenied(PacdaError):
    """The request does not carry the session's token (gRPC ``PERMISSION_DENIED``)."""
