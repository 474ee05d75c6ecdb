"""The U-statistic liar, greedy and exact, against the Verifier's corruption bound."""

from __future__ import annotations

import numpy as np
import pytest

from protocol import ustatistic as us
from protocol.hypercube import sample_bp
from prover.adversaries.ustat_liar import exact_lies, ustat_lies


def _u(x: np.ndarray, v: np.ndarray, p: float) -> np.ndarray:
    return us.ustatistic(v, us.row_sums(us.features(x, p), v))


@pytest.mark.parametrize(("p", "ell"), [(0.5, 1), (0.5, 2), (0.3, 2), (0.3, 3)])
def test_the_bound_covers_the_exact_worst_lies_on_tiny_challenges(p: float, ell: int) -> None:
    """Every set of l points and every vertex value: the lowest U stays within the bound."""
    rng = np.random.default_rng(int(100 * p) + ell)
    n, n_items, c = 12, 6, 1.5
    x = sample_bp(rng, n, n_items, p)
    phi = us.features(x, p)
    honest = np.clip(rng.normal(size=(n, 1)) + 0.8 * phi[:, 1:2], -c, c)
    lowest, sent = exact_lies(x, honest, p, c, ell)
    drop = float(_u(x, honest, p)[0]) - lowest
    assert drop > 0  # lying lowers U
    h = us.row_sums(phi, sent)
    norms = np.einsum("ij,ij->i", phi, phi)
    kappa = us.kernel_bound(n, n_items, p, 0.01)
    gram = us.sparse_gram_bound(ell, n, n_items, p, 0.01)
    cross = us.cross_bound(ell, np.array([c]), kappa, gram, float(norms.min()))
    bound = float(us.corruption_bound(h, sent, ell, np.array([c]), cross)[0])
    assert drop <= bound
    greedy = ustat_lies(x, honest, p, np.array([c]), ell)
    assert greedy.points.size <= ell
    assert lowest <= float(_u(x, np.clip(greedy.residuals, -c, c), p)[0]) + 1e-12


def test_greedy_lies_lower_u_and_touch_at_most_n_lies_points() -> None:
    rng = np.random.default_rng(3)
    n, n_items, p = 400, 30, 0.5
    x = sample_bp(rng, n, n_items, p)
    phi = us.features(x, p)
    honest = rng.normal(size=(n, 2)) + 0.5 * phi[:, 1:3]
    clip = np.array([2.0, 2.0])
    before = _u(x, np.clip(honest, -clip, clip), p)
    lies = ustat_lies(x, honest, p, clip, 25)
    after = _u(x, np.clip(lies.residuals, -clip, clip), p)
    assert lies.points.size <= 25
    assert np.all(after < before)
    changed = np.flatnonzero(np.any(lies.residuals != honest, axis=1))
    assert set(changed) <= set(lies.points.tolist())
