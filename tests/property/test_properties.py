"""Hypothesis properties: sampling marginals and correlations, PRG determinism and
seed sensitivity, planner monotonicity in epsilon.

Statistical properties use 40,000 draws per example; marginals have 6-sigma
tolerances, correlations Bernstein bounds with the exact variance and range of
a product (false failure < 2e-9 per check; hypothesis runs derandomized in CI).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from protocol.hypercube import (
    bias_moments,
    mask_to_pm,
    partner_probabilities,
    pm_to_mask,
    rho_max,
    sample_bp,
    sample_partner,
)
from protocol.plan import PlanRequest, make_plan
from protocol.prg import expand_pairs

ps = st.sampled_from([0.2, 0.3, 0.5, 0.7, 0.85])
rho_fracs = st.floats(min_value=-1.0, max_value=1.0)
DRAWS = 40_000


def _rho(p: float, frac: float) -> float:
    return frac if frac >= 0 else frac * rho_max(p)


def _product_law(p: float, rho: float) -> tuple[float, float]:
    """Exact variance and largest ``|phi(x) phi(y) - rho|`` of one coordinate's product."""
    mu, sigma = bias_moments(p)
    q_minus, q_plus = partner_probabilities(p, rho)
    phi = {1: (1 - mu) / sigma, -1: (-1 - mu) / sigma}
    law = {(1, 1): p * q_plus, (1, -1): p * (1 - q_plus),
           (-1, 1): (1 - p) * q_minus, (-1, -1): (1 - p) * (1 - q_minus)}  # fmt: skip
    second = sum(w * (phi[a] * phi[b]) ** 2 for (a, b), w in law.items())
    reach = max(abs(phi[a] * phi[b] - rho) for (a, b), w in law.items() if w > 0)
    return max(second - rho * rho, 0.0), reach


def _check_marginal_and_correlation(x: np.ndarray, y: np.ndarray, p: float, rho: float) -> None:
    mu, sigma = bias_moments(p)
    n = x.shape[0]
    for arr in (x, y):
        freq = (arr > 0).mean(axis=0)
        assert np.all(np.abs(freq - p) <= 6 * math.sqrt(p * (1 - p) / n))
    corr = (((x - mu) / sigma) * ((y - mu) / sigma)).mean(axis=0)
    # Bernstein's inequality with the exact variance and range of one product, at
    # 2e-9: valid also near rho = +-1, where a pair rarely differs and an empirical
    # standard deviation is often exactly 0.
    variance, reach = _product_law(p, rho)
    log_term = math.log(2 / 2e-9)
    tolerance = math.sqrt(2 * variance * log_term / n) + 2 * reach * log_term / (3 * n)
    assert np.all(np.abs(corr - rho) <= tolerance + 1e-12), (corr, rho, tolerance)


@given(p=ps, frac=rho_fracs, seed=st.integers(0, 2**32 - 1))
def test_partner_sampling_marginals_and_correlation(p: float, frac: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rho = _rho(p, frac)
    x = sample_bp(rng, DRAWS, 3, p)
    y = sample_partner(rng, x, p, rho)
    _check_marginal_and_correlation(x.astype(float), y.astype(float), p, rho)


@given(p=ps, frac=rho_fracs, seed=st.binary(min_size=32, max_size=32))
def test_prg_pairs_marginals_and_correlation(p: float, frac: float, seed: bytes) -> None:
    rho = _rho(p, frac)
    pairs = expand_pairs(seed, np.arange(DRAWS // 8), 8, p, np.full(DRAWS // 8, rho))
    _check_marginal_and_correlation(
        pairs.first.reshape(-1, 1).astype(float),
        pairs.second.reshape(-1, 1).astype(float),
        p,
        rho,
    )


@given(seed=st.binary(min_size=32, max_size=32), k=st.integers(0, 2**62), p=ps)
def test_prg_is_deterministic_and_seed_sensitive(seed: bytes, k: int, p: float) -> None:
    a = expand_pairs(seed, [k], 64, p, [0.5])
    b = expand_pairs(seed, [k], 64, p, [0.5])
    assert np.array_equal(a.first, b.first) and np.array_equal(a.second, b.second)
    assert a.first_seeds[0] == b.first_seeds[0]
    flipped = bytes([seed[0] ^ 1]) + seed[1:]
    c = expand_pairs(flipped, [k], 64, p, [0.5])
    d = expand_pairs(seed, [k + 1], 64, p, [0.5])
    # 64 coordinates and a 64-bit seed: equality by chance has probability < 2^-64.
    assert a.first_seeds[0] != c.first_seeds[0] and a.first_seeds[0] != d.first_seeds[0]


@given(mask=st.lists(st.booleans(), min_size=1, max_size=50))
def test_encodings_round_trip(mask: list[bool]) -> None:
    m = np.array(mask)
    assert np.array_equal(pm_to_mask(mask_to_pm(m)), m)
    assert np.array_equal(mask_to_pm(m.astype(int)), 2 * m.astype(np.int8) - 1)


@given(
    eps=st.floats(min_value=0.05, max_value=1.0),
    shrink=st.floats(min_value=0.3, max_value=0.95),
    mode=st.sampled_from(["committed", "paper"]),
    planning=st.sampled_from(["rigorous", "practical"]),
    z=st.integers(1, 64),
)
def test_smaller_epsilon_never_means_less_work(
    eps: float, shrink: float, mode: str, planning: str, z: int
) -> None:
    estimator = "chebyshev" if mode == "committed" else "three-point"
    common = dict(
        delta=0.05,
        bound=1.0,
        n_outputs=z,
        mode=mode,
        planning=planning,
        estimator=estimator,
        variance=0.3 if planning == "practical" else None,
        attribution_bound=1.0,
    )
    big = make_plan(PlanRequest(epsilon=eps, **common))  # type: ignore[arg-type]
    small = make_plan(PlanRequest(epsilon=eps * shrink, **common))  # type: ignore[arg-type]
    assert small.prover_evaluations >= big.prover_evaluations
    assert small.spot_checks >= big.spot_checks
    assert small.verifier_retrainings >= big.verifier_retrainings
