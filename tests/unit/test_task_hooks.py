"""The tasks' differentiable hooks (``Task.differentiable``) describe what the task trains.

* ``outputs(w)`` at trained weights equals the outputs ``train_batch`` reported;
* the gradient of ``objective`` (autograd through the hooks) equals the
  gradient the task's own hand-written training steps use, read off one
  plain gradient step (momentum 0);
* tasks with nothing to differentiate return None.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prover.tasks import DifferentiableModel, build_task
from prover.tasks.mlp import MlpParams, init_params
from prover.tasks.specs import (
    AblationSpec,
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
    n_outputs=5,
    data=LogregData(n_train=50),
    train=LogregTrain(steps=150, learning_rate=0.5, momentum=0.9, l2=0.03),
)
MLP = MlpSpec(
    n_outputs=4,
    data=DigitsData(n_train=60),
    model=MlpModel(hidden=5),
    train=MlpTrain(steps=30, batch_size=12, weight_decay=1e-2),
)


def hooks(spec: LogregSpec | MlpSpec) -> tuple[DifferentiableModel, object]:
    task = build_task(spec)
    model = task.differentiable()
    assert model is not None
    return model, task


@pytest.mark.parametrize("spec", [LOGREG, MLP], ids=["logreg", "mlp"])
def test_outputs_at_trained_weights_equal_the_tasks(spec: LogregSpec | MlpSpec) -> None:
    task = build_task(spec)
    model = task.differentiable()
    assert model is not None
    rng = np.random.default_rng(0)
    x = np.where(rng.random((3, task.n_items)) < 0.5, 1, -1).astype(np.int8)
    batch = task.train_batch(x, np.array([1, 2, 3], dtype=np.uint64))
    assert batch.weights is not None and batch.weights.shape[1] == model.n_params
    for w, out in zip(batch.weights, batch.outputs, strict=True):
        mine = model.outputs(torch.as_tensor(w)).numpy()
        np.testing.assert_allclose(mine, out, rtol=0, atol=1e-12)
    losses = model.item_losses(torch.as_tensor(batch.weights[0]))
    assert losses.shape == (task.n_items,) and bool(torch.all(losses > 0))


def test_logreg_objective_gradient_is_the_training_gradient() -> None:
    """Two plain GD steps on all items: ``grad L(w1) = (w1 - w2) / eta``."""
    eta = 0.5
    one = LogregSpec(
        n_outputs=5,
        data=LogregData(n_train=50),
        train=LogregTrain(steps=1, learning_rate=eta, momentum=0.0, l2=0.03),
    )
    two = LogregSpec(
        n_outputs=5,
        data=LogregData(n_train=50),
        train=LogregTrain(steps=2, learning_rate=eta, momentum=0.0, l2=0.03),
    )
    x = np.ones((1, 50), dtype=np.int8)
    seeds = np.zeros(1, dtype=np.uint64)
    w1 = build_task(one).train_batch(x, seeds).weights
    w2 = build_task(two).train_batch(x, seeds).weights
    assert w1 is not None and w2 is not None
    model, _ = hooks(one)
    assert model.convex and model.default_damping == 0.0
    w = torch.as_tensor(w1[0]).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.objective(w), w)
    np.testing.assert_allclose(grad.numpy(), (w1[0] - w2[0]) / eta, rtol=1e-9, atol=1e-12)
    # bias (last weight) is not penalised: R depends only on the first d weights
    (reg,) = torch.autograd.grad(model.regularizer(w), w)
    assert float(reg[-1]) == 0.0


def test_mlp_objective_gradient_is_the_sgd_gradient() -> None:
    """One SGD step with a minibatch of every image: ``grad L(w0) = (w0 - w1) / eta``."""
    n, eta, wd = 24, 0.1, 1e-2
    spec = MlpSpec(
        n_outputs=4,
        data=DigitsData(n_train=n),
        model=MlpModel(hidden=5),
        train=MlpTrain(steps=1, batch_size=n, learning_rate=eta, momentum=0.0, weight_decay=wd),
    )
    task = build_task(spec)
    model = task.differentiable()
    assert model is not None and not model.convex and model.default_damping == 0.05
    seeds = np.array([11], dtype=np.uint64)
    batch = task.train_batch(np.ones((1, n), dtype=np.int8), seeds)
    assert batch.weights is not None
    init = init_params(seeds, 64, 5, torch.float64, torch.device("cpu")).flat()[0]
    w = init.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.objective(w), w)
    want = (init.numpy() - batch.weights[0]) / eta
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-9, atol=1e-12)


def test_mlp_params_from_flat_inverts_flat() -> None:
    params = init_params(np.array([5, 6], np.uint64), 64, 3, torch.float64, torch.device("cpu"))
    back = MlpParams.from_flat(params.flat(), 64, 3)
    for a, b in zip(
        (params.w1, params.b1, params.w2, params.b2),
        (back.w1, back.b1, back.w2, back.b2),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_tasks_without_a_differentiable_model_return_none() -> None:
    synthetic = build_task(
        SyntheticSpec(
            bound=6.0,
            spectrum=SpectrumSection(n_items=5, degree_weights=(0.0, 1.0), terms_per_degree=(0, 5)),
        )
    )
    assert synthetic.differentiable() is None
    ablation = build_task(
        AblationSpec(n_outputs=2, data=DigitsData(n_train=40), model=MlpModel(hidden=3))
    )
    assert ablation.differentiable() is None
