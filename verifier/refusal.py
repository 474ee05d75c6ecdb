"""A Prover that will not open its spot checks after its signed root: the evidence.

After the signed Merkle root, a refusal, an error or a disconnect on ``Open``
is not a transport failure but an abort (:data:`REFUSED_OPEN`): the Verifier
holds the signed results, the seed and the requested indices, so it retrains
those points itself and states in the signed report how many disagree with
the Prover's signed results beyond tau.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from protocol.errors import VerificationError
from protocol.plan import Plan
from prover.tasks.base import Task
from verifier.planning import task_p
from verifier.results import ChallengeResults
from verifier.retrain import challenge_points, train_points
from verifier.spotcheck import SpotCheckResult

__all__ = ["EVIDENCE_POINTS", "REFUSED_OPEN", "OpenRefused", "refusal_evidence"]

#: The reason of every audit whose Prover would not open spot checks after its signed root.
REFUSED_OPEN = "Prover refused to open spot checks"
#: Points named in that reason as evidence (the count is always complete).
EVIDENCE_POINTS = 10


class OpenRefused(VerificationError):
    """After its signed Merkle root, the Prover refused, failed or disconnected on ``Open``.

    The message starts with :data:`REFUSED_OPEN` and records what the
    Verifier's own retraining of the requested points found.
    """


def refusal_evidence(
    task: Task,
    results: ChallengeResults,
    plan: Plan,
    seed: bytes,
    indices: NDArray[np.int64],
    why: str,
    *,
    chunk_size: int,
    progress: Callable[[int], object] | None = None,
) -> tuple[OpenRefused, SpotCheckResult]:
    """Retrain the refused points; the abort (with the mismatches) and what was retrained."""
    k = len(indices)
    x, seeds = challenge_points(
        seed, indices, n_items=task.n_items, p=task_p(task), rho_of_pair=plan.rho_of_pair()
    )
    own = train_points(task, x, seeds, chunk_size=chunk_size, progress=progress).outputs
    diff = np.max(np.abs(results.outputs[indices] - own), axis=1)
    spot = SpotCheckResult(indices, diff, np.full(k, np.nan), own)  # weights never opened
    tau = task.output_tolerance
    bad = np.flatnonzero(diff > tau)
    if bad.size:
        shown = ", ".join(str(int(indices[r])) for r in bad[:EVIDENCE_POINTS])
        more = ", ..." if bad.size > EVIDENCE_POINTS else ""
        evidence = (
            f"{bad.size} of the {k} requested points disagree with the Prover's signed "
            f"results beyond tau={tau:g} (points {shown}{more}; largest difference "
            f"{float(diff.max()):.6g})"
        )
    else:
        evidence = f"all {k} agree with the Prover's signed results within tau={tau:g}"
    err = OpenRefused(
        f"{REFUSED_OPEN} after its signed Merkle root ({why}); the Verifier retrained "
        f"the {k} requested points itself: {evidence}"
    )
    return err, spot
