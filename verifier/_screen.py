"""The screening of a challenge's result stream as it arrives (:class:`Screen`).

Private to :mod:`verifier.core`, which re-exports :class:`Screen`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.plan import Plan
from protocol.prg import ExpandedPairs
from protocol.screening import SCREEN_DELTA_SHARE, Screening
from protocol.stats import AuditData, statistic_of
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
    stops the stream and aborts).  The looks and the bounds are the plan's
    statistic's (:meth:`protocol.stats.Statistic.screen_looks`); none when
    ``config.early_rejection`` is off or the statistic screens nothing.

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
        self.statistic = statistic_of(plan)
        self.looks = list(self.statistic.screen_looks(plan)) if config.early_rejection else []
        self.looked: list[int] = []
        # one failure probability per output and look, split over all the plan's looks
        looks, z = max(len(self.looks), 1), plan.request.n_outputs
        self.delta = SCREEN_DELTA_SHARE * plan.request.delta / (looks * z) if self.looks else 0.0

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
            a = pair_arrays(self.commitment, prefix, outputs[: 2 * m])
            data = AuditData(
                first_outputs=a["first_outputs"],
                second_outputs=a["second_outputs"],
                first_predictions=a["first_predictions"],
                second_predictions=a["second_predictions"],
                first_points=prefix.first,
                second_points=prefix.second,
            )
            bounds = self.statistic.screening_bounds(self.plan, data, self.delta)
            z = int(np.argmax(bounds))
            if bounds[z] >= self.plan.request.epsilon:
                self.looks.clear()
                return Screening(output=z, pairs=m, lower_bound=float(bounds[z]), delta=self.delta)
        return None
