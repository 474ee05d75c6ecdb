"""Exact-enumeration ground truth (N <= 12, p in {0.2, 0.5, 0.7}).

Proves on arbitrary functions of the cube (every degree present): the
noise-stability identity for positive and negative rho, the optimal datamodel
formula, err(a) = degree<=1 weight of f - g_a = mse(g_a) - B_{>=2}, and that
each estimator's exact expectation equals its target within its stated bias.
"""

from __future__ import annotations

import numpy as np
import pytest

from protocol.estimators import (
    NodeFunctional,
    chebyshev_functional,
    functional_from_nodes,
    three_point_functional,
)
from protocol.fourier import (
    cube_points,
    cube_probabilities,
    degree_weights,
    exact_err,
    fourier_coefficients,
    noise_stability,
    optimal_datamodel,
)
from protocol.hypercube import bias_moments, rho_max
from protocol.synthetic import PlantedSpectrum, SyntheticFunction
from tests.conftest import EXACT_ATOL, EXACT_RTOL

P_VALUES = [0.2, 0.5, 0.7]
N_ITEMS = 9


def _random_function(p: float, n_items: int = N_ITEMS, outputs: int = 2) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([int(p * 1000), n_items]))
    x = cube_points(n_items).astype(np.float64)
    # Nonlinear in x: every degree carries weight.
    lin = x @ rng.normal(size=(n_items, outputs))
    return np.tanh(lin) + 0.3 * np.sin(3 * lin) + 0.2 * rng.normal(size=(2**n_items, outputs))


@pytest.mark.parametrize("p", P_VALUES)
def test_parseval_and_inverse(p: float) -> None:
    f = _random_function(p)
    pi = cube_probabilities(N_ITEMS, p)
    w = degree_weights(fourier_coefficients(f, p))
    np.testing.assert_allclose(w.sum(axis=0), pi @ f**2, rtol=EXACT_RTOL)
    assert np.isclose(pi.sum(), 1.0)


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("sign", [+1.0, -1.0])
def test_noise_stability_identity(p: float, sign: float) -> None:
    f = _random_function(p)
    b = degree_weights(fourier_coefficients(f, p))
    for frac in (0.25, 0.6, 1.0):
        rho = frac if sign > 0 else -frac * rho_max(p)
        expected = (b * rho ** np.arange(N_ITEMS + 1)[:, None]).sum(axis=0)
        np.testing.assert_allclose(noise_stability(f, p, rho), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("p", P_VALUES)
def test_optimal_datamodel_is_the_least_squares_minimiser(p: float) -> None:
    f = _random_function(p)[:, 0]
    x = cube_points(N_ITEMS).astype(np.float64)
    pi = cube_probabilities(N_ITEMS, p)
    design = np.hstack([np.ones((len(x), 1)), x]) * np.sqrt(pi)[:, None]
    lstsq, *_ = np.linalg.lstsq(design, f * np.sqrt(pi), rcond=None)
    theta0, theta = optimal_datamodel(f, p)
    np.testing.assert_allclose(theta0, lstsq[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(theta, lstsq[1:], rtol=1e-8, atol=1e-10)
    # theta_i = (E[f | x_i=+1] - E[f | x_i=-1]) / 2
    for i in range(N_ITEMS):
        plus, minus = x[:, i] > 0, x[:, i] < 0
        diff = (pi[plus] @ f[plus] / pi[plus].sum() - pi[minus] @ f[minus] / pi[minus].sum()) / 2
        assert theta[i] == pytest.approx(diff, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("p", P_VALUES)
def test_err_is_low_degree_weight_of_residual(p: float) -> None:
    f = _random_function(p)[:, 0]
    x = cube_points(N_ITEMS).astype(np.float64)
    pi = cube_probabilities(N_ITEMS, p)
    w = degree_weights(fourier_coefficients(f, p))
    b_ge2 = float(w[2:].sum())
    rng = np.random.default_rng(3)
    theta0, theta = optimal_datamodel(f, p)
    mse_opt = float(pi @ (f - theta0 - x @ theta) ** 2)
    assert mse_opt == pytest.approx(b_ge2, rel=EXACT_RTOL)
    assert exact_err(f, p, float(theta0), theta) == pytest.approx(0.0, abs=EXACT_ATOL)
    for _ in range(5):
        a0, a = rng.normal(), rng.normal(size=N_ITEMS)
        mse = float(pi @ (f - a0 - x @ a) ** 2)
        assert exact_err(f, p, a0, a) == pytest.approx(mse - b_ge2, rel=1e-9, abs=1e-12)
        assert exact_err(f, p, a0, a) >= 0


@pytest.mark.parametrize("p", P_VALUES)
def test_synthetic_closed_forms_match_enumeration(p: float) -> None:
    spec = PlantedSpectrum(
        n_items=N_ITEMS,
        p=p,
        degree_weights=(0.3, 0.5, 0.2, 0.1, 0.05),
        terms_per_degree=(1, 6, 8, 5, 3),
        n_outputs=2,
        structure_seed=11,
    )
    fn = SyntheticFunction.from_spec(spec)
    x = cube_points(N_ITEMS)
    vals = fn.mean_output(x)
    w = degree_weights(fourier_coefficients(vals, p))
    np.testing.assert_allclose(w[:5].T, fn.degree_weights(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w[5:], 0.0, atol=1e-12)
    assert np.abs(vals).max() <= fn.bound
    theta0, theta = fn.optimal_attribution()
    rng = np.random.default_rng(5)
    a0, a = theta0 + rng.normal(size=2) * 0.1, theta + rng.normal(size=theta.shape) * 0.1
    for z in range(2):
        assert optimal_datamodel(vals[:, z], p)[0] == pytest.approx(theta0[z], abs=1e-10)
        np.testing.assert_allclose(optimal_datamodel(vals[:, z], p)[1], theta[z], atol=1e-10)
        assert fn.err(a0, a)[z] == pytest.approx(exact_err(vals[:, z], p, a0[z], a[z]), rel=1e-9)


def _functionals(p: float) -> list[NodeFunctional]:
    neg = rho_max(p)
    return [
        three_point_functional(0.2),
        chebyshev_functional(0.5, 4, lower=-min(0.5, neg)),
        chebyshev_functional(0.9, 6, lower=-min(0.9, neg)),
        functional_from_nodes([-0.5 * neg, 0.0, 0.3, 0.6], name="custom"),
    ]


@pytest.mark.parametrize("p", P_VALUES)
def test_estimator_expectations_within_stated_bias(p: float) -> None:
    """E[sum_j w_j yy'] = B_0 + B_1 + bias, bias within bias_range(B_{>D}); same for err."""
    f = _random_function(p)[:, 0]
    w = degree_weights(fourier_coefficients(f, p))
    x = cube_points(N_ITEMS).astype(np.float64)
    rng = np.random.default_rng(9)
    a0, a = rng.normal(), rng.normal(size=N_ITEMS) * 0.2
    q = f - a0 - x @ a
    err = exact_err(f, p, a0, a)
    for fn in _functionals(p):
        tail = float(w[fn.degree + 1 :].sum())
        lo, hi = fn.bias_range(tail)
        # Residual estimator: E[mean(y^2)] - E[functional] vs B_{>=2}.
        low = sum(
            wj * float(noise_stability(f, p, r))
            for wj, r in zip(fn.weights, fn.nodes, strict=False)
        )
        bias = low - float(w[0] + w[1])
        assert lo - 1e-12 <= bias <= hi + 1e-12, (fn.name, bias, lo, hi)
        # Direct gap: E[functional of q q'] vs err(a); B_k(q) = B_k(f) for k >= 2.
        gap = sum(
            wj * float(noise_stability(q, p, r))
            for wj, r in zip(fn.weights, fn.nodes, strict=False)
        )
        assert lo - 1e-12 <= gap - err <= hi + 1e-12, (fn.name, gap - err, lo, hi)


@pytest.mark.parametrize("p", P_VALUES)
def test_estimators_exact_when_spectrum_has_degree_at_most_d(p: float) -> None:
    spec = PlantedSpectrum(
        n_items=N_ITEMS, p=p, degree_weights=(0.2, 0.5, 0.3), terms_per_degree=(1, 5, 7)
    )
    vals = SyntheticFunction.from_spec(spec).mean_output(cube_points(N_ITEMS))[:, 0]
    w = degree_weights(fourier_coefficients(vals, p))
    for fn in _functionals(p):
        low = sum(
            wj * float(noise_stability(vals, p, r))
            for wj, r in zip(fn.weights, fn.nodes, strict=False)
        )
        assert low == pytest.approx(float(w[0] + w[1]), rel=1e-9, abs=1e-12)


def test_bias_moments() -> None:
    mu, sigma = bias_moments(0.2)
    assert mu == pytest.approx(-0.6) and sigma == pytest.approx(0.8)
