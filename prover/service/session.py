"""Sessions: one Commit and what follows it, kept in memory by a thread-safe registry.

A session goes through three states, each reached once:

1. *committed* — the Commit stream sent its signed commitment;
2. *challenged* — a Challenge fixed the plan; results are filled in point by
   point as they are trained (``done`` marks which);
3. *rooted* — every result is known and the signed Merkle root was built; from
   then on the results are frozen and Open is allowed.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from protocol.merkle import MerkleTree
from prover.service.errors import ServerBusy, SessionStateError, UnknownSession, show_id
from prover.service.plan import ChallengePlan
from prover.service.types import ResultRoot

__all__ = ["Results", "Session", "SessionRegistry"]


@dataclass
class Results:
    """The results of one challenge, filled in as points are trained.

    Attributes:
        plan: the challenge.
        outputs: float64 ``(n_points, Z)``; NaN where not done.
        weight_digests: uint8 ``(n_points, 32)``.
        done: bool ``(n_points,)``.
        weights: float64 ``(n_points, P)`` when the weights are kept in memory (a
            Prover without a result store), else None.
        tree: the Merkle tree once every point is done.
        root: the signed root once built (the results are frozen from then on).
    """

    plan: ChallengePlan
    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]
    done: NDArray[np.bool_]
    weights: NDArray[np.float64] | None = None
    tree: MerkleTree | None = None
    root: ResultRoot | None = None

    @classmethod
    def empty(cls, plan: ChallengePlan, n_outputs: int) -> Results:
        """No point done yet."""
        n = plan.n_points
        return cls(
            plan=plan,
            outputs=np.full((n, n_outputs), np.nan),
            weight_digests=np.zeros((n, 32), dtype=np.uint8),
            done=np.zeros(n, dtype=bool),
        )


@dataclass
class Session:
    """One audit session (see the module docstring).

    Attributes:
        session_id: 32 hex characters from ``secrets.token_hex(16)``.
        mode: ``"committed"`` or ``"paper"``.
        attribution_digest: the committed digest.
        committed: the commitment was sent.
        results: set by the first Challenge.
        lock: guards ``committed`` and ``results``.
    """

    session_id: str
    mode: str
    attribution_digest: str
    committed: bool = False
    results: Results | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start_challenge(self, plan: ChallengePlan, n_outputs: int) -> Results:
        """Fix the plan on the first call; later calls must bring the same plan (a resume).

        Raises:
            SessionStateError: no completed commitment yet, or a replayed session
                (already challenged with a different seed or plan).
        """
        with self.lock:
            if not self.committed:
                raise SessionStateError(
                    f"session {show_id(self.session_id)} has no completed commitment"
                )
            if self.results is None:
                self.results = Results.empty(plan, n_outputs)
            elif self.results.plan != plan:
                raise SessionStateError(
                    f"replayed session: session {show_id(self.session_id)} was already "
                    "challenged with a different seed or plan"
                )
            return self.results

    def rooted(self) -> Results:
        """The frozen results.

        Raises:
            SessionStateError: the results' root has not been sent yet.
        """
        with self.lock:
            results = self.results
        if results is None or results.root is None:
            raise SessionStateError(
                f"session {show_id(self.session_id)} has no results root yet; "
                "Open is allowed only after the Challenge stream ended with its root"
            )
        return results


class SessionRegistry:
    """Thread-safe map from session id to :class:`Session`, with a size cap.

    Args:
        max_sessions: refuse to create more sessions than this.
    """

    def __init__(self, *, max_sessions: int) -> None:
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, *, mode: str, attribution_digest: str) -> Session:
        """A new session with a fresh random id.

        Raises:
            ServerBusy: ``max_sessions`` sessions exist.
        """
        with self._lock:
            if len(self._sessions) >= self._max:
                raise ServerBusy(f"too many sessions: this Prover keeps at most {self._max}")
            session_id = secrets.token_hex(16)
            while session_id in self._sessions:  # pragma: no cover - 128 random bits
                session_id = secrets.token_hex(16)
            session = Session(
                session_id=session_id, mode=mode, attribution_digest=attribution_digest
            )
            self._sessions[session_id] = session
            return session

    def get(self, session_id: str) -> Session:
        """The session ``session_id``.

        Raises:
            UnknownSession: no such session.
        """
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(f"unknown session {show_id(session_id)}")
        return session

    def discard(self, session_id: str) -> None:
        """Forget a session (no-op if absent)."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
