"""Seeded statistical tests of the estimators on planted-spectrum functions.

For each statistic, 200 independent repetitions draw the planned number of
pairs and compute the estimate.  Checks:

* accuracy: ``|estimate - truth| <= sampling_error + max bias`` in at least a
  ``1 - delta`` fraction of repetitions.  The planned sampling error is a
  one-sided Bernstein deviation at ``delta/2`` per side with the *true*
  variance bound declared, so each repetition fails with probability at most
  ``delta`` (in fact far less: Bernstein is conservative); with 200
  repetitions and a true failure rate below ``delta/4`` (what the
  conservativeness gives here, measured ~0), the chance of more than
  ``200 delta`` failures is < 1e-6 (Chernoff).
* coverage: ``estimate +- 1.96 SE`` covers the estimator's exact expectation
  (truth + exact bias); the observed rate is printed.  Asserted >= 0.87: for a
  true rate of 0.95 the chance of falling below is < 1e-6 (binomial tail).
"""

from __future__ import annotations

import numpy as np
import pytest

from protocol.estimators import Estimate, PairSample, direct_gap, residual_weight
from protocol.hypercube import sample_bp, sample_partner
from protocol.plan import Plan, PlanRequest, make_plan
from protocol.synthetic import PlantedSpectrum, SyntheticFunction

REPETITIONS = 200
DELTA = 0.05
SPEC = PlantedSpectrum(
    n_items=20,
    p=0.5,
    degree_weights=(0.1, 0.5, 0.2, 0.1, 0.05),
    terms_per_degree=(1, 10, 20, 15, 5),
    noise=0.3,
    structure_seed=4,
)


def _draw_pairs(
    fn: SyntheticFunction, plan: Plan, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    firsts, seconds = [], []
    for rho, count in zip(plan.functional.nodes, plan.pairs_per_node, strict=True):
        x = sample_bp(rng, count, fn.n_items, fn.p)
        firsts.append(x)
        seconds.append(sample_partner(rng, x, fn.p, rho))
    # drawn node by node; placed where the interleaved challenge layout puts each node's pairs
    where = np.argsort(plan.node_of_pair(), kind="stable")
    x1, x2 = np.empty_like(np.vstack(firsts)), np.empty_like(np.vstack(seconds))
    x1[where], x2[where] = np.vstack(firsts), np.vstack(seconds)
    r = rng.integers(0, 2**63, size=(2, len(x1)), dtype=np.uint64)
    return x1, x2, fn.evaluate(x1, r[0])[:, 0], fn.evaluate(x2, r[1])[:, 0]


def _expected_functional(plan: Plan, weights_by_degree: np.ndarray) -> float:
    k = np.arange(len(weights_by_degree))
    return float(
        sum(
            w * (weights_by_degree * r**k).sum()
            for w, r in zip(plan.functional.weights, plan.functional.nodes, strict=True)
        )
    )


def _run(kind: str, estimator: str, eps_over_var: float, seed: int) -> tuple[float, float]:
    fn = SyntheticFunction.from_spec(SPEC)
    var = float(fn.variance()[0])
    theta0, theta = fn.optimal_attribution()
    # Committed attributions: optimal plus a known perturbation, so err > 0.
    rng = np.random.default_rng(seed)
    a0 = theta0[0] + 0.1
    a = theta[0] + rng.normal(scale=0.05, size=fn.n_items)
    g_bound = abs(a0) + float(np.abs(a).sum())
    plan = make_plan(
        PlanRequest(
            epsilon=eps_over_var * var,
            delta=DELTA,
            bound=fn.bound,
            mode="committed" if kind == "gap" else "paper",
            planning="practical",
            variance=var,
            estimator=estimator,
            attribution_bound=g_bound,  # type: ignore[arg-type]
        )
    )
    bk = fn.degree_weights()[0]
    node = plan.node_of_pair()
    if kind == "gap":
        truth = float(fn.err(np.array([a0]), a[None, :])[0])
        # B_k(q) = B_k(f) for k >= 2; degree <= 1 weight of q is err.
        expectation = truth + _expected_functional(plan, np.r_[0.0, 0.0, bk[2:]])
    else:
        truth = float(fn.residual_weight()[0])
        centre = theta0[0]
        shifted = bk.copy()
        f0 = fn.low_degree_coefficients()[0][0]
        shifted[0] = (f0 - centre) ** 2
        second = float(shifted.sum() + fn.noise_variance())
        expectation = second - _expected_functional(plan, shifted)
    within = covered = 0
    accuracy = plan.sampling_error + max(-plan.bias_lower, plan.bias_upper)
    for _ in range(REPETITIONS):
        x1, x2, f1, f2 = _draw_pairs(fn, plan, rng)
        est: Estimate
        if kind == "gap":
            q1, q2 = f1 - a0 - x1 @ a, f2 - a0 - x2 @ a
            est = direct_gap(
                plan.functional,
                PairSample(node, q1, q2),
                output_range=2 * fn.bound,
                residual_bound=fn.bound + g_bound,
            )
        else:
            est = residual_weight(
                plan.functional,
                PairSample(node, f1 - centre, f2 - centre),
                output_bound=2 * fn.bound,
            )
        within += abs(est.value - truth) <= accuracy
        covered += abs(est.value - expectation) <= 1.96 * est.standard_error
    print(
        f"\n{kind}/{estimator}: pairs={plan.n_pairs} planned accuracy={accuracy:.4g} "
        f"within={within}/{REPETITIONS} coverage(95% nominal)={covered / REPETITIONS:.3f}"
    )
    return within / REPETITIONS, covered / REPETITIONS


@pytest.mark.parametrize(
    ("kind", "estimator", "eps_over_var", "seed"),
    [
        ("gap", "chebyshev", 1.0, 1),
        ("residual", "chebyshev", 2.0, 2),
        ("residual", "three-point", 4.0, 3),
    ],
)
def test_accuracy_and_coverage(kind: str, estimator: str, eps_over_var: float, seed: int) -> None:
    within, coverage = _run(kind, estimator, eps_over_var, seed)
    assert within >= 1 - DELTA
    assert coverage >= 0.87
