"""The ``cnn`` kind: batch = alone within tau, determinism, image data, errors, contract.

Every test trains tiny configurations (2-4 channels, a few SGD steps, N <= 32)
so the file runs in seconds on a busy CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from protocol.errors import InvalidArgument
from protocol.taskspec import read_task_toml
from prover.attribution import fit_influence_function
from prover.engine import train
from prover.tasks import load_task, load_task_text, parse_task, task_class
from prover.tasks.cnn import CnnTask, GroupNorm1, ResidualCnn, shift_and_flip
from prover.tasks.specs import CnnSpec

ROOT = Path(__file__).resolve().parents[2]

TINY = """
[task]
kind = "cnn"
n_outputs = 3
dtype = "{dtype}"
output = "{output}"
[task.data]
source = "{source}"
n_train = {n_train}
[task.model]
channels = 2
blocks = {blocks}
[task.train]
epochs = 2.0
batch_size = 8
learning_rate = 0.05
augment = {augment}
flip = {flip}
"""


def tiny(tmp: Path | None = None, **overrides: Any) -> CnnTask:
    """A tiny cnn task: N = 24 digits, 2 channels, ceil(2 * 0.5 * 24 / 8) = 3 SGD steps."""
    fields: dict[str, Any] = {
        "dtype": "float64",
        "output": "margin",
        "source": "digits",
        "n_train": 24,
        "blocks": 2,
        "augment": "false",
        "flip": "false",
    }
    fields.update(overrides)
    task = load_task_text(TINY.format(**fields), base_dir=tmp)
    assert isinstance(task, CnnTask)
    return task


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: these models are tiny and the CPU is shared (two busy
    OpenMP threads are up to ten times slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subsets(n: int, n_items: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, n_items)) < 0.5, 1, -1).astype(np.int8)


def max_dev(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


# ------------------------------------------------------- batch vs single
@pytest.mark.parametrize(
    ("dtype", "augment"), [("float64", "false"), ("float64", "true"), ("float32", "true")]
)
def test_a_batch_agrees_with_its_models_trained_alone(dtype: str, augment: str) -> None:
    task = tiny(dtype=dtype, augment=augment, flip=augment)
    tau = task.output_tolerance if dtype == "float64" else 1e-4
    x = subsets(5, task.n_items)
    seeds = np.arange(40, 45, dtype=np.uint64)
    batch = task.train_batch(x, seeds)
    assert batch.weights is not None and batch.weights.shape == (5, task.n_params)
    for k in range(5):
        alone = task.train_batch(x[k : k + 1], seeds[k : k + 1])
        assert alone.weights is not None
        assert max_dev(alone.outputs[0], batch.outputs[k]) <= tau
        assert max_dev(alone.weights[0], batch.weights[k]) <= (
            task.weight_tolerance if dtype == "float64" else 1e-4
        )
    chunked = train(task, x[::-1].copy(), seeds[::-1].copy(), chunk_size=2)
    assert max_dev(chunked.outputs[::-1], batch.outputs) <= tau


def test_results_depend_only_on_x_and_the_seed() -> None:
    task = tiny(augment="true")
    x = subsets(2, task.n_items, seed=3)
    seeds = np.array([7, 8], dtype=np.uint64)
    first = task.train_batch(x, seeds)
    again = tiny(augment="true").train_batch(x, seeds)  # a fresh task, same spec
    np.testing.assert_array_equal(first.outputs, again.outputs)
    np.testing.assert_array_equal(first.weights, again.weights)  # type: ignore[arg-type]
    other = task.train_batch(x, np.array([9, 8], dtype=np.uint64))
    assert max_dev(other.outputs[0], first.outputs[0]) > 1e-6
    np.testing.assert_array_equal(other.outputs[1], first.outputs[1])
    no_aug = tiny().train_batch(x, seeds)  # augmentation changes the model
    assert max_dev(no_aug.outputs, first.outputs) > 1e-6


def test_augmentation_draws_come_from_each_seed_alone() -> None:
    task = tiny(augment="true", flip="true")
    seeds = np.array([3, 1, 2], dtype=np.uint64)
    draws = task.augmentation_draws(seeds, steps=4, batch_size=5)
    assert draws is not None and draws.shape == (3, 4, 5, 3)
    for k in range(3):
        alone = task.augmentation_draws(seeds[k : k + 1], steps=4, batch_size=5)
        assert alone is not None
        assert torch.equal(alone[0], draws[k])
    assert set(draws[..., 0].unique().tolist()) <= {0, 1}
    assert int(draws[..., 1:].abs().max()) <= 1
    assert tiny().augmentation_draws(seeds, steps=4, batch_size=5) is None
    no_flip = tiny(augment="true").augmentation_draws(seeds, steps=4, batch_size=5)
    assert no_flip is not None and int(no_flip[..., 0].abs().max()) == 0


def test_shift_and_flip_is_the_naive_shift_with_zero_fill() -> None:
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.random((2, 3, 2, 5, 4)))  # (n, B, C, H, W)
    draws = torch.as_tensor(rng.integers(-2, 3, size=(2, 3, 3)))
    draws[..., 0] = torch.as_tensor(rng.integers(0, 2, size=(2, 3)))
    got = shift_and_flip(images, draws, max_shift=2)
    assert got.shape == images.shape
    for n in range(2):
        for b in range(3):
            flip, dy, dx = (int(v) for v in draws[n, b])
            src = images[n, b]
            want = torch.zeros_like(src)
            for i in range(5):
                for j in range(4):
                    jj = (3 - j if flip else j) + dx
                    if 0 <= i + dy < 5 and 0 <= jj < 4:
                        want[:, i, j] = src[:, i + dy, jj]
            assert torch.equal(got[n, b], want)


# ---------------------------------------------------------------- contract
def test_task_contract() -> None:
    task = tiny()
    assert task_class("cnn") is CnnTask
    assert task.n_items == 24 and task.n_outputs == 3 and task.image_shape == (1, 8, 8)
    assert task.recipe.steps == 3 and task.digest.startswith("sha256:")
    assert not list(task.module.buffers())
    # prep 1->2, stage 1: 2->4 + residual, stage 2: 4->8 + residual; GroupNorm affine; head
    convs = 9 * (1 * 2 + 2 * 4 + 2 * 4 * 4 + 4 * 8 + 2 * 8 * 8)
    norms = 2 * (2 + 4 + 2 * 4 + 8 + 2 * 8)
    assert task.n_params == convs + norms + 8 * 10 + 10
    x = subsets(3, 24)
    res = task.train_batch(x, np.arange(3, dtype=np.uint64))
    assert res.outputs.dtype == np.float64 and res.outputs.shape == (3, 3)
    assert np.all(np.isfinite(res.outputs))
    tight = tiny(n_train=23)  # another spec, another digest
    assert tight.digest != task.digest
    clipped = load_task_text(
        TINY.format(
            dtype="float64", output="margin", source="digits", n_train=24, blocks=1,
            augment="false", flip="false",
        ).replace("n_outputs = 3", "n_outputs = 3\nbound = 0.001")
    )  # fmt: skip
    assert np.abs(clipped.train_batch(x, np.arange(3, dtype=np.uint64)).outputs).max() <= 0.001
    with pytest.raises(InvalidArgument, match="x must be int8"):
        task.train_batch(x.astype(np.int64), np.arange(3, dtype=np.uint64))  # type: ignore[arg-type]


def test_outputs_are_margins_or_losses_of_the_same_model_and_the_hooks_agree() -> None:
    margin, loss = tiny(), tiny(output="loss")
    x = subsets(2, 24, seed=5)
    seeds = np.array([11, 12], dtype=np.uint64)
    m, lo = margin.train_batch(x, seeds), loss.train_batch(x, seeds)
    np.testing.assert_array_equal(m.weights, lo.weights)  # type: ignore[arg-type]
    # with margin mu and C = 10 classes: log(1 + e^-mu) <= loss <= log(1 + (C - 1) e^-mu)
    assert np.all(np.log1p(np.exp(-m.outputs)) <= lo.outputs + 1e-12)
    assert np.all(lo.outputs <= np.log1p(9 * np.exp(-m.outputs)) + 1e-12)
    hooks = margin.differentiable()
    assert hooks.n_params == margin.n_params
    assert m.weights is not None
    for w, out in zip(m.weights, m.outputs, strict=True):
        np.testing.assert_allclose(hooks.outputs(torch.as_tensor(w)).numpy(), out, atol=1e-12)
    assert hooks.item_losses(torch.as_tensor(m.weights[0])).shape == (24,)


def test_influence_functions_run_on_the_cnn() -> None:
    """Reverse over reverse with batched gradients (the exact Hessian) through the network."""
    task = tiny(blocks=1)
    assert task.n_params == 456
    fit = fit_influence_function(task, reference_seed=1, damping=0.1)
    assert fit.solver == "exact" and fit.theta.shape == (3, 24)
    assert np.all(np.isfinite(fit.theta)) and np.abs(fit.theta).max() > 0


def test_group_norm_is_torch_group_norm_with_one_group() -> None:
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(3, 4, 5, 5)))
    ours = GroupNorm1(4).double()
    with torch.no_grad():
        ours.weight.copy_(torch.arange(1.0, 5.0))
        ours.bias.copy_(torch.arange(4.0))
        theirs = torch.nn.functional.group_norm(x, 1, ours.weight, ours.bias, eps=1e-5)
        assert float((ours(x) - theirs).abs().max()) < 1e-12


def test_resnet9_layout() -> None:
    net = ResidualCnn((3, 32, 32), channels=64, blocks=3, n_classes=10)
    residuals = [name for name, mod in net.named_modules() if type(mod).__name__ == "_Residual"]
    assert residuals == ["body.3", "body.8"]  # after stages 1 and 3, as ResNet-9
    widths = [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 128, 128, 256, 512, 512, 512]
    logits = net(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_the_example_task_file_parses() -> None:
    spec = parse_task(read_task_toml(ROOT / "examples" / "tasks" / "cnn.toml"))
    assert isinstance(spec, CnnSpec)
    assert spec.data.n_train == 64 and spec.steps() == 16


# -------------------------------------------------------------- image data
def write_npz(path: Path, **arrays: Any) -> Path:
    rng = np.random.default_rng(0)
    base = {
        "X_train": rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=10),
        "X_test": rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=4).astype(np.uint8),
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_a_cifar_layout_npz_loads_and_trains(tmp_path: Path) -> None:
    write_npz(tmp_path / "tiny_cifar.npz")
    task = tiny(tmp_path, source="tiny_cifar.npz", n_train=8, blocks=1)
    assert task.image_shape == (3, 32, 32) and task.n_items == 8
    data = task.data_on(torch.device("cpu"), torch.float64)
    assert data["train_inputs"].shape == (8, 3, 32, 32)
    assert float(data["train_inputs"].min()) >= 0.0 and float(data["train_inputs"].max()) <= 1.0
    assert data["test_targets"].dtype == torch.int64
    res = task.train_batch(subsets(2, 8), np.arange(2, dtype=np.uint64))
    assert res.outputs.shape == (2, 3) and np.all(np.isfinite(res.outputs))
    # the digest covers the data
    rng = np.random.default_rng(1)
    changed = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    write_npz(tmp_path / "other.npz", X_train=changed)
    other = tiny(tmp_path, source="other.npz", n_train=8, blocks=1)
    assert other.digest != task.digest
    # a task file resolves the .npz next to itself
    toml = tmp_path / "cnn.toml"
    toml.write_text(
        TINY.format(
            dtype="float64", output="margin", source="tiny_cifar.npz", n_train=8, blocks=1,
            augment="false", flip="false",
        )
    )  # fmt: skip
    assert load_task(toml).digest == task.digest


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X_train": np.zeros((10, 32, 32, 3), np.float32)}, r"X_train .* must be uint8 images"),
        ({"X_train": np.zeros((10, 32, 32), np.uint8)}, r"X_train .* must be uint8 images"),
        ({"X_test": np.zeros((4, 16, 16, 3), np.uint8)}, "the same image shape"),
        ({"y_train": np.zeros(9, np.int64)}, r"y_train must be integer labels of shape \(10,\)"),
        ({"y_train": np.zeros(10, np.float64)}, "y_train must be integer labels"),
        ({"y_test": np.full(4, 10)}, r"^task\.data\.n_classes: y_test has labels in \[10, 10\]"),
        ({"y_test": None}, r"lacks arrays \['y_test'\]"),
    ],
)
def test_bad_npz_files_are_refused_clearly(
    tmp_path: Path, arrays: dict[str, Any], message: str
) -> None:
    write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InvalidArgument, match=message):
        tiny(tmp_path, source="bad.npz", n_train=8, blocks=1)


def test_bad_sources_and_specs_are_refused(tmp_path: Path) -> None:
    write_npz(tmp_path / "small.npz")
    with pytest.raises(InvalidArgument, match=r"^task\.data\.n_train: expected an integer <= 10"):
        tiny(tmp_path, source="small.npz", n_train=11)
    with pytest.raises(InvalidArgument, match=r"^task\.data\.source: cannot read"):
        tiny(tmp_path, source="missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InvalidArgument, match=r"^task\.data\.source: cannot read"):
        tiny(tmp_path, source="junk.npz")
    with pytest.raises(InvalidArgument, match=r"^task\.data\.source: expected 'digits' or a path"):
        tiny(source="cifar10")
    with pytest.raises(InvalidArgument, match=r"^task\.output: expected one of 'margin', 'loss'"):
        tiny(output="logits")
    with pytest.raises(InvalidArgument, match=r"^task\.data\.n_train: expected an integer < 1797"):
        tiny(n_train=1797)
    with pytest.raises(InvalidArgument, match=r"^task\.n_outputs: expected an integer <= 2"):
        CnnSpec.from_table({"kind": "cnn", "n_outputs": 3, "data": {"n_train": 1795}})
    with pytest.raises(InvalidArgument, match=r"^task\.train\.augment: true, but max_shift = 0"):
        CnnSpec.from_table({"kind": "cnn", "train": {"augment": True, "max_shift": 0}})
    with pytest.raises(InvalidArgument, match=r"^task\.train\.label_smoothing: expected a number"):
        CnnSpec.from_table({"kind": "cnn", "train": {"label_smoothing": 1.0}})
