"""Influence functions (Koh & Liang 2017) against retraining and an explicit Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protocol.errors import InvalidArgument
from prover.attribution import fit_influence_function
from prover.attribution.influence import conjugate_gradient
from prover.attribution.influence_mlp import _Model
from prover.tasks import build_task
from prover.tasks.datasets import load_digits_split
from prover.tasks.specs import (
    DigitsData,
    LogregData,
    LogregSpec,
    LogregTrain,
    MlpModel,
    MlpSpec,
    MlpTrain,
    SpectrumSection,
    SyntheticSpec,
)

LOGREG = LogregSpec(
    n_outputs=4,
    data=LogregData(n_train=60),
    train=LogregTrain(steps=400, learning_rate=0.5, momentum=0.9, l2=0.05),
)
MLP = MlpSpec(
    n_outputs=3,
    data=DigitsData(n_train=80),
    model=MlpModel(hidden=4),
    train=MlpTrain(steps=40, batch_size=16),
)


def test_logreg_scores_predict_leave_one_out_retraining() -> None:
    """Removing item i from the full data moves f by about 2 p theta_i (first order)."""
    task = build_task(LOGREG)
    fit = fit_influence_function(task, reference_seed=0)
    assert fit.solver == "exact"
    n = task.n_items
    items = np.arange(0, n, 6)
    x = np.ones((len(items) + 1, n), dtype=np.int8)
    for row, i in enumerate(items, start=1):
        x[row, i] = -1
    out = task.train_batch(x, np.zeros(len(x), dtype=np.uint64)).outputs
    actual = out[0] - out[1:]  # (items, Z): effect of including item i
    predicted = 2 * LOGREG.p * fit.theta[:, items].T
    corr = np.corrcoef(actual.ravel(), predicted.ravel())[0, 1]
    assert corr > 0.98, corr
    # First order: close for typical items, an underestimate for the most influential
    # ones (Koh & Liang 2017 §5.1); at N = 60 the median relative gap is ~2%.
    rel = np.abs(predicted - actual) / np.abs(actual).max()
    assert np.median(rel) < 0.05, np.median(rel)
    np.testing.assert_allclose(fit.theta0 + (2 * LOGREG.p - 1) * fit.theta.sum(axis=1), out[0])


def test_mlp_cg_solution_matches_an_explicit_hessian_solve() -> None:
    task = build_task(MLP)
    damping = 1.0
    fit = fit_influence_function(
        task, reference_seed=3, damping=damping, cg_iterations=500, solver="cg"
    )
    assert fit.solver == "cg" and max(fit.residuals) < 1e-6
    data = load_digits_split(n_train=80, n_test=3, split_seed=0)
    u = torch.as_tensor(data.x_train)
    labels = torch.as_tensor(data.y_train)
    model = _Model(64, 4, MLP.train.weight_decay)
    w_np = task.train_batch(np.ones((1, 80), np.int8), _reference_seed(3)).weights
    assert w_np is not None
    w = torch.as_tensor(w_np[0])
    # reverse-over-reverse: torch.func.hessian (forward mode) warns in torch 2.13
    h = torch.func.jacrev(torch.func.jacrev(lambda v: model.objective(v, u, labels)))(w).numpy()
    u_te = torch.as_tensor(data.x_test)
    y_te = torch.as_tensor(data.y_test)
    jac = torch.func.jacrev(lambda v: model.margins(v, u_te, y_te))(w).numpy()
    per_item = torch.func.jacrev(lambda v: model.losses(v, u, labels))(w).numpy()  # (N, P)
    assert np.linalg.eigvalsh(h).min() > -damping  # the damped system is positive definite
    sol = np.linalg.solve(h + damping * np.eye(len(h)), jac.T)  # (P, Z)
    d = (per_item @ sol).T
    want = -(d - d.mean(axis=1, keepdims=True)) / (2 * MLP.p * 80)
    np.testing.assert_allclose(fit.theta, want, rtol=1e-5, atol=1e-9 * np.abs(want).max())


def _reference_seed(seed: int) -> np.ndarray:
    return np.array([seed], dtype=np.uint64)


def test_conjugate_gradient_solves_blocks_and_refuses_indefinite_matrices() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    spd = a @ a.T + 0.5 * np.eye(6)
    b = rng.normal(size=(6, 3))
    b[:, 2] = 0.0
    sol, used, res = conjugate_gradient(lambda v: spd @ v, b, iterations=50, tolerance=1e-12)
    np.testing.assert_allclose(spd @ sol, b, atol=1e-9)
    assert used[2] == 0 and res.max() < 1e-10
    with pytest.raises(Exception, match="non-positive curvature; raise the damping"):
        conjugate_gradient(lambda v: -spd @ v, b, iterations=50, tolerance=1e-12)


def test_unsupported_kinds_and_bad_damping() -> None:
    synthetic = build_task(
        SyntheticSpec(
            bound=6.0,
            spectrum=SpectrumSection(n_items=5, degree_weights=(0.0, 1.0), terms_per_degree=(0, 5)),
        )
    )
    with pytest.raises(
        InvalidArgument,
        match="method 'influence-function' needs a task with a differentiable model "
        r"\(Task.differentiable\); task kind 'synthetic' has none",
    ):
        fit_influence_function(synthetic, reference_seed=0)
    with pytest.raises(InvalidArgument, match="need damping > 0"):
        fit_influence_function(build_task(MLP), reference_seed=0, damping=0.0)


@pytest.mark.parametrize("spec", [LOGREG, MLP], ids=["logreg", "mlp"])
def test_the_hook_based_method_equals_the_per_kind_modules(spec: LogregSpec | MlpSpec) -> None:
    """The generic method over the task's hooks gives the per-kind modules' scores."""
    from prover.attribution.influence_logreg import logreg_influence
    from prover.attribution.influence_mlp import mlp_influence

    task = build_task(spec)
    if isinstance(spec, LogregSpec):
        new = fit_influence_function(task, reference_seed=0)
        old = logreg_influence(task, reference_seed=0, base_dir=None, damping=0.0)
        assert new.solver == old.solver == "exact"
        np.testing.assert_allclose(new.theta, old.theta, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(new.theta0, old.theta0, rtol=1e-12, atol=1e-13)
        return
    old = mlp_influence(task, reference_seed=3, damping=1.0, cg_iterations=500, cg_tolerance=1e-8)
    for solver in ("cg", "exact"):
        new = fit_influence_function(
            task, reference_seed=3, damping=1.0, cg_iterations=500, solver=solver
        )
        assert new.solver == solver and new.damping == 1.0
        scale = np.abs(old.theta).max()
        np.testing.assert_allclose(new.theta, old.theta, rtol=1e-6, atol=1e-8 * scale)
        np.testing.assert_allclose(new.theta0, old.theta0, rtol=1e-12, atol=1e-12)
        if solver == "cg":  # same Hessian-vector products, same iterations
            assert new.iterations == old.iterations
