"""Server-side caps of the Prover service (frozen, validated, keyword-only)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from protocol.errors import InvalidArgument

__all__ = ["ServiceLimits"]

#: Fields that are durations in seconds (floats > 0); every other field is an integer >= 1.
_SECONDS = ("session_idle_s", "session_lifetime_s")


@dataclass(frozen=True, kw_only=True)
class ServiceLimits:
    """How much one request, one client and all clients together may ask of the Prover.

    Attributes:
        max_points: most challenge points (2 x pairs) per challenge.
        max_open: most point indices per Open request.
        max_sessions: most sessions kept at once, all clients together.
        max_sessions_per_client: most sessions kept at once for one client
            (one peer host: the peer address without its port).
        session_idle_s: a session with no call in progress is freed this many
            seconds after its last call ended (the Verifier's pilot runs between
            Commit and Challenge, its spot-check retraining after Open).
        session_lifetime_s: every session is freed this many seconds after its
            Commit, whatever it is doing (a running stream is aborted).
        max_memory_bytes: most bytes of per-point session state held in memory,
            all sessions together (:meth:`point_bytes` per challenge point); a
            challenge that would exceed it is refused before anything is allocated.
        max_client_memory_bytes: the same budget for the sessions of one client.
        default_chunk_points: points per result batch when the request says 0.
        max_chunk_points: cap on a request's ``chunk_points``.
        max_batch_bytes: result batches are also cut so that ``outputs`` and
            digests stay below this many bytes.
        values_per_chunk: attribution values (doubles) per Commit message.
        train_block: points trained per step of a Challenge stream (results are
            streamed as blocks finish; the executor splits a block in chunks).
        train_chunk: models per executor chunk (and store segment).
    """

    max_points: int = 4_000_000
    max_open: int = 4096
    max_sessions: int = 1024
    max_sessions_per_client: int = 64
    session_idle_s: float = 600.0
    session_lifetime_s: float = 14_400.0
    max_memory_bytes: int = 1 << 30
    max_client_memory_bytes: int = 1 << 29
    default_chunk_points: int = 1024
    max_chunk_points: int = 16384
    max_batch_bytes: int = 1 << 20
    values_per_chunk: int = 65536
    train_block: int = 2048
    train_chunk: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECONDS:
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not (number and 0 < value < float("inf")):
                    raise InvalidArgument(
                        f"{f.name} must be a finite number of seconds > 0, got {value!r}"
                    )
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{f.name} must be an integer >= 1, got {value!r}")

    def batch_points(self, requested: int, n_outputs: int) -> int:
        """Points per result batch for a request's ``chunk_points`` (0 = default)."""
        wanted = requested if requested > 0 else self.default_chunk_points
        by_size = max(1, self.max_batch_bytes // (8 * n_outputs + 34))
        return max(1, min(wanted, self.max_chunk_points, by_size))

    @staticmethod
    def point_bytes(n_outputs: int) -> int:
        """Bytes of memory one challenge point of a session costs, at most.

        Per point a session keeps its committed outputs (``8 Z``), weight digest
        (32), a done flag (1) and its Merkle leaf hash (32), and, once the root
        is built, the upper levels of the tree (< 32 more).  Weights never stay
        in memory: they are in the result store or in the session's spill file.
        """
        return 8 * n_outputs + 32 + 1 + 32 + 32
