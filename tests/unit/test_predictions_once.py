"""``g_a`` (the committed scores' predictions) is computed once per point set in an audit.

Every call of :meth:`verifier.commitment.Commitment.predict` is counted by the
points it is given, during in-process audits of the example ``synthetic`` task:
through the transport-free core (pilot, plan, screening of the result stream,
spot checks and the decision, with a first-stage rejection that plans a later
stage) and through local mode (:func:`verifier.local.certify_local`).  No set
of points may be predicted twice, and the challenge's pairs are predicted once
each (:class:`verifier.core.PredictedPairs`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from protocol.prg import expand_pairs
from protocol.signing import generate_private_key
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from verifier import _stages as stages
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import (
    PredictedPairs,
    Screen,
    check_pilot,
    pilot_from_runs,
    plan_audit,
    spot_check_and_decide,
)
from verifier.local import certify_local
from verifier.planning import task_p
from verifier.results import ChallengeResults
from verifier.retrain import private_points, train_points
from verifier.spotcheck import SpotCheckResult, retrain_and_compare

SYNTHETIC = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "synthetic.toml"


def _key(x: NDArray[np.int8]) -> str:
    a = np.ascontiguousarray(x)
    return f"{a.shape}:{hashlib.sha256(a.tobytes()).hexdigest()}"


@pytest.fixture
def predicted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts every ``Commitment.predict`` call by the points it predicts."""
    calls: Counter[str] = Counter()
    real = Commitment.predict

    def counting(self: Commitment, x: NDArray[np.int8]) -> NDArray[np.float64]:
        calls[_key(x)] += 1
        return real(self, x)

    monkeypatch.setattr(Commitment, "predict", counting)
    yield calls


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task(SYNTHETIC)


def _scores(task: Task, scale: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    return theta0 * scale, theta * scale


def _core_audit(
    task: Task, scale: float, epsilon: float, *, predict_pairs: bool, **config: object
) -> tuple[bool, int]:
    """One audit through :mod:`verifier.core` as the driver runs it: (accept, spot checks).

    ``predict_pairs``: the pairs are passed as :class:`PredictedPairs` (else plain,
    as the driver and the benchmarks pass them: predicted once inside).
    """
    com = Commitment.unsigned(*_scores(task, scale), source="test")
    cfg = AuditConfig(epsilon=epsilon, delta=0.05, **config)  # type: ignore[arg-type]
    rng = np.random.default_rng(20261130)
    x, seeds = private_points(rng, cfg.pilot_trainings, n_items=task.n_items, p=task_p(task))
    own = train_points(task, x, seeds, chunk_size=cfg.train_chunk_size).outputs
    pilot = pilot_from_runs(cfg, task, com, x, own)
    check_pilot(cfg, task, pilot)
    plan = plan_audit(cfg, task, com, pilot)
    seed = rng.bytes(32)
    expanded = expand_pairs(
        seed, np.arange(plan.n_pairs), task.n_items, task_p(task), plan.rho_of_pair()
    )
    pairs = PredictedPairs(com, expanded) if predict_pairs else expanded
    points = np.stack([expanded.first, expanded.second], axis=1).reshape(-1, task.n_items)
    point_seeds = np.stack([expanded.first_seeds, expanded.second_seeds], axis=1).reshape(-1)
    outputs = np.asarray(task.train_batch(points, point_seeds).outputs, dtype=np.float64)
    assert Screen(cfg, plan, com, pairs).observe(outputs, len(outputs)) is None

    def check(indices: NDArray[np.int64]) -> SpotCheckResult:
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

    decision, spot = spot_check_and_decide(
        cfg, plan, com, pairs, outputs, pilot=pilot, rng=rng, check=check
    )
    return decision.accept, len(spot.indices)


def _assert_once(calls: Counter[str], *must: NDArray[np.int8]) -> None:
    twice = {k: n for k, n in calls.items() if n > 1}
    assert not twice, f"point sets predicted more than once: {twice}"
    for x in must:
        assert calls[_key(x)] == 1


@pytest.mark.parametrize("statistic", ["u-statistic", "clipped-gap"])
@pytest.mark.parametrize("predict_pairs", [True, False])
def test_exact_scores_predict_every_point_set_once(
    task: Task, predicted: Counter[str], predict_pairs: bool, statistic: str
) -> None:
    accept, spot_checks = _core_audit(
        task, 1.0, 0.3, predict_pairs=predict_pairs, statistic=statistic
    )
    assert accept and spot_checks > 0
    # pilot points, the two halves of the pairs, the spot checks (and, for the clipped
    # gap's larger plan, one prefix per screening look)
    assert len(predicted) >= (4 if statistic == "u-statistic" else 5)
    _assert_once(predicted)


@pytest.mark.parametrize("predict_pairs", [True, False])
def test_a_rejection_with_a_later_stage_predicts_the_pairs_once(
    task: Task, predicted: Counter[str], monkeypatch: pytest.MonkeyPatch, predict_pairs: bool
) -> None:
    # err of the scores x 0.85 is beyond epsilon 0.03: the first stage rejects, and a later
    # stage is planned from the same pairs and spot checks (no early rejection: spot checks)
    planned: list[int] = []
    real = stages.plan_escalation

    def counting(*args: object, **kwargs: object) -> object:
        planned.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stages, "plan_escalation", counting)
    accept, spot_checks = _core_audit(  # later stages are the clipped gap's
        task, 0.85, 0.03, predict_pairs=predict_pairs, early_rejection=False,
        statistic="clipped-gap",
    )  # fmt: skip
    assert not accept and spot_checks > 0
    assert planned  # a later stage was planned (it predicted the pairs again before)
    _assert_once(predicted)


def test_local_mode_predicts_every_point_set_once(task: Task, predicted: Counter[str]) -> None:
    seen: list[tuple[str, int, int]] = []
    result = certify_local(
        task,
        *_scores(task, 1.0),
        AuditConfig(epsilon=0.3, delta=0.05),
        key=generate_private_key(),
        rng=np.random.default_rng(20260101),
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    assert result.report.decision == "accept"
    assert ("pilot", 0, 200) in seen
    # the pilot's points; the challenge's points in their layout (verified residuals) and
    # either half of the pairs (the decision)
    assert len(predicted) == 4
    _assert_once(predicted)
