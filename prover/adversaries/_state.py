"""Per-session memory of a cheating policy (thread-safe)."""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from prover.engine import train
from prover.tasks.base import Task

__all__ = ["EMPTY_DIGEST", "LieAllotment", "SessionWeights", "Trained", "train_digests"]

#: Weight digest of a model without parameters (P = 0): SHA-256 of b"".
EMPTY_DIGEST = hashlib.sha256(b"").digest()


@dataclass(frozen=True)
class Trained:
    """Outputs, weight digests and weights (``None`` if P = 0) of some trained points."""

    outputs: NDArray[np.float64]
    digests: NDArray[np.uint8]
    weights: NDArray[np.float64] | None


def train_digests(task: Task, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> Trained:
    """Train ``len(x)`` models and digest their weights as the service does (float64 LE)."""
    batch = train(task, x, seeds)
    n = len(x)
    digests = np.empty((n, 32), dtype=np.uint8)
    weights = batch.weights
    for i in range(n):
        raw = (
            EMPTY_DIGEST
            if weights is None or weights.shape[1] == 0
            else hashlib.sha256(np.ascontiguousarray(weights[i], dtype="<f8").tobytes()).digest()
        )
        digests[i] = np.frombuffer(raw, dtype=np.uint8)
    return Trained(np.asarray(batch.outputs, dtype=np.float64), digests, weights)


@dataclass
class SessionWeights:
    """The weights a policy committed to, by session and point (for its openings)."""

    _rows: dict[tuple[str, int], bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(
        self, session_id: str, indices: NDArray[np.int64], weights: NDArray[np.float64] | None
    ) -> None:
        """Remember the weights of ``indices`` (nothing to remember if P = 0)."""
        if weights is None:
            return
        with self._lock:
            for i, w in zip(indices.tolist(), weights, strict=True):
                self._rows[(session_id, int(i))] = np.ascontiguousarray(w, dtype="<f8").tobytes()

    def get(self, session_id: str, index: int) -> bytes | None:
        """The remembered weight bytes, or None."""
        with self._lock:
            return self._rows.get((session_id, index))


class LieAllotment:
    """A liar's ``total`` lies per session, spread over the result chunks (thread-safe).

    Each chunk gets the cumulative share of the total its units (pairs or
    points) bring, rounded up, never more than the total over a session.
    """

    def __init__(self, total: int) -> None:
        self.total = int(total)
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int]] = {}  # session -> (units seen, lies allotted)

    def allot(self, session_id: str, units: int, of: int) -> int:
        """Lies for a chunk of ``units`` out of the session's ``of``."""
        with self._lock:
            seen, allotted = self._seen.get(session_id, (0, 0))
            seen += units
            share = min(self.total, math.ceil(self.total * seen / max(of, 1)))
            n_lies = max(share - allotted, 0)
            self._seen[session_id] = (seen, allotted + n_lies)
        return n_lies
