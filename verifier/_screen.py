"""The screening of a challenge's result stream as it arrives (:class:`Screen`).

Private to :mod:`verifier.core`, which re-exports :class:`Screen`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.plan import Plan
from protocol.prg import ExpandedPairs
from protocol.screening import Screening, look_delta, screen_looks, screening_bounds
from verifier._pairs import PredictedPairs, pair_arrays, plain_pairs
from verifier.commitment import Commitment
from verifier.config import AuditConfig

__all__ = ["Screen"]

FloatArray = NDArray[np.float64]


class Screen:
    """The screening of one challenge's result stream (:mod:`protocol.screening`).

    :meth:`observe` is called as results arrive; at each look whose prefix has
    arrived it bounds every output's err from below and returns the
    :class:`~protocol.screening.Screening` that rejects, if any (the caller
    stops the stream and aborts).  No looks when ``config.early_rejection`` is
    off or the plan has no clip levels.

    Each look predicts its own prefix of the pairs, once (slicing the whole
    challenge's predictions would not give the same bits, see
    :mod:`verifier._pairs`).
    """

    def __init__(
        self,
        config: AuditConfig,
        plan: Plan,
        commitment: Commitment,
        pairs: ExpandedPairs | PredictedPairs,
    ) -> None:
        self.plan, self.commitment, self.pairs = plan, commitment, plain_pairs(pairs)
        self.looks = list(screen_looks(plan)) if config.early_rejection else []
        self.looked: list[int] = []
        # one failure probability per output and look, split over all the plan's looks
        self.delta = look_delta(plan) if self.looks else 0.0

    def observe(self, outputs: FloatArray, points_received: int) -> Screening | None:
        """Screen every look whose prefix lies within the first ``points_received`` rows."""
        while self.looks and 2 * self.looks[0] <= points_received:
            m = self.looks.pop(0)
            self.looked.append(m)
            prefix = ExpandedPairs(
                self.pairs.first[:m],
                self.pairs.second[:m],
                self.pairs.first_seeds[:m],
                self.pairs.second_seeds[:m],
            )
            bounds = screening_bounds(
                self.plan,
                **pair_arrays(self.commitment, prefix, outputs[: 2 * m]),
                delta=self.delta,
            )
            z = int(np.argmax(bounds))
            if bounds[z] >= self.plan.request.epsilon:
                self.looks.clear()
                return Screening(output=z, pairs=m, lower_bound=float(bounds[z]), delta=self.delta)
        return None
