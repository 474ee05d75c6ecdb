"""The one table from domain errors to gRPC status codes, and the adapter decorator.

Every refused request ends here: :func:`translate_errors` wraps each servicer
method, logs the reason with the peer and the method, and aborts the RPC with
the status code of the first matching row of :data:`STATUS_TABLE` and the
error's own message.  Anything not in the table is a bug of the Prover: it is
logged with its traceback and reported as ``INTERNAL`` without details.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, Final, NoReturn, TypeVar

import grpc

from protocol.errors import InvalidArgument, PacdaError
from prover.service.errors import PermissionDenied, ServerBusy, SessionStateError, UnknownSession

__all__ = ["INTERNAL_MESSAGE", "STATUS_TABLE", "status_for", "translate_errors"]

log = logging.getLogger("prover.service")

#: Domain error -> gRPC status code; the first row whose class matches wins.
STATUS_TABLE: Final[tuple[tuple[type[BaseException], grpc.StatusCode], ...]] = (
    (UnknownSession, grpc.StatusCode.NOT_FOUND),  # SessionExpired too
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (SessionStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (ServerBusy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PacdaError, grpc.StatusCode.INTERNAL),  # ProverError and the rest: our failure
)

#: Message sent for errors outside the table (details stay in the Prover's log).
INTERNAL_MESSAGE: Final = "internal error of the Prover (see its log)"

F = TypeVar("F", bound=Callable[..., Any])


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """``(code, message)`` for a domain error, or None if ``exc`` is not in the table."""
    for cls, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return code, str(exc)
    return None


def _abort(context: grpc.ServicerContext, method: str, exc: Exception) -> NoReturn:
    mapped = status_for(exc)
    peer = context.peer()
    if mapped is None:
        log.error("%s from %s failed: %s", method, peer, INTERNAL_MESSAGE, exc_info=exc)
        code, message = grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
    else:
        code, message = mapped
        log.warning("%s from %s refused with %s: %s", method, peer, code.name, message)
    context.abort(code, message)  # raises
    raise RuntimeError("grpc.ServicerContext.abort returned")  # pragma: no cover


def translate_errors(method: F) -> F:
    """Wrap a servicer method (unary or server-streaming) with the status table."""
    name = method.__name__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except Exception as exc:
                _abort(context, name, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort(context, name, exc)

    return unary  # type: ignore[return-value]
