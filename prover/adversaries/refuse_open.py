"""A Prover that lies on some results, signs the root, then refuses every ``Open``.

A consistent liar: a FRACTION of its challenge results are shifted by SHIFT
(output units; small, so the statistic alone would not reject, but far beyond
a task's tolerance tau) and committed under the signed Merkle root.  It will
not open any spot check: every ``Open`` request is refused with an error
status.  Refusing does not help it: after the signed root the Verifier aborts
("Prover refused to open spot checks") and retrains the requested points
itself, recording in the signed report how many of the Prover's signed
results disagree with its own retraining.

Not in the ``--adversary`` catalogue: tests serve it through
:class:`prover.service.ProverHandlers` (``policy=RefuseOpenPolicy(...)``).
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from protocol.errors import ProverError
from protocol.messages import Opening
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy

__all__ = ["RefuseOpenPolicy"]


class RefuseOpenPolicy(ResultPolicy):
    """Shifts a FRACTION of results by SHIFT and refuses to open any.

    Args:
        fraction: probability that a result is shifted.
        shift: what is added to every output of a shifted result.
        rng: the liar's randomness.
    """

    def __init__(self, fraction: float, *, shift: float, rng: np.random.Generator) -> None:
        self.fraction = fraction
        self.shift = shift
        self._rng = rng
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
            lie = self._rng.random(len(indices)) < self.fraction
        out = np.array(outputs, copy=True)
        out[lie] += self.shift
        return out, weight_digests

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        raise ProverError("this Prover does not open its results")
