"""Streaming RPCs under a cap and a write deadline, so slow readers cannot starve the server.

The server's worker threads are shared by every RPC.  A server-streaming call
holds its thread while it computes *and* while gRPC waits for the client to
accept each message (HTTP/2 flow control), so a client that opens streams and
never reads them could hold every thread and starve health checks and every
other client.  Two rules prevent it:

* at most ``max_streams`` streaming calls (Commit, Challenge, Open) run at once,
  fewer than the worker threads, so some threads always remain for
  ``DescribeTask``, ``Close`` and health checks, and at most
  ``max_streams_per_client`` of one client (peer host), so one client cannot
  take every slot; another stream is refused at once with ``RESOURCE_EXHAUSTED``;
* a message the client has not accepted within ``write_timeout_s`` seconds gets
  its call cancelled (the client sees ``CANCELLED``); the thread and the slot
  are free again.  Time spent computing (training) does not count.

:class:`StreamGate` keeps the slots and the clock; :meth:`StreamGate.watch`
wraps a response iterator; :meth:`StreamGate.reap` (called periodically by the
server's housekeeping thread) cancels stalled writers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from protocol.errors import InvalidArgument
from prover.service.errors import ServerBusy
from prover.service.session import client_of

__all__ = ["StreamGate"]

log = logging.getLogger("prover.service")

T = TypeVar("T")


@dataclass
class _Stream:
    method: str
    peer: str
    client: str
    context: grpc.ServicerContext
    writing_since: float | None = None
    cancelled: bool = False


class StreamGate:
    """Slots for streaming calls and a per-message write deadline.

    Args:
        max_streams: streaming calls allowed at once.
        max_streams_per_client: of which one client (:func:`client_of` its peer) may run.
        write_timeout_s: longest wait for the client to accept one message.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        *,
        max_streams: int,
        max_streams_per_client: int | None = None,
        write_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_streams < 1:
            raise InvalidArgument(f"max_streams must be >= 1, got {max_streams}")
        if not write_timeout_s > 0:
            raise InvalidArgument(f"write_timeout_s must be > 0, got {write_timeout_s}")
        self.max_streams = max_streams
        self.max_streams_per_client = (
            max_streams if max_streams_per_client is None else max_streams_per_client
        )
        if self.max_streams_per_client < 1:
            raise InvalidArgument(
                f"max_streams_per_client must be >= 1, got {self.max_streams_per_client}"
            )
        self.write_timeout_s = write_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._listeners: list[Callable[[], None]] = []
        self.n_refused = 0
        self.n_write_timeouts = 0

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (no lock held) whenever a slot is taken or freed."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    @property
    def full(self) -> bool:
        """Every slot is taken."""
        with self._lock:
            return len(self._streams) >= self.max_streams

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def _enter(self, method: str, context: grpc.ServicerContext) -> _Stream:
        with self._lock:
            peer = context.peer()
            client = client_of(peer)
            if len(self._streams) >= self.max_streams:
                self.n_refused += 1
                raise ServerBusy(
                    f"too many streams: this Prover runs at most {self.max_streams} "
                    "Commit/Challenge/Open streams at once; try again later"
                )
            mine = sum(1 for s in self._streams.values() if s.client == client)
            if mine >= self.max_streams_per_client:
                self.n_refused += 1
                raise ServerBusy(
                    f"too many streams from {client[:60]}: this Prover runs at most "
                    f"{self.max_streams_per_client} Commit/Challenge/Open streams per client "
                    "at once; try again later"
                )
            stream = _Stream(method=method, peer=peer, client=client, context=context)
            self._streams[id(stream)] = stream
        self._changed()
        return stream

    def _leave(self, stream: _Stream) -> None:
        with self._lock:
            gone = self._streams.pop(id(stream), None)
        if gone is not None:
            self._changed()

    def watch(
        self, method: str, context: grpc.ServicerContext, items: Callable[[], Iterator[T]]
    ) -> Iterator[T]:
        """Run ``items()`` in a slot, timing how long each yielded message takes to be sent.

        The slot is taken before ``items()`` is called (a refusal is a
        :class:`ServerBusy` before any message) and freed when the call ends in
        any way: done, failed, cancelled by the client or by the write deadline.

        Raises:
            ServerBusy: every slot is taken.
        """
        stream = self._enter(method, context)
        context.add_callback(lambda: self._leave(stream))  # also on cancellation
        try:
            for item in items():
                with self._lock:
                    stream.writing_since = self._clock()
                yield item  # gRPC sends it and comes back only once the client took it
                with self._lock:
                    stream.writing_since = None
        finally:
            self._leave(stream)

    def reap(self) -> int:
        """Cancel every call whose client has not taken a message within the deadline."""
        now = self._clock()
        with self._lock:
            stalled = [
                s
                for s in self._streams.values()
                if not s.cancelled
                and s.writing_since is not None
                and now - s.writing_since > self.write_timeout_s
            ]
            for s in stalled:
                s.cancelled = True
            self.n_write_timeouts += len(stalled)
        for s in stalled:
            log.warning(
                "%s from %s cancelled: the client took no message for %g s (write timeout)",
                s.method,
                s.peer,
                self.write_timeout_s,
            )
            s.context.cancel()
        return len(stalled)
