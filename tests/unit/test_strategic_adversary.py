"""The strategic liar: greedy lies against the clipped gap, its policy and catalogue entry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from protocol.challenge import node_of_pair
from protocol.errors import InvalidArgument
from protocol.estimators import functional_from_nodes
from protocol.scores import Scores
from prover.adversaries import Adversary, arm, catalogue_help, parse_adversary
from prover.adversaries.strategic import (
    StrategicLies,
    StrategicPolicy,
    clipped_gap,
    strategic_lies,
)
from prover.service.plan import ChallengePlan

DIGEST = "sha256:" + "ab" * 32
ROOT = Path(__file__).resolve().parents[2]
FloatArray = NDArray[np.float64]


def _case(
    seed: int, n_pairs: int = 40, n_outputs: int = 3, n_nodes: int = 3, bound: float = 1.0
) -> dict[str, FloatArray]:
    rng = np.random.default_rng(seed)
    return {
        "f1": rng.uniform(-bound, bound, (n_pairs, n_outputs)),
        "f2": rng.uniform(-bound, bound, (n_pairs, n_outputs)),
        "g1": rng.uniform(-0.5 * bound, 0.5 * bound, (n_pairs, n_outputs)),
        "g2": rng.uniform(-0.5 * bound, 0.5 * bound, (n_pairs, n_outputs)),
        "nodes": np.sort(rng.integers(0, n_nodes, n_pairs)).astype(np.float64),
        "weights": rng.normal(size=n_nodes) * 2.0,
        "clip": rng.uniform(0.1, 0.6, n_outputs),
    }


def _gap(c: dict[str, FloatArray], f1: FloatArray, f2: FloatArray) -> FloatArray:
    return clipped_gap(
        f1, f2, c["g1"], c["g2"], c["nodes"].astype(np.int64), c["weights"], c["clip"]
    )


def _lies(
    c: dict[str, FloatArray], n_lies: int, *, target: int | None = None, bound: float = 1.0
) -> StrategicLies:
    return strategic_lies(
        c["f1"],
        c["f2"],
        c["g1"],
        c["g2"],
        node_of_pair=c["nodes"].astype(np.int64),
        weights=c["weights"],
        clip_levels=c["clip"],
        n_lies=n_lies,
        bound=bound,
        target=target,
    )


def _changed_points(c: dict[str, FloatArray], f1: FloatArray, f2: FloatArray) -> set[int]:
    first = np.flatnonzero(np.any(f1 != c["f1"], axis=1))
    second = np.flatnonzero(np.any(f2 != c["f2"], axis=1))
    return {2 * int(i) for i in first} | {2 * int(i) + 1 for i in second}


def test_clipped_gap_matches_a_direct_loop() -> None:
    c = _case(0, n_pairs=12, n_outputs=2)
    nodes = c["nodes"].astype(np.int64)
    expected = np.zeros(2)
    for z in range(2):
        for j in range(len(c["weights"])):
            at = nodes == j
            if at.any():
                q = (c["f1"][at, z] - c["g1"][at, z]) * (c["f2"][at, z] - c["g2"][at, z])
                expected[z] += c["weights"][j] * np.clip(q, -c["clip"][z], c["clip"][z]).mean()
    assert np.allclose(_gap(c, c["f1"], c["f2"]), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [None, 0, 2])
@pytest.mark.parametrize("n_lies", [1, 3, 10, 100])
def test_decrease_is_the_change_of_the_statistic(
    seed: int, target: int | None, n_lies: int
) -> None:
    c = _case(seed)
    lies = _lies(c, n_lies, target=target)
    before = _gap(c, c["f1"], c["f2"])
    after = _gap(c, lies.first_outputs, lies.second_outputs)
    assert lies.decrease.dtype == np.float64 and lies.decrease.shape == (3,)
    assert np.allclose(before - after, lies.decrease, rtol=1e-9, atol=1e-12)
    assert np.all(lies.decrease >= 0)
    if target is not None:
        others = np.arange(3) != target
        assert np.all(lies.decrease[others] == 0)
        assert np.array_equal(lies.first_outputs[:, others], c["f1"][:, others])
        assert np.array_equal(lies.second_outputs[:, others], c["f2"][:, others])
        assert lies.decrease[target] > 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [None, 1])
@pytest.mark.parametrize("n_lies", [0, 1, 2, 7, 100])
def test_at_most_n_lies_pairs_one_point_each_within_bound(
    seed: int, target: int | None, n_lies: int
) -> None:
    bound = 0.8
    c = _case(seed, bound=bound)
    lies = _lies(c, n_lies, target=target, bound=bound)
    changed = _changed_points(c, lies.first_outputs, lies.second_outputs)
    pairs = {p // 2 for p in changed}
    assert len(pairs) == len(changed) <= n_lies  # one point per pair
    assert changed <= set(lies.points.tolist())
    assert lies.pairs.dtype == np.int64 and lies.points.dtype == np.int64
    assert np.array_equal(lies.pairs, np.sort(lies.pairs))
    assert len(set(lies.pairs.tolist())) == lies.pairs.size <= n_lies
    assert np.array_equal(lies.points // 2, lies.pairs)
    for out in (lies.first_outputs, lies.second_outputs):
        assert np.all(np.abs(out) <= bound)
    # Copies: the inputs are untouched.
    assert not np.shares_memory(lies.first_outputs, c["f1"])


def test_no_lies_changes_nothing() -> None:
    c = _case(3)
    lies = _lies(c, 0)
    assert np.array_equal(lies.first_outputs, c["f1"])
    assert np.array_equal(lies.second_outputs, c["f2"])
    assert lies.pairs.size == lies.points.size == 0
    assert np.array_equal(lies.decrease, np.zeros(3))


def test_zero_other_residual_cannot_move() -> None:
    c = _case(4, n_pairs=4, n_outputs=1)
    c["f1"] = c["g1"].copy()  # q = 0 at every first point: no product can move
    c["f2"] = c["g2"].copy()
    lies = _lies(c, 4)
    assert lies.pairs.size == 0
    assert np.array_equal(lies.decrease, np.zeros(1))


def test_products_go_to_the_damaging_clip() -> None:
    """Unconstrained by the bound, a lie makes the product exactly -sign(w) C."""
    c = _case(5, n_pairs=6, n_outputs=1, n_nodes=2)
    c["weights"] = np.array([1.5, -0.5])
    c["nodes"] = np.array([0, 0, 0, 1, 1, 1], dtype=np.float64)
    lies = _lies(c, 6, bound=1e6)
    q1 = lies.first_outputs - c["g1"]
    q2 = lies.second_outputs - c["g2"]
    sign = np.sign(c["weights"])[c["nodes"].astype(np.int64)]
    prod = np.clip(q1[:, 0] * q2[:, 0], -c["clip"][0], c["clip"][0])
    assert np.allclose(prod[lies.pairs], -sign[lies.pairs] * c["clip"][0], atol=1e-12)


def _grid_best(c: dict[str, FloatArray], bound: float, outputs: list[int]) -> float:
    """Largest decrease (summed over ``outputs``) of ANY single-point lie, values on a fine grid.

    For each pair, point and output, the statistic is recomputed from scratch for
    every grid value at once (one column per value).
    """
    grid = np.linspace(-bound, bound, 20001)
    before = _gap(c, c["f1"], c["f2"])
    nodes = c["nodes"].astype(np.int64)
    best = 0.0
    for i in range(c["f1"].shape[0]):
        for side in (0, 1):
            total = 0.0
            for z in outputs:
                cols = [np.repeat(c[k][:, z : z + 1], grid.size, axis=1) for k in ("f1", "f2")]
                cols[side][i] = grid
                g1 = np.repeat(c["g1"][:, z : z + 1], grid.size, axis=1)
                g2 = np.repeat(c["g2"][:, z : z + 1], grid.size, axis=1)
                after = clipped_gap(cols[0], cols[1], g1, g2, nodes, c["weights"], c["clip"][z])
                total += max(0.0, float(before[z] - after.min()))  # outputs separate
            best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(3))
def test_greedy_is_optimal_for_one_lie(seed: int) -> None:
    bound = 1.0
    c = _case(100 + seed, n_pairs=8, n_outputs=1, n_nodes=2, bound=bound)
    c["weights"] = np.array([2.0, -1.0])
    lies = _lies(c, 1, target=0, bound=bound)
    achieved = float(lies.decrease[0])
    best = _grid_best(c, bound, [0])
    assert achieved >= best - 1e-12
    after = _gap(c, lies.first_outputs, lies.second_outputs)
    assert math.isclose(achieved, float(_gap(c, c["f1"], c["f2"])[0] - after[0]), rel_tol=1e-9)


def test_greedy_is_optimal_for_one_lie_on_every_output() -> None:
    bound = 1.0
    c = _case(7, n_pairs=8, n_outputs=2, n_nodes=2, bound=bound)
    c["weights"] = np.array([2.0, -1.0])
    lies = _lies(c, 1, bound=bound)
    assert lies.pairs.size == 1
    assert float(lies.decrease.sum()) >= _grid_best(c, bound, [0, 1]) - 1e-12


def test_bad_arguments() -> None:
    c = _case(0, n_pairs=4)
    with pytest.raises(InvalidArgument, match="n_lies must be >= 0"):
        _lies(c, -1)
    with pytest.raises(InvalidArgument, match="target must lie in"):
        _lies(c, 1, target=3)
    with pytest.raises(InvalidArgument, match="bound must be finite and > 0"):
        _lies(c, 1, bound=0.0)
    c["clip"] = np.array([0.1, 0.0, 0.2])
    with pytest.raises(InvalidArgument, match="clip levels must be finite and > 0"):
        _lies(c, 1)


# ----------------------------------------------------------------- the policy
N_ITEMS = 6
PLAN = ChallengePlan(seed=bytes(range(32)), p=0.5, nodes=(0.0, 0.25, 0.5), pairs_per_node=(5, 7, 4))


def _scores(seed: int, n_outputs: int = 2) -> Scores:
    rng = np.random.default_rng(seed)
    return Scores(
        theta0=rng.normal(scale=0.1, size=n_outputs),
        theta=rng.normal(scale=0.05, size=(n_outputs, N_ITEMS)),
        task_digest=DIGEST,
        method="test",
    )


def _full_gap(
    outputs: FloatArray, scores: Scores, clip: float, weights: FloatArray | None = None
) -> FloatArray:
    x, _ = PLAN.points(np.arange(PLAN.n_points, dtype=np.int64), N_ITEMS)
    g = scores.predict(x)
    w = np.asarray(functional_from_nodes(PLAN.nodes).weights) if weights is None else weights
    node = node_of_pair(PLAN.pairs_per_node)
    z = outputs.shape[1]
    return clipped_gap(outputs[0::2], outputs[1::2], g[0::2], g[1::2], node, w, np.full(z, clip))


@pytest.mark.parametrize("tolerated", [0, 3])
def test_policy_lies_on_few_complete_pairs(tolerated: int) -> None:
    bound, clip, multiple = 1.0, 0.5, 2.0
    scores = _scores(1)
    policy = StrategicPolicy(
        multiple,
        tolerated=tolerated,
        clip_levels=clip,
        weights=None,
        scores=scores,
        n_items=N_ITEMS,
        bound=bound,
    )
    rng = np.random.default_rng(2)
    honest = rng.uniform(-bound, bound, (PLAN.n_points, 2))
    digests = rng.integers(0, 256, (PLAN.n_points, 32), dtype=np.uint8)
    committed = honest.copy()
    total = math.ceil(multiple * max(tolerated, 1))
    # Chunks split pair 4 (points 8, 9) and pair 10 (points 20, 21); indices shuffled.
    for lo, hi in ((0, 9), (9, 21), (21, PLAN.n_points)):
        idx = rng.permutation(np.arange(lo, hi, dtype=np.int64))
        out, dig = policy.results("s1", PLAN, idx, honest[idx], digests[idx])
        assert out.shape == (hi - lo, 2) and np.array_equal(dig, digests[idx])
        assert np.all(np.abs(out) <= bound)
        changed = idx[np.any(out != honest[idx], axis=1)]
        complete = {p for p in range(PLAN.n_pairs) if lo <= 2 * p and 2 * p + 1 < hi}
        assert {int(i) // 2 for i in changed} <= complete  # split pairs are never lied on
        assert len({int(i) // 2 for i in changed}) == changed.size  # one point per pair
        assert changed.size <= math.ceil(total * len(complete) / PLAN.n_pairs)
        committed[idx] = out
    n_changed = int(np.any(committed != honest, axis=1).sum())
    assert 0 < n_changed <= total
    before = _full_gap(honest, scores, clip)
    after = _full_gap(committed, scores, clip)
    assert np.all(after <= before + 1e-12) and np.any(after < before)


def test_policy_with_given_weights_and_sessions_apart() -> None:
    scores = _scores(3)
    weights = np.asarray(functional_from_nodes(PLAN.nodes).weights)
    policy = StrategicPolicy(
        1.5,
        tolerated=2,
        clip_levels=[0.3, 0.4],
        weights=weights,
        scores=scores,
        n_items=N_ITEMS,
        bound=1.0,
    )
    rng = np.random.default_rng(4)
    honest = rng.uniform(-1, 1, (PLAN.n_points, 2))
    digests = np.zeros((PLAN.n_points, 32), dtype=np.uint8)
    idx = np.arange(PLAN.n_points, dtype=np.int64)
    for session in ("a", "b"):  # each session has its own budget of 3 lies
        out, _ = policy.results(session, PLAN, idx, honest, digests)
        assert 0 < int(np.any(out != honest, axis=1).sum()) <= 3
    bad = StrategicPolicy(
        1, tolerated=1, clip_levels=0.5, weights=[1.0, 0.0], scores=scores, n_items=N_ITEMS, bound=1
    )
    with pytest.raises(InvalidArgument, match="2 weights for 3 nodes"):
        bad.results("c", PLAN, idx, honest, digests)


def test_policy_refuses_bad_parameters() -> None:
    kw = {"clip_levels": 0.5, "weights": None, "scores": _scores(0), "n_items": N_ITEMS}
    with pytest.raises(InvalidArgument, match="multiple must be finite and > 0"):
        StrategicPolicy(0.0, tolerated=1, bound=1.0, **kw)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="tolerated must be >= 0"):
        StrategicPolicy(1.0, tolerated=-1, bound=1.0, **kw)  # type: ignore[arg-type]


# -------------------------------------------------------------- the catalogue
def test_catalogue_parses_strategic() -> None:
    assert parse_adversary("strategic:5:3:0.5") == Adversary(
        name="strategic", family="results", params=(5.0, 3.0, 0.5)
    )
    assert parse_adversary("strategic:0.5:0:2").params == (0.5, 0.0, 2.0)
    assert str(parse_adversary("strategic:5:3:0.5")) == "strategic:5:3:0.5"
    assert "strategic:MULT:COUNT:CLIP (results): " in catalogue_help()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "strategic:5:3",
            "adversary 'strategic' takes 3 parameter(s) (usage: strategic:MULT:COUNT:CLIP), got 2",
        ),
        ("strategic:0:3:0.5", "adversary 'strategic': MULT must be > 0, got 0"),
        ("strategic:x:3:0.5", "adversary 'strategic': MULT must be a number, got 'x'"),
        ("strategic:5:-1:0.5", "adversary 'strategic': COUNT must be >= 0, got -1"),
        ("strategic:5:2.5:0.5", "adversary 'strategic': COUNT must be an integer, got '2.5'"),
        ("strategic:5:3:-0.5", "adversary 'strategic': CLIP must be > 0, got -0.5"),
        ("strategic:5:3:inf", "adversary 'strategic': CLIP must be finite"),
    ],
)
def test_catalogue_rejects_bad_strategic(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_adversary(text)
    assert str(info.value).startswith(message), str(info.value)


def test_arm_builds_the_strategic_policy() -> None:
    from prover.tasks.registry import load_task

    task = load_task(ROOT / "examples" / "tasks" / "synthetic.toml")
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    honest = Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact")
    armed = arm(["strategic:5:3:0.5"], task=task, scores=honest)
    policy = armed.policy
    assert isinstance(policy, StrategicPolicy)
    assert (policy.total, policy.tolerated, policy.weights) == (15, 3, None)
    assert policy.bound == task.bound and policy.scores is armed.scores
    assert armed.describe() == "strategic:5:3:0.5"
