"""The transport-free audit core (:mod:`verifier.core`) end to end, in-process.

Pilot, plan, challenge layout, the Prover's honest outputs, spot checks
(retrained by :func:`verifier.spotcheck.retrain_and_compare`) and the
decision, for the default clipped-gap plan and for a Chebyshev direct-gap
plan in committed mode, on the example ``synthetic`` task (exact err).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from protocol.prg import expand_pairs
from prover.tasks.registry import load_task
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import (
    check_pilot,
    pilot_from_runs,
    plan_audit,
    spot_check_and_decide,
)
from verifier.planning import task_p
from verifier.results import ChallengeResults
from verifier.retrain import private_points, train_points
from verifier.spotcheck import SpotCheckResult, retrain_and_compare

SYNTHETIC = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "synthetic.toml"


def _audit(estimator: str, scale: float, epsilon: float) -> tuple[bool, int, int, list[str]]:
    """One audit of the exact scores x ``scale``: (accept, spot checks drawn, planned, notes)."""
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    com = Commitment.unsigned(theta0 * scale, theta * scale, source="test")
    cfg = AuditConfig(epsilon=epsilon, delta=0.05, estimator=estimator)
    rng = np.random.default_rng(20261130)
    x, seeds = private_points(rng, cfg.pilot_trainings, n_items=task.n_items, p=task_p(task))
    own = train_points(task, x, seeds, chunk_size=cfg.train_chunk_size).outputs
    pilot = pilot_from_runs(cfg, task, com, x, own)
    check_pilot(cfg, task, pilot)
    plan = plan_audit(cfg, task, com, pilot)
    seed = rng.bytes(32)
    pairs = expand_pairs(
        seed, np.arange(plan.n_pairs), task.n_items, task_p(task), plan.rho_of_pair()
    )
    points = np.stack([pairs.first, pairs.second], axis=1).reshape(-1, task.n_items)
    point_seeds = np.stack([pairs.first_seeds, pairs.second_seeds], axis=1).reshape(-1)
    outputs = np.asarray(task.train_batch(points, point_seeds).outputs, dtype=np.float64)
    drawn: list[int] = []

    def check(indices: NDArray[np.int64]) -> SpotCheckResult:
        drawn.append(len(indices))
        return retrain_and_compare(
            task,
            seed=seed,
            indices=indices,
            opened={int(i): np.zeros(0) for i in indices},
            results=ChallengeResults(outputs, (), b"", b"", None),  # type: ignore[arg-type]
            p=task_p(task),
            rho_of_pair=plan.rho_of_pair(),
            chunk_size=cfg.train_chunk_size,
        )

    notes: list[str] = []
    decision, spot = spot_check_and_decide(
        cfg, plan, com, pairs, outputs, pilot=pilot, rng=rng, check=check, note=notes.append
    )
    assert len(spot.indices) == sum(drawn)
    return decision.accept, sum(drawn), plan.spot_checks, notes


@pytest.mark.parametrize("estimator", ["lp", "chebyshev"])
def test_exact_scores_are_accepted(estimator: str) -> None:
    accept, drawn, planned, _ = _audit(estimator, 1.0, 0.3)
    assert accept
    assert 0 < drawn <= planned
    if estimator == "chebyshev":
        assert drawn == planned  # plans other than the clipped gap draw the planned number


def test_clipped_gap_draws_what_the_results_call_for() -> None:
    accept, drawn, planned, notes = _audit("lp", 1.0, 0.3)
    assert accept and drawn < planned
    assert any("the results call for" in n for n in notes)


def test_scores_far_beyond_epsilon_cost_no_spot_check() -> None:
    # halved exact scores: err = 0.1875 per output, here against epsilon = 0.05
    accept, drawn, planned, notes = _audit("lp", 0.5, 0.05)
    assert not accept and drawn == 0 and planned > 0
    assert any("rejected before any spot check" in n for n in notes)
