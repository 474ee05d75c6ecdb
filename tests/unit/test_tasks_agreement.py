"""Built-in tasks: batch-vs-single agreement within the declared tolerances, and semantics.

Every kind is run at a reduced size (spec fields) so the module stays fast; the
agreement property does not depend on size.  Measured tolerances at full size
are printed by ``tests/bench/test_bench_engine.py::test_bench_agreement``.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import sample_bp
from prover.engine import train
from prover.tasks import SpecTask, build_task
from prover.tasks.ablation import AblationTask, base_network
from prover.tasks.datasets import load_digits_split
from prover.tasks.logreg import LogregTask
from prover.tasks.mlp import MlpTask, forward_logits
from prover.tasks.specs import (
    AblationSpec,
    AblationTrain,
    DigitsData,
    LogregSpec,
    LogregTrain,
    MlpModel,
    MlpSpec,
    MlpTrain,
    SpectrumSection,
    SyntheticSpec,
)
from prover.tasks.synthetic import SyntheticTask
from prover.tasks.torch_utils import classifier_margins

SMALL_SPECS = {
    "synthetic": SyntheticSpec(
        bound=6.0,
        n_outputs=3,
        spectrum=SpectrumSection(
            n_items=30,
            degree_weights=(0.2, 0.5, 0.2, 0.1),
            terms_per_degree=(1, 10, 6, 3),
            noise=0.3,
            structure_seed=3,
        ),
    ),
    "logreg": LogregSpec(train=LogregTrain(steps=40)),
    "mlp": MlpSpec(
        n_outputs=8,
        data=DigitsData(n_train=300),
        model=MlpModel(hidden=16),
        train=MlpTrain(steps=30, batch_size=16),
    ),
    "ablation": AblationSpec(
        n_outputs=8,
        data=DigitsData(n_train=300),
        model=MlpModel(hidden=24),
        train=AblationTrain(steps=60, batch_size=16, seed=11),
    ),
}
KINDS = sorted(SMALL_SPECS)
N_MODELS = 12


@cache
def small_task(kind: str) -> SpecTask:  # type: ignore[type-arg]
    task = build_task(SMALL_SPECS[kind])
    assert isinstance(task, SpecTask)
    return task


def draw(task: SpecTask, n: int, seed: int) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    x = sample_bp(rng, n, task.n_items, task.spec.p)
    seeds = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    return x, seeds


# ------------------------------------------------------ batch vs single
@pytest.mark.parametrize("kind", KINDS)
def test_single_model_agrees_with_the_batch_within_tolerance(kind: str) -> None:
    task = small_task(kind)
    x, seeds = draw(task, N_MODELS, 1)
    batch = task.train_batch(x, seeds)
    assert batch.outputs.shape == (N_MODELS, task.n_outputs)
    assert batch.outputs.dtype == np.float64
    assert np.all(np.abs(batch.outputs) <= task.bound)
    for i in range(N_MODELS):
        alone = task.train_batch(x[i : i + 1], seeds[i : i + 1])
        np.testing.assert_allclose(
            alone.outputs[0], batch.outputs[i], rtol=0, atol=task.output_tolerance
        )
        if batch.weights is None:
            assert alone.weights is None
        else:
            assert alone.weights is not None
            np.testing.assert_allclose(
                alone.weights[0], batch.weights[i], rtol=0, atol=task.weight_tolerance
            )


@pytest.mark.parametrize("kind", KINDS)
def test_chunk_size_and_batch_order_do_not_change_results(kind: str) -> None:
    task = small_task(kind)
    x, seeds = draw(task, N_MODELS, 2)
    reference = train(task, x, seeds, chunk_size=N_MODELS)
    tol = task.output_tolerance
    for chunk in (1, 5):
        other = train(task, x, seeds, chunk_size=chunk)
        np.testing.assert_allclose(other.outputs, reference.outputs, rtol=0, atol=tol)
    perm = np.random.default_rng(0).permutation(N_MODELS)
    shuffled = train(task, x[perm], seeds[perm], chunk_size=4)
    np.testing.assert_allclose(shuffled.outputs, reference.outputs[perm], rtol=0, atol=tol)


# ------------------------------------------------------------- synthetic
def test_synthetic_is_the_planted_function() -> None:
    task = small_task("synthetic")
    assert isinstance(task, SyntheticTask)
    x, seeds = draw(task, 50, 3)
    expected = task.function.evaluate(x, seeds)
    assert np.array_equal(task.train_batch(x, seeds).outputs, expected)


def test_synthetic_bound_below_the_provable_bound_is_refused() -> None:
    spec = dataclasses.replace(SMALL_SPECS["synthetic"], bound=1.0)
    with pytest.raises(InvalidArgument) as info:
        SyntheticTask(spec)  # type: ignore[arg-type]
    assert str(info.value).startswith("task.bound: expected a number >= 4.626449245515")
    assert str(info.value).endswith("got 1.0")


# ---------------------------------------------------------------- logreg
def test_logreg_ignores_the_seed_and_depends_on_the_subset() -> None:
    task = small_task("logreg")
    x, seeds = draw(task, 4, 4)
    a = task.train_batch(x, seeds).outputs
    b = task.train_batch(x, seeds[::-1].copy()).outputs
    assert np.array_equal(a, b)
    assert np.abs(a[0] - a[1]).max() > 1e-3


def test_logreg_default_recipe_reaches_the_regularised_optimum() -> None:
    """200 Nesterov steps land within 1e-2 (measured ~3e-4) of scikit-learn's exact optimum."""
    from sklearn.linear_model import LogisticRegression

    task = build_task(LogregSpec())
    assert isinstance(task, LogregTask)
    x, seeds = draw(task, 4, 5)
    got = task.train_batch(x, seeds)
    assert got.weights is not None
    l2 = task.spec.train.l2
    for i in range(len(x)):
        keep = x[i] > 0
        clf = LogisticRegression(C=1.0 / (l2 * keep.sum()), tol=1e-12, max_iter=10_000)
        clf.fit(task._x[keep, :-1], task._y[keep])
        w_opt = np.r_[clf.coef_[0], clf.intercept_]
        margins = task._y_test * (task._x_test @ w_opt)
        np.testing.assert_allclose(got.outputs[i], margins, rtol=0, atol=1e-2)
    assert (got.outputs > 0).mean() > 0.85  # test accuracy of the trained models


def test_logreg_empty_subset_gives_zero_margins() -> None:
    task = small_task("logreg")
    x = -np.ones((1, task.n_items), dtype=np.int8)
    out = task.train_batch(x, np.zeros(1, np.uint64))
    assert np.array_equal(out.outputs, np.zeros((1, task.n_outputs)))


def test_logreg_clips_to_the_bound() -> None:
    task = build_task(LogregSpec(bound=0.5, train=LogregTrain(steps=40)))
    x, seeds = draw(task, 3, 6)  # type: ignore[arg-type]
    out = task.train_batch(x, seeds).outputs
    assert out.max() == 0.5


# ------------------------------------------------------------------- mlp
def test_mlp_seed_drives_init_and_order() -> None:
    task = small_task("mlp")
    x, seeds = draw(task, 2, 7)
    same_x = np.repeat(x[:1], 2, axis=0)
    out = task.train_batch(same_x, seeds)
    assert out.weights is not None
    assert np.abs(out.weights[0] - out.weights[1]).max() > 1e-3  # seeds differ
    again = task.train_batch(same_x, seeds)
    assert np.array_equal(again.outputs, out.outputs)  # same (x, r): same result


def test_mlp_weights_are_the_flat_parameters() -> None:
    task = small_task("mlp")
    assert isinstance(task, MlpTask)
    x, seeds = draw(task, 2, 8)
    out = task.train_batch(x, seeds)
    hidden = task.spec.model.hidden
    assert out.weights is not None
    assert out.weights.shape == (2, 64 * hidden + hidden + 10 * hidden + 10)


def test_mlp_empty_subset_trains_without_data() -> None:
    task = small_task("mlp")
    x = -np.ones((1, task.n_items), dtype=np.int8)
    out = task.train_batch(x, np.ones(1, np.uint64))
    assert np.all(np.isfinite(out.outputs))


# -------------------------------------------------------------- ablation
def test_ablation_full_mask_is_the_base_network_and_empty_mask_its_bias() -> None:
    task = small_task("ablation")
    assert isinstance(task, AblationTask)
    spec = task.spec
    data = load_digits_split(
        n_train=spec.data.n_train, n_test=spec.n_outputs, split_seed=spec.data.split_seed
    )
    params = base_network(spec, data)
    labels = torch.as_tensor(data.y_test)
    full = classifier_margins(forward_logits(params, torch.as_tensor(data.x_test)), labels)
    x = np.stack([np.ones(task.n_items, np.int8), -np.ones(task.n_items, np.int8)])
    out = task.train_batch(x, np.zeros(2, np.uint64)).outputs
    np.testing.assert_allclose(out[0], full[0].numpy(), rtol=0, atol=1e-12)
    bias_only = classifier_margins(params.b2[0].expand(spec.n_outputs, 10), labels)
    np.testing.assert_allclose(out[1], bias_only.numpy(), rtol=0, atol=1e-12)


def test_ablation_base_network_is_trained_once_per_spec() -> None:
    task = small_task("ablation")
    assert isinstance(task, AblationTask)
    again = build_task(task.spec)
    assert again.digest == task.digest
    spec = task.spec
    data = load_digits_split(
        n_train=spec.data.n_train, n_test=spec.n_outputs, split_seed=spec.data.split_seed
    )
    assert base_network(spec, data) is base_network(spec, data)


# ----------------------------------------------------------------- dtype
@pytest.mark.parametrize(("kind", "atol"), [("logreg", 1e-4), ("mlp", 1e-3)])
def test_float32_training_agrees_with_float64(kind: str, atol: float) -> None:
    task64 = small_task(kind)
    task32 = build_task(dataclasses.replace(task64.spec, dtype="float32"))
    assert task32.digest != task64.digest
    x, seeds = draw(task64, 6, 9)
    a = task64.train_batch(x, seeds).outputs
    b = task32.train_batch(x, seeds).outputs
    np.testing.assert_allclose(b, a, rtol=0, atol=atol)
