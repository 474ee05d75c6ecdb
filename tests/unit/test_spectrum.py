"""protocol.spectrum against exact enumeration of small cubes."""

from __future__ import annotations

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.fourier import degree_weights, fourier_coefficients, noise_stability
from protocol.hypercube import sample_bp
from protocol.spectrum import Curve, degree_fit, degree_one_ustatistic, weight_bounds

RHOS = (1.0, 0.95, 0.85, 0.7, 0.5, 0.25, -0.5)


def _index(x: np.ndarray) -> np.ndarray:
    """Cube index of pm-encoded rows: bit i set iff x_i = +1 (protocol.fourier's order)."""
    return np.asarray(((x > 0).astype(np.int64) << np.arange(x.shape[1])).sum(axis=1))


def test_ustatistic_is_unbiased_for_degree_zero_and_one_weight() -> None:
    """Mean over replicates = exact B_0 + B_1 of the seed-averaged function; the error is honest."""
    n_items, p, n, reps = 6, 0.3, 60, 600
    rng = np.random.default_rng(7)
    values = rng.normal(size=(2**n_items, 2)) + np.array([0.5, -0.2])
    exact = degree_weights(fourier_coefficients(values, p))[:2].sum(axis=0)
    estimates, errors = [], []
    for _ in range(reps):
        x = sample_bp(rng, n, n_items, p)
        q = values[_index(x)] + rng.uniform(-1.0, 1.0, size=(n, 2))  # independent seed noise
        u, err = degree_one_ustatistic(x, q, p, groups=10)
        estimates.append(u)
        errors.append(err)
    est = np.asarray(estimates)
    spread = est.std(axis=0, ddof=1)
    assert np.all(np.abs(est.mean(axis=0) - exact) < 4 * spread / np.sqrt(reps)), (
        est.mean(axis=0),
        exact,
    )
    ratio = np.mean(errors, axis=0) / spread  # the jackknife error tracks the real spread
    assert np.all((ratio > 0.7) & (ratio < 1.5)), ratio


def test_weight_bounds_contain_the_exact_weights() -> None:
    n_items, p = 8, 0.5
    values = np.random.default_rng(3).normal(size=(2**n_items, 3))
    truth = degree_weights(fourier_coefficients(values, p))
    for z in range(3):
        curve = Curve(
            RHOS,
            tuple(float(noise_stability(values[:, z], p, r)) for r in RHOS),
            (1e-3,) * len(RHOS),
        )
        lo, hi = weight_bounds(curve, "tail")
        assert lo <= truth[3:, z].sum() <= hi
        lo, hi = weight_bounds(curve, (0, 1))
        assert lo <= truth[:2, z].sum() <= hi


def test_a_measured_degree_three_weight_is_proved() -> None:
    """A pure degree-3 function: the curve proves most of its weight lies above degree 2."""
    n_items, p = 8, 0.5
    x = np.array([[1 if (i >> k) & 1 else -1 for k in range(n_items)] for i in range(2**n_items)])
    values = (x[:, 0] * x[:, 1] * x[:, 2] + x[:, 3] * x[:, 4] * x[:, 5]).astype(np.float64)
    curve = Curve(RHOS, tuple(float(noise_stability(values, p, r)) for r in RHOS), (0.01,) * 7)
    lo, hi = weight_bounds(curve, "tail")
    assert 1.5 < lo <= 2.0 <= hi
    lo, hi = weight_bounds(curve, (0, 1))
    assert lo == pytest.approx(0.0, abs=1e-9) and hi < 0.2


def test_degree_fit_recovers_an_exact_low_degree_spectrum() -> None:
    n_items, p = 8, 0.5
    x = np.array([[1 if (i >> k) & 1 else -1 for k in range(n_items)] for i in range(2**n_items)])
    values = 0.5 + 0.7 * x[:, 0] - 0.4 * x[:, 1] * x[:, 2] + 0.3 * x[:, 3] * x[:, 4] * x[:, 5]
    truth = degree_weights(fourier_coefficients(values.astype(np.float64), p))
    curve = Curve(RHOS, tuple(float(noise_stability(values, p, r)) for r in RHOS), (1e-4,) * 7)
    weights, above, chi2 = degree_fit(curve, 3)
    np.testing.assert_allclose(weights, truth[:4], atol=1e-6)
    assert above == pytest.approx(0.0, abs=1e-6) and chi2 < 1e-6
    _, _, chi2_two = degree_fit(curve, 2)
    assert chi2_two > 100.0  # degree 3 is needed


def test_a_curve_no_spectrum_fits_is_refused() -> None:
    rhos = (1.0, 0.5)
    with pytest.raises(InvalidArgument, match="no non-negative spectrum"):
        weight_bounds(Curve(rhos, (0.2, 0.9), (0.01, 0.01)), "tail")  # C(1/2) > C(1)


@pytest.mark.parametrize(
    ("curve", "degrees", "message"),
    [
        (lambda: Curve((1.0, 0.5), (1.0,), (0.1, 0.1)), "tail", "as many values"),
        (lambda: Curve((1.5,), (1.0,), (0.1,)), "tail", "rho must lie"),
        (lambda: Curve((1.0,), (1.0,), (-0.1,)), "tail", "standard errors"),
        (lambda: Curve((1.0,), (1.0,), (0.1,)), "head", "'tail' or a set"),
        (lambda: Curve((1.0,), (1.0,), (0.1,)), (200,), "degrees must lie"),
    ],
)
def test_bad_input_is_refused(curve: object, degrees: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        weight_bounds(curve(), degrees)  # type: ignore[operator, arg-type]
