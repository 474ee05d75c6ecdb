"""PRG expansion against the published vectors and an independent reading of the spec."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.hypercube import pm_to_mask
from protocol.prg import PRG_VERSION, expand_pairs, expand_points

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "prg_v1.json").read_text())


def _mask(row: np.ndarray) -> str:
    return "".join("1" if m else "0" for m in pm_to_mask(row))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["seed"][:8])
def test_published_vectors(case: dict) -> None:
    assert VECTORS["version"] == PRG_VERSION
    seed = bytes.fromhex(case["seed"])
    idx = case["indices"]
    pairs = expand_pairs(seed, idx, case["n_items"], case["p"], [case["rho"]] * len(idx))
    points = expand_points(seed, idx, case["n_items"], case["p"])
    for i, want in enumerate(case["pairs"]):
        assert _mask(pairs.first[i]) == want["first_mask"]
        assert _mask(pairs.second[i]) == want["second_mask"]
        assert int(pairs.first_seeds[i]) == int(want["first_seed"])
        assert int(pairs.second_seeds[i]) == int(want["second_seed"])
    for i, want in enumerate(case["points"]):
        assert _mask(points.x[i]) == want["mask"]
        assert int(points.seeds[i]) == int(want["seed"])


def test_independent_reading_of_the_spec() -> None:
    """Re-implement docs/prg.md in plain Python (no numpy) and compare."""
    seed, n, p, rho, k = bytes(range(32)), 11, 0.3, -0.2, 5
    stream = hashlib.shake_256(b"pacda.v1.pair\x00" + seed + k.to_bytes(8, "big")).digest(
        16 + 16 * n
    )
    words = [int.from_bytes(stream[i : i + 8], "big") for i in range(0, len(stream), 8)]
    t_p = int(p * 2**53)
    x = [1 if (w >> 11) < t_p else -1 for w in words[2 : 2 + n]]
    q = {1: p + rho * (1 - p), -1: p - rho * p}
    x2 = [
        1 if (w >> 11) < int(q[xi] * 2**53) else -1
        for xi, w in zip(x, words[2 + n :], strict=False)
    ]
    got = expand_pairs(seed, [k], n, p, [rho])
    assert got.first[0].tolist() == x and got.second[0].tolist() == x2
    assert int(got.first_seeds[0]) == words[0] and int(got.second_seeds[0]) == words[1]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="challenge seed must be 32 bytes"):
        expand_pairs(b"short", [0], 4, 0.5, [0.1])
    with pytest.raises(InvalidArgument, match="need one rho per index"):
        expand_pairs(bytes(32), [0, 1], 4, 0.5, [0.1])
    with pytest.raises(InvalidArgument, match="rho must lie in"):
        expand_pairs(bytes(32), [0], 4, 0.2, [-0.5])
    with pytest.raises(InvalidArgument, match="indices must be non-negative"):
        expand_points(bytes(32), [-1], 4, 0.5)
