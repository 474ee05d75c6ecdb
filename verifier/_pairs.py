"""The challenge's pairs against the committed scores: Prover outputs, predictions, residuals.

Private helpers of :mod:`verifier.core` (re-exported there), shared by the
screening of the result stream (:mod:`verifier._screen`) and the stages of
spot checks (:mod:`verifier._stages`).

``g_a`` at the challenge's points is computed once per audit: a
:class:`PredictedPairs` carries the pairs with the committed scores'
predictions at both points of every pair, each computed on first use and kept.
Predictions at other point sets (a screening look's prefix, the spot-checked
points) are computed for those points as they are: ``g_a`` of a subset is not
bit for bit the matching rows of ``g_a`` of the whole (the matrix product's
rounding depends on its shape), and these functions give the same numbers as
before they shared their predictions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.prg import ExpandedPairs
from verifier._pilot import Pilot
from verifier.commitment import Commitment

__all__ = [
    "PredictedPairs",
    "pair_arrays",
    "plain_pairs",
    "predicted_pairs",
    "verified_residuals",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PredictedPairs:
    """The challenge's pairs and ``g_a`` at both points of every pair, each computed once.

    Attributes:
        commitment: the committed scores.
        pairs: the challenge's pairs (challenge layout: point ``2i`` is
            ``pairs.first[i]``, ``2i + 1`` is ``pairs.second[i]``).

    :attr:`first_predictions` and :attr:`second_predictions` are computed on
    first use (an audit rejected while the results stream in never needs them)
    and kept for the rest of the audit.
    """

    commitment: Commitment
    pairs: ExpandedPairs

    @functools.cached_property
    def first_predictions(self) -> FloatArray:
        """``g_a(pairs.first)``, float64 ``(n_pairs, Z)`` (read-only: shared)."""
        return _read_only(self.commitment.predict(self.pairs.first))

    @functools.cached_property
    def second_predictions(self) -> FloatArray:
        """``g_a(pairs.second)``, float64 ``(n_pairs, Z)`` (read-only: shared)."""
        return _read_only(self.commitment.predict(self.pairs.second))


def _read_only(a: FloatArray) -> FloatArray:
    a.flags.writeable = False
    return a


def predicted_pairs(
    commitment: Commitment, pairs: ExpandedPairs | PredictedPairs
) -> PredictedPairs:
    """``pairs`` with their predictions under ``commitment`` (the same object if it has them)."""
    if isinstance(pairs, PredictedPairs) and pairs.commitment is commitment:
        return pairs
    return PredictedPairs(commitment, plain_pairs(pairs))


def plain_pairs(pairs: ExpandedPairs | PredictedPairs) -> ExpandedPairs:
    """The pairs themselves (without predictions)."""
    return pairs.pairs if isinstance(pairs, PredictedPairs) else pairs


def verified_residuals(
    commitment: Commitment,
    pairs: ExpandedPairs | PredictedPairs,
    *,
    pilot: Pilot | None,
    spot_indices: NDArray[np.int64] | None,
    spot_outputs: FloatArray | None,
) -> FloatArray | None:
    """``f - g_a`` on every run the Verifier trained itself (pilot and spot checks).

    ``g_a`` is computed at the spot-checked points (once per call: callers keep
    the result for a set of spot checks); the pilot's residuals are its own.
    """
    parts = [] if pilot is None else [pilot.residuals]
    if spot_indices is not None and spot_outputs is not None and len(spot_indices):
        plain = plain_pairs(pairs)
        idx = np.asarray(spot_indices, dtype=np.int64)
        pair = idx // 2
        x = np.where((idx % 2 == 1)[:, None], plain.second[pair], plain.first[pair])
        parts.append(np.asarray(spot_outputs - commitment.predict(x)))
    return np.concatenate(parts) if parts else None


def pair_arrays(
    commitment: Commitment, pairs: ExpandedPairs | PredictedPairs, outputs: FloatArray
) -> dict[str, FloatArray]:
    """The Prover's outputs and ``g_a`` at both points of every pair (challenge layout).

    With :class:`PredictedPairs` the predictions are those it carries (computed
    once); plain :class:`~protocol.prg.ExpandedPairs` are predicted here.
    """
    predicted = predicted_pairs(commitment, pairs)
    return {
        "first_outputs": outputs[0::2],
        "second_outputs": outputs[1::2],
        "first_predictions": predicted.first_predictions,
        "second_predictions": predicted.second_predictions,
    }
