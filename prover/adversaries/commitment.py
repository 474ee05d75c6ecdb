"""Commitment manipulations: what is sent after the commitment contradicts it.

* ``rewrite-after-root`` commits forged results (``g_a(x)``: the scores look
  optimal on every point) and, after the root was sent, opens the honestly
  trained outputs and weights, which the Verifier's retraining would confirm.
  Caught by the opening check "outputs differ from the streamed ones" — the
  leaf the proof must reach is rebuilt from the *streamed* values.
* ``bad-proof`` sends inclusion proofs that do not lead to the signed root.
* ``replay`` records the first session it completes and answers every later
  challenge with that session's results, Merkle root and root signature.  The
  signed root statement binds the session id and the fresh challenge seed, so
  the replayed signature does not verify.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from protocol.messages import Opening, ResultRoot
from protocol.scores import Scores
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy

__all__ = ["BadProofPolicy", "ReplayPolicy", "RewriteAfterRootPolicy"]


class RewriteAfterRootPolicy(ResultPolicy):
    """``rewrite-after-root``: commit ``clip(g_a(x))``, open the honest outputs.

    Args:
        scores: the committed scores (a).
        n_items: N.
        bound: the task's b.
    """

    def __init__(self, *, scores: Scores, n_items: int, bound: float) -> None:
        self.scores = scores
        self.n_items = n_items
        self.bound = bound
        self._honest: dict[tuple[str, int], NDArray[np.float64]] = {}
        self._lock = threading.Lock()

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        with self._lock:
            for i, row in zip(indices.tolist(), outputs, strict=True):
                self._honest[(session_id, int(i))] = np.array(row, copy=True)
        x, _ = plan.points(indices, self.n_items)
        return np.clip(self.scores.predict(x), -self.bound, self.bound), weight_digests

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        with self._lock:
            honest = self._honest.get((session_id, opening.point_index))
        return opening if honest is None else replace(opening, outputs=honest)


class BadProofPolicy(ResultPolicy):
    """``bad-proof``: flip one bit of the first proof hash (or add one where the proof is empty)."""

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        if not opening.proof:
            return replace(opening, proof=(bytes(32),))
        first = bytearray(opening.proof[0])
        first[0] ^= 0x01
        return replace(opening, proof=(bytes(first), *opening.proof[1:]))


@dataclass
class _Recording:
    outputs: NDArray[np.float64]
    digests: NDArray[np.uint8]
    root: ResultRoot | None = None


class ReplayPolicy(ResultPolicy):
    """``replay``: the first completed session is recorded and replayed to every later one.

    The first session is answered honestly.  A later session gets the
    recorded outputs and digests for every point index the recording covers
    (so the Merkle root equals the recorded one when the plans have the same
    size) and the recorded root with its signature.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, _Recording] = {}
        self._replayed: _Recording | None = None
        self._lock = threading.Lock()

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        with self._lock:
            rec = self._sessions.get(session_id)
            if rec is None:
                n, z = plan.n_points, outputs.shape[1]
                rec = _Recording(np.full((n, z), np.nan), np.zeros((n, 32), dtype=np.uint8))
                self._sessions[session_id] = rec
            rec.outputs[indices] = outputs
            rec.digests[indices] = weight_digests
            old = self._replayed
        if old is None:
            return outputs, weight_digests
        out, dig = np.array(outputs, copy=True), np.array(weight_digests, copy=True)
        covered = indices < len(old.outputs)
        out[covered] = old.outputs[indices[covered]]
        dig[covered] = old.digests[indices[covered]]
        return out, dig

    def root(self, session_id: str, plan: ChallengePlan, root: ResultRoot) -> ResultRoot:
        with self._lock:
            if self._replayed is None:
                rec = self._sessions[session_id]
                rec.root = root
                self._replayed = rec
                return root
            return self._replayed.root if self._replayed.root is not None else root
