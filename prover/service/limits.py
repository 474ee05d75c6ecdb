"""Server-side caps of the Prover service (frozen, validated, keyword-only)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from protocol.errors import InvalidArgument

__all__ = ["ServiceLimits"]


@dataclass(frozen=True, kw_only=True)
class ServiceLimits:
    """How much one request may ask of the Prover, and how answers are chunked.

    Attributes:
        max_points: most challenge points (2 x pairs) per challenge.
        max_open: most point indices per Open request.
        max_sessions: most sessions kept at once.
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
    default_chunk_points: int = 1024
    max_chunk_points: int = 16384
    max_batch_bytes: int = 1 << 20
    values_per_chunk: int = 65536
    train_block: int = 2048
    train_chunk: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{f.name} must be an integer >= 1, got {value!r}")

    def batch_points(self, requested: int, n_outputs: int) -> int:
        """Points per result batch for a request's ``chunk_points`` (0 = default)."""
        wanted = requested if requested > 0 else self.default_chunk_points
        by_size = max(1, self.max_batch_bytes // (8 * n_outputs + 34))
        return max(1, min(wanted, self.max_chunk_points, by_size))
