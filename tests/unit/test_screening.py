"""Screening of the result stream (:mod:`protocol.screening`, :class:`verifier.core.Screen`).

On the example ``synthetic`` task, whose err is known exactly: the lower
bounds from every look hold (never above the exact err, over many challenges),
scores far beyond epsilon are stopped at an early look, exact scores are not,
and every look's prefix holds enough pairs of every node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocol.plan import Plan
from protocol.prg import expand_pairs
from protocol.screening import (
    MIN_PAIRS_PER_NODE,
    MIN_PREFIX_PAIRS,
    look_delta,
    screen_looks,
    screening_bounds,
)
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import Screen, _pair_arrays, pilot_from_runs, plan_audit
from verifier.planning import task_p
from verifier.retrain import private_points, train_points

SYNTHETIC = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "synthetic.toml"


def _setup(scale: float, epsilon: float, **config: object) -> tuple[Task, Commitment, Plan, float]:
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    com = Commitment.unsigned(theta0 * scale, theta * scale, source="test")
    # the clipped gap's screening (protocol.screening); the default's: test_ustat_screening
    config = {"statistic": "clipped-gap", **config}
    cfg = AuditConfig(epsilon=epsilon, delta=0.05, **config)  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    x, seeds = private_points(rng, cfg.pilot_trainings, n_items=task.n_items, p=task_p(task))
    own = train_points(task, x, seeds, chunk_size=cfg.train_chunk_size).outputs
    plan = plan_audit(cfg, task, com, pilot_from_runs(cfg, task, com, x, own))
    err = float(np.max(task.function.err(com.theta0, com.theta)))  # type: ignore[attr-defined]
    return task, com, plan, err


def _challenge(task: Task, plan: Plan, seed: bytes, evaluated: int):  # type: ignore[no-untyped-def]
    """Every pair of the challenge, and the outputs of its first ``evaluated`` pairs (0 after)."""
    pairs = expand_pairs(
        seed, np.arange(plan.n_pairs), task.n_items, task_p(task), plan.rho_of_pair()
    )
    m = evaluated
    points = np.stack([pairs.first[:m], pairs.second[:m]], axis=1).reshape(-1, task.n_items)
    point_seeds = np.stack([pairs.first_seeds[:m], pairs.second_seeds[:m]], axis=1).reshape(-1)
    outputs = np.zeros((plan.prover_evaluations, task.n_outputs))
    outputs[: 2 * m] = task.train_batch(points, point_seeds).outputs
    return pairs, outputs


@pytest.mark.parametrize("scale", [1.0, 0.8])
def test_every_look_bounds_err_from_below(scale: float) -> None:
    task, com, plan, err = _setup(scale, 0.1)
    looks = screen_looks(plan)
    assert looks, "the plan is large enough for at least one look"
    highest = -np.inf
    for k in range(8):
        pairs, outputs = _challenge(task, plan, bytes([k]) * 32, max(looks))
        arrays = _pair_arrays(com, pairs, outputs)
        for m in looks:
            prefix = {name: a[:m] for name, a in arrays.items()}
            bounds = screening_bounds(plan, **prefix, delta=look_delta(plan))
            highest = max(highest, float(bounds.max()))
    assert highest <= err, (highest, err)
    assert highest > err - 2 * plan.request.epsilon  # informative, not -inf


def test_scores_far_beyond_epsilon_stop_at_an_early_look() -> None:
    task, com, plan, err = _setup(0.5, 0.05)  # err = 0.1875 per output: 3.75 epsilon
    evaluated = plan.n_pairs // 32
    pairs, outputs = _challenge(task, plan, b"s" * 32, evaluated)
    screen = Screen(
        AuditConfig(epsilon=0.05, delta=0.05, statistic="clipped-gap"), plan, com, pairs
    )
    screened = None
    for received in [*range(0, 2 * evaluated, 64), 2 * evaluated]:  # batches of results
        screened = screen.observe(outputs, received)
        if screened is not None:
            break
    assert screened is not None
    assert screened.pairs <= plan.n_pairs // 32
    assert plan.request.epsilon <= screened.lower_bound <= err
    assert screened.pairs == screen.looked[-1] and not screen.looks  # no look after a rejection
    assert f"after {2 * screened.pairs:,d} of the {plan.prover_evaluations:,d}" in screened.reason(
        plan
    )


def test_exact_scores_pass_every_look_and_screening_can_be_turned_off() -> None:
    task, com, plan, _ = _setup(1.0, 0.3)
    pairs, outputs = _challenge(task, plan, b"e" * 32, plan.n_pairs)
    screen = Screen(AuditConfig(epsilon=0.3, delta=0.05, statistic="clipped-gap"), plan, com, pairs)
    assert screen.observe(outputs, len(outputs)) is None
    assert screen.looked == list(screen_looks(plan))
    off = Screen(
        AuditConfig(epsilon=0.3, delta=0.05, early_rejection=False, statistic="clipped-gap"),
        plan,
        com,
        pairs,
    )
    assert off.observe(outputs, len(outputs)) is None and off.looked == []


def test_every_look_holds_enough_pairs_of_every_node() -> None:
    _, _, plan, _ = _setup(1.0, 0.05)
    node = plan.node_of_pair()
    used = [j for j, k in enumerate(plan.pairs_per_node) if k > 0]
    looks = screen_looks(plan)
    assert looks and list(looks) == sorted(set(looks))
    assert all(MIN_PREFIX_PAIRS <= m < plan.n_pairs for m in looks)
    for m in looks:
        counts = np.bincount(node[:m], minlength=len(plan.pairs_per_node))
        assert all(counts[j] >= MIN_PAIRS_PER_NODE for j in used), (m, counts)
