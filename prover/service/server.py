"""Start a gRPC server for the Prover: limits, keep-alive, TLS, health and reflection.

The server runs the ``pacda.v1.Prover`` service (:mod:`prover.service.servicer`),
the standard health service (``grpc.health.v1.Health``) and server reflection
(so ``grpcurl`` can list and call the service).  Bind port 0 to get any free
port; the bound port is on the returned :class:`RunningServer`.  The port is
bound exclusively (``grpc.so_reuseport`` = 0): a second server on a port in use
fails to start instead of silently sharing its connections.

Health (``""`` and ``"pacda.v1.Prover"``) is ``SERVING`` while the Prover can
take a new audit, and ``NOT_SERVING`` while it cannot: the session table is
full, every stream slot is taken (:mod:`prover.service.streams`), or it is
shutting down.  A housekeeping thread frees expired sessions and cancels
streams past their write deadline every ``housekeeping_s`` seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from protocol.errors import InvalidArgument
from prover.service.handlers import ProverHandlers
from prover.service.servicer import register
from prover.service.streams import StreamGate

__all__ = ["RunningServer", "ServerOptions", "TlsFiles", "start_server"]

log = logging.getLogger("prover.service")


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """PEM files of the server's TLS certificate (chain) and private key."""

    cert: Path
    key: Path

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials from the two files.

        Raises:
            InvalidArgument: a file cannot be read.
        """
        try:
            cert = self.cert.read_bytes()
            key = self.key.read_bytes()
        except OSError as err:
            raise InvalidArgument(f"cannot read TLS file {err.filename}: {err.strerror}") from err
        return grpc.ssl_server_credentials([(key, cert)])


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """Transport settings of the Prover's server.

    Attributes:
        host: interface to bind (``"[::]"`` for all, ``"127.0.0.1"`` for local).
        port: TCP port; 0 picks a free one.
        max_workers: threads serving RPCs at once (>= 2).
        max_streams: streaming calls (Commit, Challenge, Open) at once; default
            ``max_workers - 2``, so that two threads always serve health checks,
            DescribeTask and Close.  Must be below ``max_workers``.
        max_streams_per_client: of which one client (peer host) may run; default
            half of the stream slots (at least 1).
        write_timeout_s: a stream whose client has not taken a message for this
            long is cancelled.
        housekeeping_s: how often expired sessions are freed and stalled streams
            cancelled.
        max_receive_bytes: largest request message accepted (larger ones are
            refused by gRPC with ``RESOURCE_EXHAUSTED``).
        max_send_bytes: largest answer message sent.
        keepalive_time_s: ping an idle connection this often.
        keepalive_timeout_s: drop the connection if a ping gets no answer in this time.
        min_client_ping_interval_s: refuse client pings more frequent than this.
        tls: certificate and key, or None for plaintext.
    """

    host: str = "[::]"
    port: int = 0
    max_workers: int = 8
    max_streams: int | None = None
    max_streams_per_client: int | None = None
    write_timeout_s: float = 60.0
    housekeeping_s: float = 1.0
    max_receive_bytes: int = 4 << 20
    max_send_bytes: int = 64 << 20
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    min_client_ping_interval_s: float = 10.0
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidArgument(f"port must lie in [0, 65535], got {self.port}")
        for name in ("max_workers", "max_receive_bytes", "max_send_bytes"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_workers < 2:
            raise InvalidArgument(f"max_workers must be >= 2, got {self.max_workers}")
        if self.max_streams is not None and not 1 <= self.max_streams < self.max_workers:
            raise InvalidArgument(
                f"max_streams must lie in [1, max_workers - 1 = {self.max_workers - 1}], "
                f"got {self.max_streams}"
            )
        if self.max_streams_per_client is not None and self.max_streams_per_client < 1:
            raise InvalidArgument(
                f"max_streams_per_client must be >= 1, got {self.max_streams_per_client}"
            )
        for name in (
            "keepalive_time_s",
            "keepalive_timeout_s",
            "min_client_ping_interval_s",
            "write_timeout_s",
            "housekeeping_s",
        ):
            if not getattr(self, name) > 0:
                raise InvalidArgument(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def stream_slots(self) -> int:
        """``max_streams``, or its default ``max(1, max_workers - 2)``."""
        if self.max_streams is not None:
            return self.max_streams
        return max(1, self.max_workers - 2)

    @property
    def stream_slots_per_client(self) -> int:
        """``max_streams_per_client``, or its default ``max(1, stream_slots // 2)``."""
        if self.max_streams_per_client is not None:
            return self.max_streams_per_client
        return max(1, self.stream_slots // 2)

    def channel_options(self) -> list[tuple[str, int]]:
        """gRPC core options: exclusive port, message limits and keep-alive."""
        return [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self.max_receive_bytes),
            ("grpc.max_send_message_length", self.max_send_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            (
                "grpc.http2.min_ping_interval_without_data_ms",
                int(self.min_client_ping_interval_s * 1000),
            ),
        ]


@dataclass(frozen=True)
class RunningServer:
    """A started server.

    Attributes:
        server: the gRPC server.
        host: the bound host, as given.
        port: the bound port.
        health: the health servicer (set statuses on it, e.g. at shutdown).
        handlers: the Prover's handlers.
        gate: the stream slots.
    """

    server: grpc.Server
    host: str
    port: int
    health: health.HealthServicer
    handlers: ProverHandlers
    gate: StreamGate
    _stopping: threading.Event
    _housekeeper: threading.Thread

    @property
    def address(self) -> str:
        """``HOST:PORT`` for humans and for clients of a concrete host."""
        return f"{self.host}:{self.port}"

    def stop(self, grace_s: float | None = 5.0) -> None:
        """Report NOT_SERVING, stop accepting RPCs, wait for running ones, free all sessions."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self._housekeeper.join()
        self.handlers.sessions.clear()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the server stops (True) or ``timeout_s`` passes (False)."""
        return bool(self.server.wait_for_termination(timeout_s))


def start_server(handlers: ProverHandlers, options: ServerOptions | None = None) -> RunningServer:
    """Build, bind and start the server.

    Raises:
        InvalidArgument: the address cannot be bound or a TLS file is unreadable.
    """
    opts = options if options is not None else ServerOptions()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=opts.max_workers, thread_name_prefix="pacda-rpc"),
        options=opts.channel_options(),
    )
    gate = StreamGate(
        max_streams=opts.stream_slots,
        max_streams_per_client=opts.stream_slots_per_client,
        write_timeout_s=opts.write_timeout_s,
    )
    service = register(server, handlers, gate)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (service, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    target = f"{opts.host}:{opts.port}"
    try:
        if opts.tls is None:
            port = server.add_insecure_port(target)
        else:
            port = server.add_secure_port(target, opts.tls.credentials())
    except RuntimeError as err:  # gRPC says only "Failed to bind to address ..."
        raise InvalidArgument(f"cannot bind {target}: {_IN_USE}") from err
    if port == 0:
        raise InvalidArgument(f"cannot bind {target}: {_IN_USE}")
    server.start()
    stopping = threading.Event()
    health_lock = threading.Lock()
    serving: list[bool | None] = [None]

    def update_health() -> None:
        ok = not (handlers.sessions.full or gate.full or stopping.is_set())
        with health_lock:
            if serving[0] is ok or stopping.is_set():
                return
            serving[0] = ok
            status = health_pb2.HealthCheckResponse.SERVING if ok else _NOT_SERVING
            for name in ("", service):
                health_servicer.set(name, status)
        if not ok:
            log.warning(
                "NOT_SERVING: %d sessions (cap %d), %d of %d stream slots taken",
                len(handlers.sessions),
                handlers.limits.max_sessions,
                len(gate),
                gate.max_streams,
            )

    def housekeeping() -> None:
        freed = handlers.sessions.n_freed
        while not stopping.wait(opts.housekeeping_s):
            try:
                gate.reap()
                handlers.sessions.expire()
                update_health()
                if handlers.sessions.n_freed != freed:  # give freed session memory back
                    freed = handlers.sessions.n_freed
                    _trim_heap()
            except Exception:  # pragma: no cover - a bug must not stop housekeeping
                log.exception("housekeeping failed")

    handlers.sessions.add_listener(update_health)
    gate.add_listener(update_health)
    update_health()
    housekeeper = threading.Thread(target=housekeeping, name="pacda-housekeeping", daemon=True)
    housekeeper.start()
    log.info("serving %s on %s (%s)", service, target, "TLS" if opts.tls else "plaintext")
    return RunningServer(
        server, opts.host, port, health_servicer, handlers, gate, stopping, housekeeper
    )


_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] | None = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def _trim_heap() -> None:
    """Return free heap memory to the OS (glibc ``malloc_trim``; no-op elsewhere).

    Freed sessions leave their numpy buffers and protobuf messages in glibc's
    arenas, which keeps the process's RSS high long after they are gone.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


_IN_USE = "the address is in use (another server?) or not available on this machine"
