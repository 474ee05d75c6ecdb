"""protocol.ustatistic against exact enumeration of small cubes, and its bounds against attacks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from protocol import ustatistic as us
from protocol.fourier import degree_weights, fourier_coefficients
from protocol.hypercube import sample_bp


def _cube(n_items: int) -> np.ndarray:
    """Every point of {-1, 1}^N in protocol.fourier's order (bit i set iff x_i = +1)."""
    k = np.arange(2**n_items)[:, None]
    return np.where((k >> np.arange(n_items)) & 1, 1, -1).astype(np.int8)


def _probabilities(x: np.ndarray, p: float) -> np.ndarray:
    plus = (x > 0).sum(axis=1)
    return np.asarray(p**plus * (1 - p) ** (x.shape[1] - plus))


def _err_by_least_squares(f: np.ndarray, g: np.ndarray, x: np.ndarray, p: float) -> float:
    """err(a) = E[(f - g_a)^2] - min_b E[(f - g_b)^2], by weighted least squares over the cube."""
    w = _probabilities(x, p)
    design = np.hstack([np.ones((len(x), 1)), x.astype(np.float64)])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], f * sw, rcond=None)
    best = float(w @ (f - design @ coef) ** 2)
    return float(w @ (f - g) ** 2) - best


def _brute_u(v: np.ndarray, phi: np.ndarray) -> np.ndarray:
    k = phi @ phi.T
    np.fill_diagonal(k, 0.0)
    n = len(v)
    return np.asarray(np.einsum("iz,ij,jz->z", v, k, v) / (n * (n - 1)))


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_features_are_orthonormal_under_bp(p: float) -> None:
    x = _cube(5)
    phi = us.features(x, p)
    gram = (phi * _probabilities(x, p)[:, None]).T @ phi
    np.testing.assert_allclose(gram, np.eye(6), atol=1e-12)


def test_row_sums_and_u_match_the_double_sum() -> None:
    rng = np.random.default_rng(1)
    x = sample_bp(rng, 40, 7, 0.3)
    v = rng.normal(size=(40, 3))
    phi = us.features(x, 0.3)
    h = us.row_sums(phi, v)
    k = phi @ phi.T
    np.fill_diagonal(k, 0.0)
    np.testing.assert_allclose(h, k @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(us.ustatistic(v, h), _brute_u(v, phi), rtol=1e-12)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_expectation_is_err_at_every_degree(p: float) -> None:
    """E[U] over all pairs of cube points = err(a), computed by least squares (no degree bias)."""
    n_items = 5
    x = _cube(n_items)
    rng = np.random.default_rng(2)
    f = rng.normal(size=len(x)) + 3.0 * np.prod(x[:, :3], axis=1)  # large degree-3 weight
    g = 0.1 + x.astype(np.float64) @ rng.normal(scale=0.3, size=n_items)
    r = f - g
    phi = us.features(x, p)
    w = _probabilities(x, p)
    k = phi @ phi.T
    expected_u = float(np.einsum("i,j,i,j,ij->", w, w, r, r, k))  # E over independent pairs
    assert expected_u == pytest.approx(_err_by_least_squares(f, g, x, p), rel=1e-10)
    weights = degree_weights(fourier_coefficients(r[:, None], p))[:, 0]
    assert expected_u == pytest.approx(weights[0] + weights[1], rel=1e-10)
    assert weights[3] > 1.0  # the residual's weight above degree 2 is large


def test_variance_formula_matches_exact_enumeration() -> None:
    """Var U over every triple of cube points = [4 (n-2) zeta1 + 2 zeta2] / (n (n-1)), n = 3."""
    n_items, p, n = 3, 0.3, 3
    x = _cube(n_items)
    rng = np.random.default_rng(3)
    r = rng.normal(size=len(x)) + 0.7 * x[:, 0]
    phi = us.features(x, p)
    w = _probabilities(x, p)
    kern = (phi @ phi.T) * r[:, None] * r[None, :]
    mean = float(w @ kern @ w)
    h1 = kern @ w
    zeta1 = float(w @ (h1 - mean) ** 2)
    zeta2 = float(w @ ((kern - mean) ** 2) @ w)
    moments = np.zeros(2)
    m = len(x)
    for i, j, k in itertools.product(range(m), repeat=3):
        u = (kern[i, j] + kern[i, k] + kern[j, k]) / 3.0  # 2 sum_{a<b} / (n (n-1))
        weight = w[i] * w[j] * w[k]
        moments += weight * np.array([u, u * u])
    assert moments[0] == pytest.approx(mean, rel=1e-10)
    exact_var = moments[1] - moments[0] ** 2
    assert float(us.variance(n, zeta1, zeta2)) == pytest.approx(exact_var, rel=1e-10)


def test_clipping_tail_bounds_what_clipping_removed() -> None:
    """err <= (|E[clip(r) phi]| + sqrt(E[(|r| - c)_+^2]))^2, exactly, on a heavy-tailed residual."""
    n_items, p = 6, 0.3
    x = _cube(n_items)
    rng = np.random.default_rng(4)
    r = rng.standard_t(2, size=len(x)) + 2.0 * (x[:, 1] > 0)
    phi = us.features(x, p)
    w = _probabilities(x, p)
    err = float(np.sum((w @ (r[:, None] * phi)) ** 2))
    for c in (0.5, 1.0, 2.0, 5.0):
        v = np.clip(r, -c, c)
        clipped = float(np.sum((w @ (v[:, None] * phi)) ** 2))
        tail = float(w @ np.maximum(np.abs(r) - c, 0.0) ** 2)
        assert err <= float(us.certified_bound(clipped, tail)) * (1 + 1e-12)
        assert clipped <= float(us.certified_bound(err, tail)) * (1 + 1e-12)


def test_kernel_bound_holds_on_random_points() -> None:
    rng = np.random.default_rng(5)
    for p in (0.5, 0.3, 0.1):
        x = sample_bp(rng, 300, 50, p)
        phi = us.features(x, p)
        k = phi @ phi.T
        np.fill_diagonal(k, 0.0)
        assert np.abs(k).max() <= us.kernel_bound(300, 50, p, 0.05)


def _greedy_attack(v: np.ndarray, phi: np.ndarray, ell: int, c: float) -> np.ndarray:
    """Alter ``ell`` values (within the clip) to lower U as far as one greedy pass can."""
    sent = v.copy()
    for _ in range(ell):
        h = us.row_sums(phi, sent)[:, 0]
        best, best_gain, best_value = -1, -math.inf, 0.0
        for i in np.argsort(-np.abs(h))[: 4 * ell + 4]:
            value = -c * np.sign(h[i]) if h[i] != 0 else c
            gain = 2.0 * (sent[i, 0] - value) * h[i]
            if gain > best_gain:
                best, best_gain, best_value = int(i), gain, float(value)
        sent[best, 0] = best_value
    return sent


@pytest.mark.parametrize("ell", [1, 3, 10])
def test_corruption_bound_holds_against_altered_values(ell: int) -> None:
    rng = np.random.default_rng(6 + ell)
    n, n_items, p, c = 200, 30, 0.5, 2.0
    x = sample_bp(rng, n, n_items, p)
    phi = us.features(x, p)
    honest = np.clip(rng.normal(size=(n, 1)) + 0.4 * phi[:, 1:2], -c, c)
    u_honest = float(us.ustatistic(honest, us.row_sums(phi, honest))[0])
    kappa = us.kernel_bound(n, n_items, p, 0.01)
    attacks = [_greedy_attack(honest, phi, ell, c)]
    for _ in range(20):  # random sets, random values within the clip
        sent = honest.copy()
        idx = rng.choice(n, size=ell, replace=False)
        sent[idx, 0] = rng.uniform(-c, c, size=ell)
        attacks.append(sent)
    for sent in attacks:
        h = us.row_sums(phi, sent)
        drop = u_honest - float(us.ustatistic(sent, h)[0])
        norms = np.einsum("ij,ij->i", phi, phi)
        gram = us.sparse_gram_bound(ell, n, n_items, p, 0.01)
        for k, g in ((kappa, math.inf), (math.inf, gram)):  # each cross bound on its own
            cross = us.cross_bound(ell, np.array([c]), k, g, float(norms.min()))
            bound = float(us.corruption_bound(h, sent, ell, np.array([c]), cross)[0])
            assert drop <= bound
    # the greedy attack does move U, so the bound is not vacuous
    greedy = attacks[0]
    assert u_honest - float(us.ustatistic(greedy, us.row_sums(phi, greedy))[0]) > 0


def test_sparse_gram_bound_holds_for_the_worst_signs_of_small_sets() -> None:
    """Exhaustive over every 3-point set and sign pattern of 14 random points."""
    rng = np.random.default_rng(10)
    for p in (0.5, 0.25):
        x = sample_bp(rng, 14, 30, p)
        phi = us.features(x, p)
        worst = 0.0
        for a in itertools.combinations(range(14), 3):
            for signs in itertools.product((-1.0, 1.0), repeat=3):
                worst = max(worst, float(np.sum((np.asarray(signs) @ phi[list(a)]) ** 2)))
        assert worst <= us.sparse_gram_bound(3, 14, 30, p, 0.05)


def test_tolerance_bound_holds_against_shifted_values() -> None:
    rng = np.random.default_rng(8)
    n, n_items, p, tau = 300, 20, 0.3, 0.05
    x = sample_bp(rng, n, n_items, p)
    phi = us.features(x, p)
    honest = rng.normal(size=(n, 2))
    u_honest = us.ustatistic(honest, us.row_sums(phi, honest))
    eigen = us.kernel_pass(x, p, honest).eigen  # lambda_max(Phi^T Phi)
    for _ in range(10):
        h = us.row_sums(phi, honest)
        sent = honest - tau * np.sign(h) * rng.uniform(0.5, 1.0, size=h.shape)
        hs = us.row_sums(phi, sent)
        drop = u_honest - us.ustatistic(sent, hs)
        assert np.all(drop <= us.tolerance_bound(np.abs(hs), tau, eigen))
        assert np.all(
            drop
            <= us.tolerance_bound(
                np.abs(hs), tau, eigen, clip=np.ones(2), tolerated=3, gram=1e3, diag_max=30.0
            )
        )
        assert np.all(drop > 0)


def test_spot_checks_catch_more_than_the_tolerated() -> None:
    n, ell, delta = 5000, 40, 0.01
    k = us.spot_checks_for(n, ell, delta)
    miss = math.comb(n - ell - 1, k) / math.comb(n, k)  # exact, without replacement
    assert miss <= delta
    assert math.comb(n - ell - 1, k - 1) / math.comb(n, k - 1) > delta  # the fewest that do


def test_tolerated_for_inverts_spot_checks_for() -> None:
    n, delta = 8000, 0.015
    for ell in (0, 1, 5, 40, 300):
        k = us.spot_checks_for(n, ell, delta)
        assert us.tolerated_for(n, k, delta) == ell
        assert us.tolerated_for(n, k - 1, delta) > ell
    assert us.tolerated_for(n, 0, delta) == n


def test_sampling_deviation_covers_u_at_the_planned_level() -> None:
    """U - E[U] stays below its deviation (observed variance) in about 1 - delta of draws."""
    rng = np.random.default_rng(9)
    n, n_items, p, reps, delta = 400, 40, 0.5, 400, 0.1
    theta = rng.normal(scale=0.1, size=n_items)
    misses = 0
    for _ in range(reps):
        x = sample_bp(rng, n, n_items, p)
        phi = us.features(x, p)
        v = (phi[:, 1:] @ theta + rng.normal(size=n))[:, None]
        h = us.row_sums(phi, v)
        u = float(us.ustatistic(v, h)[0])
        zeta1 = float(np.var(v * h / (n - 1), ddof=1))
        zeta2 = float(us.kernel_second_moment(phi, v)[0])
        dev = float(us.deviation(us.variance(n, zeta1, zeta2), delta))
        misses += (float(theta @ theta) - u) > dev
    assert misses / reps <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)
