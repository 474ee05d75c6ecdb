"""One challenge layout: the Prover's ChallengePlan, the Verifier's challenge_points and
protocol.challenge.ChallengeLayout expand the same points, seeds and nodes."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from protocol.challenge import (
    ChallengeLayout,
    challenge_points,
    check_challenge,
    node_of_pair,
    rho_of_pair,
)
from protocol.errors import InvalidArgument
from protocol.hypercube import rho_max
from protocol.prg import expand_pairs
from prover.service.plan import ChallengePlan
from verifier import retrain

P_VALUES = (0.1, 0.3, 0.5, 0.8)


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _spec_node_of_pair(counts: tuple[int, ...]) -> list[int]:
    """The interleaving read literally from the spec, with exact fractions."""
    keyed = [(Fraction(2 * k + 1, 2 * K), j) for j, K in enumerate(counts) for k in range(K)]
    return [j for _, j in sorted(keyed)]


def _reference(
    seed: bytes,
    nodes: tuple[float, ...],
    counts: tuple[int, ...],
    n_items: int,
    p: float,
    points: NDArray[np.int64],
) -> tuple[NDArray[np.int8], NDArray[np.uint64], NDArray[np.float64]]:
    """The layout read literally from the spec: one expand_pairs call per point."""
    node = _spec_node_of_pair(counts)
    xs, seeds, rhos = [], [], []
    for i in points.tolist():
        pair, second = divmod(i, 2)
        rho = nodes[node[pair]]
        e = expand_pairs(seed, [pair], n_items, p, [rho])
        xs.append(e.second[0] if second else e.first[0])
        seeds.append(e.second_seeds[0] if second else e.first_seeds[0])
        rhos.append(rho)
    return (
        np.asarray(xs, dtype=np.int8).reshape(len(xs), n_items),
        np.asarray(seeds, dtype=np.uint64),
        np.asarray(rhos, dtype=np.float64),
    )


def _check_all_agree(
    seed: bytes,
    nodes: tuple[float, ...],
    counts: tuple[int, ...],
    n_items: int,
    p: float,
    points: NDArray[np.int64],
) -> None:
    layout = ChallengeLayout(seed, nodes, counts, n_items, p)
    plan = ChallengePlan(seed=seed, p=p, nodes=nodes, pairs_per_node=counts)
    assert plan.layout(n_items) == layout
    assert (
        (layout.n_pairs, layout.n_points)
        == (plan.n_pairs, plan.n_points)
        == (
            sum(counts),
            2 * sum(counts),
        )
    )

    # rho and node of every pair, four ways
    all_pairs = np.arange(layout.n_pairs, dtype=np.int64)
    rhos = layout.rho_of_pair()
    assert rhos.dtype == np.float64 and rhos.shape == (layout.n_pairs,)
    nodes_of = layout.node_of_pair()
    assert nodes_of.dtype == np.int64
    np.testing.assert_array_equal(nodes_of, _spec_node_of_pair(counts))
    np.testing.assert_array_equal(node_of_pair(counts), nodes_of)
    np.testing.assert_array_equal(layout.node_of(all_pairs), nodes_of)
    np.testing.assert_array_equal(rho_of_pair(nodes, counts), rhos)
    np.testing.assert_array_equal(np.asarray(nodes)[nodes_of], rhos)
    np.testing.assert_array_equal(plan.pair_rhos(all_pairs), rhos)
    np.testing.assert_array_equal(layout.rho_of(all_pairs), rhos)

    want_x, want_seeds, want_rho = _reference(seed, nodes, counts, n_items, p, points)
    np.testing.assert_array_equal(rhos[points // 2], want_rho)
    answers = {
        "layout": layout.points(points),
        "prover": plan.points(points, n_items),
        "verifier": retrain.challenge_points(seed, points, n_items=n_items, p=p, rho_of_pair=rhos),
        "protocol": challenge_points(seed, points, n_items=n_items, p=p, rho_of_pair=rhos),
    }
    for who, (x, seeds) in answers.items():
        assert x.dtype == np.int8 and x.shape == (len(points), n_items), who
        assert seeds.dtype == np.uint64 and seeds.shape == (len(points),), who
        np.testing.assert_array_equal(x, want_x, err_msg=who)
        np.testing.assert_array_equal(seeds, want_seeds, err_msg=who)

    # pairs(): both points of each pair
    pairs = np.unique(points // 2)
    e = layout.pairs(pairs)
    x_first, s_first = layout.points(2 * pairs)
    x_second, s_second = layout.points(2 * pairs + 1)
    np.testing.assert_array_equal(e.first, x_first)
    np.testing.assert_array_equal(e.second, x_second)
    np.testing.assert_array_equal(e.first_seeds, s_first)
    np.testing.assert_array_equal(e.second_seeds, s_second)


@st.composite
def layouts(
    draw: st.DrawFn,
) -> tuple[bytes, tuple[float, ...], tuple[int, ...], int, float, NDArray[np.int64]]:
    p = draw(st.sampled_from(P_VALUES))
    lo = -rho_max(p)
    node = st.one_of(
        st.sampled_from([lo, 0.0, 1.0]),
        st.floats(min_value=lo, max_value=1.0, allow_nan=False),
    )
    n_nodes = draw(st.integers(1, 5))
    nodes = tuple(draw(st.lists(node, min_size=n_nodes, max_size=n_nodes)))
    counts = tuple(draw(st.lists(st.integers(0, 4), min_size=n_nodes, max_size=n_nodes)))
    if sum(counts) == 0:
        counts = (*counts[:-1], 1)
    n_items = draw(st.integers(1, 12))
    seed = draw(st.binary(min_size=32, max_size=32))
    n_points = 2 * sum(counts)
    points = draw(st.lists(st.integers(0, n_points - 1), min_size=0, max_size=2 * n_points))
    return seed, nodes, counts, n_items, p, np.asarray(points, dtype=np.int64)


@given(layouts())
def test_prover_verifier_and_layout_agree(
    case: tuple[bytes, tuple[float, ...], tuple[int, ...], int, float, NDArray[np.int64]],
) -> None:
    _check_all_agree(*case)


@pytest.mark.parametrize(
    ("label", "nodes", "counts", "n_items", "p"),
    [
        ("edge", (-rho_max(0.3), 0.0, 0.5, 1.0), (3, 2, 0, 4), 9, 0.3),
        ("edge-only", (-rho_max(0.3),), (5,), 17, 0.3),
        ("wide", (-1.0, -0.25, 0.5, 1.0), (1, 4, 2, 3), 6, 0.5),
        ("skewed", (-rho_max(0.8), 0.9), (0, 7), 4, 0.8),
    ],
)
def test_seeded_layouts_agree(
    label: str, nodes: tuple[float, ...], counts: tuple[int, ...], n_items: int, p: float
) -> None:
    n_points = 2 * sum(counts)
    rng = np.random.default_rng(sum(label.encode()))
    points = np.concatenate(
        [np.arange(n_points), rng.integers(0, n_points, size=n_points), [n_points - 1, 0]]
    ).astype(np.int64)
    _check_all_agree(_seed(label), nodes, counts, n_items, p, points)


def test_node_exactly_at_minus_rho_max_is_the_most_negative_partner() -> None:
    """p = 0.3: rho = -rho_max makes P(x'=+1 | x=+1) = 0, so every +1 flips."""
    p, lo = 0.3, -rho_max(0.3)
    layout = ChallengeLayout(_seed("anti"), (lo,), (40,), 25, p)
    e = layout.pairs(np.arange(40))
    assert not np.any((e.first == 1) & (e.second == 1))
    # a node just outside, within check_rho's slack, is accepted and expands as the edge
    beyond = ChallengeLayout(_seed("anti"), (lo * (1 + 1e-13),), (40,), 25, p)
    assert beyond.nodes == (lo * (1 + 1e-13),)  # kept as given
    np.testing.assert_array_equal(beyond.points(np.arange(80))[0], layout.points(np.arange(80))[0])


def test_layout_normalises_and_compares_by_value() -> None:
    a = ChallengeLayout(bytearray(_seed("n")), [0.5, -0.5], [np.int64(2), 1], np.int32(5), 0.5)  # type: ignore[arg-type]
    b = ChallengeLayout(_seed("n"), (0.5, -0.5), (2, 1), 5, 0.5)
    assert a == b and hash(a) == hash(b)
    assert type(a.seed) is bytes and type(a.pairs_per_node[0]) is int and type(a.n_items) is int


def test_plan_layout_interleaves_the_nodes_and_skips_empty_ones() -> None:
    counts = (0, 2, 0, 3, 0)  # positions: node 1 at 1/4, 3/4; node 3 at 1/6, 1/2, 5/6
    np.testing.assert_array_equal(node_of_pair(counts), [3, 1, 3, 1, 3])
    np.testing.assert_array_equal(
        rho_of_pair((0.1, 0.2, 0.3, 0.4, 0.5), counts), [0.4, 0.2, 0.4, 0.2, 0.4]
    )
    # equal positions (1/4 = 3/12) go to the lower node index
    np.testing.assert_array_equal(node_of_pair((2, 6)), [1, 0, 1, 1, 1, 0, 1, 1])
    assert node_of_pair(()).dtype == np.int64 and node_of_pair(()).shape == (0,)


SEED = _seed("refusals")
REFUSALS = [
    ({"seed": bytes(31)}, "challenge seed must be 32 bytes, got 31"),
    ({"seed": "x" * 32}, "challenge seed must be 32 bytes, got str"),
    ({"p": 1.0}, "p must lie strictly between 0 and 1, got 1.0"),
    ({"p": float("nan")}, "p must lie strictly between 0 and 1, got nan"),
    ({"nodes": (), "counts": ()}, "plan has no nodes"),
    ({"counts": (1, 2)}, "plan has 3 nodes but 2 pair counts"),
    ({"nodes": (0.0, 1.5, 0.1)}, "nodes[1]: rho must lie in [-1, 1] for p=0.5, got 1.5"),
    ({"nodes": (0.0, float("inf"), 0.1)}, "nodes[1]: rho must be finite, got inf"),
    ({"nodes": (float("nan"), 0.0, 0.1)}, "nodes[0]: rho must be finite, got nan"),
    (
        {"p": 0.3, "nodes": (0.0, -0.5, 0.1)},
        "nodes[1]: rho must lie in [-0.428571, 1] for p=0.3, got -0.5",
    ),
    ({"counts": (1, -1, 1)}, "pairs_per_node[1] must be >= 0, got -1"),
    ({"counts": (1, True, 1)}, "pairs_per_node[1] must be an integer, got True"),
    ({"counts": (1, 2.0, 1)}, "pairs_per_node[1] must be an integer, got 2.0"),
    ({"counts": (0, 0, 0)}, "plan has no pairs"),
    ({"n_items": 0}, "n_items must be >= 1, got 0"),
    ({"n_items": 2.5}, "n_items must be an integer, got 2.5"),
]


@pytest.mark.parametrize(("change", "message"), REFUSALS)
def test_malformed_layouts_are_refused(change: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "seed": SEED,
        "nodes": (0.0, 0.5, 0.1),
        "counts": (1, 2, 3),
        "n_items": 4,
        "p": 0.5,
    }
    args.update(change)
    with pytest.raises(InvalidArgument) as err:
        ChallengeLayout(
            args["seed"],  # type: ignore[arg-type]
            args["nodes"],  # type: ignore[arg-type]
            args["counts"],  # type: ignore[arg-type]
            args["n_items"],  # type: ignore[arg-type]
            args["p"],  # type: ignore[arg-type]
        )
    assert str(err.value) == message
    if "n_items" not in change:  # the Prover's plan refuses the same way
        with pytest.raises(InvalidArgument) as err:
            ChallengePlan(
                seed=args["seed"],  # type: ignore[arg-type]
                p=args["p"],  # type: ignore[arg-type]
                nodes=args["nodes"],  # type: ignore[arg-type]
                pairs_per_node=args["counts"],  # type: ignore[arg-type]
            )
        assert str(err.value) == message
        with pytest.raises(InvalidArgument) as err:
            check_challenge(args["seed"], args["nodes"], args["counts"], args["p"])  # type: ignore[arg-type]
        assert str(err.value) == message


@pytest.mark.parametrize("bad", [-1, 12, 100])
def test_out_of_range_indices_are_refused(bad: int) -> None:
    layout = ChallengeLayout(SEED, (0.0, 0.5), (2, 4), 4, 0.5)  # 6 pairs, 12 points
    points = np.array([0, bad], dtype=np.int64)
    with pytest.raises(InvalidArgument, match=rf"point index {bad} is out of range \[0, 12\)"):
        layout.points(points)
    with pytest.raises(InvalidArgument, match=rf"point index {bad} is out of range \[0, 12\)"):
        retrain.challenge_points(SEED, points, n_items=4, p=0.5, rho_of_pair=layout.rho_of_pair())
    if bad >= 6 or bad < 0:
        with pytest.raises(InvalidArgument, match=rf"pair index {bad} is out of range \[0, 6\)"):
            layout.pairs(np.array([bad]))
    with pytest.raises(InvalidArgument, match="must be a 1-D integer array"):
        layout.points(np.array([0.5]))


def test_rho_of_pair_needs_one_count_per_node() -> None:
    with pytest.raises(InvalidArgument, match="plan has 2 nodes but 1 pair counts"):
        rho_of_pair((0.0, 0.5), (3,))
    with pytest.raises(InvalidArgument, match=r"pairs_per_node\[0\] must be >= 0, got -2"):
        node_of_pair((-2,))


@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=7))
def test_every_prefix_is_a_proportional_sample_of_the_nodes(counts: list[int]) -> None:
    """``m K_j / n`` pairs of node j among the first m, to within ``(1 + J K_j / n) / 2``."""
    if sum(counts) == 0:
        return
    node = node_of_pair(counts)
    n = len(node)
    seen = np.cumsum(node[:, None] == np.arange(len(counts))[None, :], axis=0)
    m = np.arange(1, n + 1)[:, None]
    share = np.asarray(counts)[None, :] / n
    assert np.all(np.abs(seen - m * share) <= (1.0 + len(counts) * share) / 2.0 + 1e-9)
    np.testing.assert_array_equal(seen[-1], counts)
