"""The challenge's pairs against the committed scores: Prover outputs, predictions, residuals.

Private helpers of :mod:`verifier.core` (re-exported there), shared by the
screening of the result stream (:mod:`verifier._screen`) and the stages of
spot checks (:mod:`verifier._stages`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.prg import ExpandedPairs
from verifier._pilot import Pilot
from verifier.commitment import Commitment

__all__ = ["pair_arrays", "verified_residuals"]

FloatArray = NDArray[np.float64]


def verified_residuals(
    commitment: Commitment,
    pairs: ExpandedPairs,
    *,
    pilot: Pilot | None,
    spot_indices: NDArray[np.int64] | None,
    spot_outputs: FloatArray | None,
) -> FloatArray | None:
    """``f - g_a`` on every run the Verifier trained itself (pilot and spot checks)."""
    parts = [] if pilot is None else [pilot.residuals]
    if spot_indices is not None and spot_outputs is not None and len(spot_indices):
        idx = np.asarray(spot_indices, dtype=np.int64)
        pair = idx // 2
        x = np.where((idx % 2 == 1)[:, None], pairs.second[pair], pairs.first[pair])
        parts.append(np.asarray(spot_outputs - commitment.predict(x)))
    return np.concatenate(parts) if parts else None


def pair_arrays(
    commitment: Commitment, pairs: ExpandedPairs, outputs: FloatArray
) -> dict[str, FloatArray]:
    """The Prover's outputs and ``g_a`` at both points of every pair (challenge layout)."""
    return {
        "first_outputs": outputs[0::2],
        "second_outputs": outputs[1::2],
        "first_predictions": commitment.predict(pairs.first),
        "second_predictions": commitment.predict(pairs.second),
    }
