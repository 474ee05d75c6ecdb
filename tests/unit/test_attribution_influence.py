"""Influence functions (Koh & Liang 2017) against retraining and an explicit Hessian.

The method runs over the task's differentiable hooks (``Task.differentiable``);
the references here are written out independently of them: the closed-form
logistic-regression Hessian and an explicit digits MLP (the formulas of the
per-kind modules the method replaced, which it matched to float tolerance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protocol.errors import InvalidArgument
from prover.attribution import fit_influence_function
from prover.attribution.influence import conjugate_gradient
from prover.tasks import build_task
from prover.tasks.datasets import load_digits_split, load_logreg_data
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

N_CLASSES = 10


class _Model:
    """Reference: the digits MLP as a function of its flat parameter vector (float64)."""

    def __init__(self, n_in: int, hidden: int, weight_decay: float) -> None:
        self.shapes = [(n_in, hidden), (hidden,), (hidden, N_CLASSES), (N_CLASSES,)]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.weight_decay = weight_decay

    def unflatten(self, w: torch.Tensor) -> list[torch.Tensor]:
        parts = torch.split(w, self.sizes)
        return [p.reshape(s) for p, s in zip(parts, self.shapes, strict=True)]

    def logits(self, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = self.unflatten(w)
        return torch.relu(u @ w1 + b1) @ w2 + b2

    def losses(self, w: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.logits(w, u), labels, reduction="none")

    def objective(self, w: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w1, _, w2, _ = self.unflatten(w)
        decay = 0.5 * self.weight_decay * ((w1 * w1).sum() + (w2 * w2).sum())
        return self.losses(w, u, labels).mean() + decay

    def margins(self, w: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = self.logits(w, u)
        correct = z.gather(1, labels[:, None]).squeeze(1)
        others = z.masked_fill(torch.nn.functional.one_hot(labels, N_CLASSES).bool(), -torch.inf)
        return correct - others.amax(dim=1)


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


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def test_logreg_scores_equal_the_closed_form_hessian_solve() -> None:
    """``H = (1/N) sum_j s_j (1 - s_j) x_j x_j^T + lambda diag(1, .., 1, 0)``, written out."""
    task = build_task(LOGREG)
    fit = fit_influence_function(task, reference_seed=0)
    assert fit.solver == "exact" and fit.damping == 0.0
    data = load_logreg_data(
        source="breast_cancer", n_train=60, n_test=4, split_seed=0, standardize=True, base_dir=None
    )
    x = np.hstack([data.x_train, np.ones((60, 1))])
    y = np.asarray(data.y_train, dtype=np.float64)
    x_te = np.hstack([data.x_test, np.ones((4, 1))])
    y_te = np.asarray(data.y_test, dtype=np.float64)
    batch = task.train_batch(np.ones((1, 60), np.int8), np.zeros(1, np.uint64))
    assert batch.weights is not None
    w = batch.weights[0]
    margins = y * (x @ w)
    s = _sigmoid(margins)
    decay = np.full(x.shape[1], LOGREG.train.l2)
    decay[-1] = 0.0
    hessian = (x.T * (s * (1.0 - s))) @ x / len(x) + np.diag(decay)
    u = np.linalg.solve(hessian, (x_te * y_te[:, None]).T)  # (P, Z)
    grads_l = -(y * _sigmoid(-margins))[:, None] * x  # (N, P)
    d = (grads_l @ u).T
    want = -(d - d.mean(axis=1, keepdims=True)) / (2 * LOGREG.p * 60)
    np.testing.assert_allclose(fit.theta, want, rtol=1e-10, atol=1e-13)
    mu = 2 * LOGREG.p - 1
    np.testing.assert_allclose(fit.theta0, batch.outputs[0] - mu * want.sum(axis=1), atol=1e-12)


def test_mlp_solver_strategies_agree_and_auto_chooses_by_size() -> None:
    task = build_task(MLP)  # P = 64*4 + 4 + 4*10 + 10 = 310
    model = task.differentiable()
    assert model is not None and model.n_params == 310 and not model.convex
    exact = fit_influence_function(task, reference_seed=3, damping=1.0, solver="exact")
    cg = fit_influence_function(task, reference_seed=3, damping=1.0, solver="cg")
    assert (exact.solver, exact.iterations, cg.solver) == ("exact", (), "cg")
    scale = np.abs(exact.theta).max()
    np.testing.assert_allclose(cg.theta, exact.theta, rtol=1e-6, atol=1e-8 * scale)
    auto_small = fit_influence_function(task, reference_seed=3, damping=1.0)
    auto_large = fit_influence_function(task, reference_seed=3, damping=1.0, exact_max_params=309)
    assert (auto_small.solver, auto_large.solver) == ("exact", "cg")
    np.testing.assert_array_equal(auto_small.theta, exact.theta)
    np.testing.assert_array_equal(auto_large.theta, cg.theta)
    default = fit_influence_function(task, reference_seed=3, solver="exact")
    assert default.damping == 0.05  # the mlp hooks' default for a non-convex loss
