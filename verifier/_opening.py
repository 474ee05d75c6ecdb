"""Spot checks over the wire: Open in batches, check the proofs, retrain and compare.

Private to :mod:`verifier.driver`.  After the signed root, a refusal, an
error or a missing point on ``Open`` is an abort with the Verifier's own
retraining of the requested points as evidence (:mod:`verifier.refusal`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.errors import ProverError, VerificationError
from protocol.messages import Opening
from protocol.plan import Plan
from verifier._run import AuditRun, Progress, progress_counter
from verifier._stages import merge_spot_checks
from verifier.config import AuditConfig
from verifier.refusal import OpenRefused, refusal_evidence
from verifier.results import ChallengeResults
from verifier.spotcheck import SpotCheckResult, check_openings, retrain_and_compare

__all__ = ["open_and_retrain"]


def open_and_retrain(
    run: AuditRun,
    results: ChallengeResults,
    plan: Plan,
    seed: bytes,
    indices: NDArray[np.int64],
    *,
    p: float,
    config: AuditConfig,
    note: Progress,
) -> SpotCheckResult:
    """Open ``indices``, check the openings against the signed results, retrain and compare.

    Raises:
        OpenRefused: the Prover refused, failed or left points unopened (after
            the Verifier retrained them itself).
    """
    commitment = run.commitment
    if commitment is None:
        raise VerificationError("internal: spot checks before commitment")
    note("open", 0, len(indices))
    openings, why = _request_openings(run, commitment.session_id, indices, config.open_batch)
    if why is not None:
        raise _refused(run, results, plan, seed, indices, why, config=config, note=note)
    opened = check_openings(openings, indices, results)
    k = len(indices)
    run.state.verifier_retrainings += k
    spot = retrain_and_compare(
        run.task,
        seed=seed,
        indices=indices,
        opened=opened,
        results=results,
        p=p,
        rho_of_pair=plan.rho_of_pair(),
        chunk_size=config.train_chunk_size,
        progress=progress_counter(note, "spot checks", k),
    )
    return spot


def _request_openings(
    run: AuditRun, session_id: str, indices: NDArray[np.int64], step: int
) -> tuple[list[Opening], str | None]:
    """The openings of ``indices``, asked ``step`` at a time, and why they fall short, if so."""
    batches = [indices[i : i + step].tolist() for i in range(0, len(indices), step)]
    openings: list[Opening] = []
    try:
        for b in batches:
            openings.extend(run.client.open(session_id=session_id, point_indices=b))
    except ProverError as err:  # a refusal, an error status or a broken connection
        return openings, f"Open failed: {err}"
    answered = {op.point_index for op in openings}
    missing = [int(i) for i in indices if int(i) not in answered]
    if missing:
        return openings, f"{len(missing)} of {len(indices)} requested points not opened"
    return openings, None


def _refused(
    run: AuditRun,
    results: ChallengeResults,
    plan: Plan,
    seed: bytes,
    indices: NDArray[np.int64],
    why: str,
    *,
    config: AuditConfig,
    note: Progress,
) -> OpenRefused:
    """Retrain the requested points anyway and state the mismatches as evidence."""
    k = len(indices)
    note("retraining refused spot checks", 0, k)
    err, spot = refusal_evidence(
        run.task,
        results,
        plan,
        seed,
        indices,
        why,
        chunk_size=config.train_chunk_size,
        progress=progress_counter(note, "retraining refused spot checks", k),
    )
    run.state.verifier_retrainings += k
    run.own_outputs.append(spot.own_outputs)
    run.spot = run.state.spot = spot if run.spot is None else merge_spot_checks(run.spot, spot)
    return err
