"""A Prover that walks away from unfavourable challenges and asks for another audit.

The abort-and-retry strategy: the Prover commits its scores, sees the challenge
points, computes the degree-1 U-statistic of its honest results on the first
chunk it trains (the Verifier's own estimate of err, restricted to those
points) and, when it exceeds ``threshold`` on any output, ends the session
instead of answering.  It hopes for a later challenge whose points happen to
make its scores look good.  The Verifier's record of challenges issued
(:mod:`verifier.challenge_log`) turns each walk-away into a recorded rejection
and makes audit ``j`` of the same scores spend ``delta / (j (j + 1))``, so the
tries together gain nothing.

When the statistic is favourable the Prover answers honestly, and the audit
decides as usual.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from protocol import ustatistic as us
from protocol.errors import InvalidArgument, ProverError
from protocol.scores import Scores
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy

__all__ = ["WalkAwayPolicy"]


class WalkAwayPolicy(ResultPolicy):
    """End the session when the first chunk's U-statistic exceeds ``threshold``.

    Attributes:
        walked_away: session ids this Prover walked away from, in order.
        answered: session ids it answered.
    """

    def __init__(self, threshold: float, *, scores: Scores, n_items: int, p: float) -> None:
        if not math.isfinite(threshold):
            raise InvalidArgument(f"threshold must be finite, got {threshold}")
        self.threshold = float(threshold)
        self.scores, self.n_items, self.p = scores, n_items, p
        self.walked_away: list[str] = []
        self.answered: list[str] = []

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        if session_id in self.answered or indices.size < 2:
            return outputs, weight_digests
        x, _ = plan.points(np.asarray(indices, dtype=np.int64), self.n_items)
        residuals = outputs - self.scores.predict(x)
        phi = us.features(x, self.p)
        u = us.ustatistic(residuals, us.row_sums(phi, residuals))
        if float(np.max(u)) > self.threshold:
            self.walked_away.append(session_id)
            raise ProverError(
                f"walking away: U = {float(np.max(u)):.4g} > {self.threshold:g} on this challenge"
            )
        self.answered.append(session_id)
        return outputs, weight_digests
