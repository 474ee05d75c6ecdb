"""Node functionals, allocations and the NNLS variant."""

from __future__ import annotations

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.estimators import (
    PairSample,
    chebyshev_functional,
    direct_gap,
    functional_from_nodes,
    nnls_lipschitz,
    residual_weight,
    residual_weight_nnls,
    three_point_functional,
)


def test_three_point_weights_match_closed_form() -> None:
    rho = 0.2
    f = three_point_functional(rho)
    np.testing.assert_allclose(f.weights, [1 - 3 / (2 * rho), 2 / rho, -1 / (2 * rho)], rtol=1e-12)
    # s_k = rho^(k-1) (2 - 2^(k-1)) for k >= 3: the bias is downward.
    s = f.bias_coefficients(10)
    np.testing.assert_allclose(s, [rho ** (k - 1) * (2 - 2 ** (k - 1)) for k in range(3, 11)])


@pytest.mark.parametrize("degree", [2, 4, 8])
def test_chebyshev_moments_and_allocation(degree: int) -> None:
    f = chebyshev_functional(0.7, degree)
    for k in range(degree + 1):
        moment = sum(w * r**k for w, r in zip(f.weights, f.nodes, strict=True))
        assert moment == pytest.approx(1.0 if k <= 1 else 0.0, abs=1e-9)
    counts = np.asarray(f.allocation(10_000))
    assert counts.sum() >= 10_000 and counts.min() >= 2
    shares = np.abs(f.weights) / f.l1_norm
    np.testing.assert_allclose(counts / counts.sum(), shares, atol=2e-3)


def test_bad_functionals_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="three-point rho must lie in"):
        three_point_functional(0.7)
    with pytest.raises(InvalidArgument, match="nodes must be distinct"):
        functional_from_nodes([0.1, 0.1, 0.2])
    with pytest.raises(InvalidArgument, match="Chebyshev degree must be >= 2"):
        chebyshev_functional(0.5, 1)
    with pytest.raises(InvalidArgument, match="Chebyshev interval must satisfy"):
        chebyshev_functional(0.5, 4, lower=0.6)
    with pytest.raises(InvalidArgument, match="at least two nodes"):
        functional_from_nodes([0.3])


def test_every_node_needs_pairs() -> None:
    f = chebyshev_functional(0.5, 2)
    sample = PairSample(np.array([0, 0, 1]), np.ones(3), np.ones(3))
    with pytest.raises(InvalidArgument, match="every node needs at least one pair"):
        direct_gap(f, sample, output_range=2.0, residual_bound=1.0)


def _sample(rng: np.random.Generator, f, n: int, slope: float):  # type: ignore[no-untyped-def]
    counts = f.allocation(n)
    node = np.repeat(np.arange(len(counts)), counts)
    rho = np.asarray(f.nodes)[node]
    a = rng.normal(size=node.size)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=node.size)
    return PairSample(node, slope * a, slope * b)


def test_nnls_equals_linear_when_the_fit_is_non_negative() -> None:
    rng = np.random.default_rng(1)
    f = three_point_functional(0.25)
    sample = _sample(rng, f, 30_000, 1.0)  # h(rho) = rho: B_1 = 1, others 0
    lin = residual_weight(f, sample, output_bound=5.0)
    nn = residual_weight_nnls(f, sample, output_bound=5.0)
    if nn.value != pytest.approx(lin.value, abs=1e-9):
        # The fit touched the boundary: then NNLS is the closer to the truth B_{>=2} = 0.
        assert abs(nn.value) <= abs(lin.value)
    assert nn.leverage >= lin.leverage * 0.999


def test_nnls_clamps_negative_degree_weights() -> None:
    f = three_point_functional(0.25)
    # Node means of a concave h (negative quadratic term) force c_2 = 0.
    node = np.repeat(np.arange(3), 4)
    means = np.array([0.5, 0.6, 0.65])
    first = np.ones(12)
    second = np.repeat(means, 4)
    sample = PairSample(node, first, second)
    nn = residual_weight_nnls(f, sample, output_bound=2.0)
    lin = residual_weight(f, sample, output_bound=2.0)
    assert nn.value != pytest.approx(lin.value)
    bound = nnls_lipschitz(f)
    assert np.all(bound >= np.abs(f.weights) - 1e-9)
