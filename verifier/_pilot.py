"""The pilot of an audit (:class:`Pilot`), the Verifier's own runs before the challenge.

Private to :mod:`verifier.core` (which builds it, :func:`verifier.core.pilot_from_runs`,
and re-exports it); its own module so that the pieces :mod:`verifier.core` builds
on (:mod:`verifier._pairs`, :mod:`verifier._stages`) can take one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from verifier.planning import PilotStats

__all__ = ["Pilot"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Pilot:
    """The pilot of an audit: statistics, the verified residuals and the planned variance."""

    stats: PilotStats
    residuals: FloatArray
    outputs: FloatArray
    variance: float
