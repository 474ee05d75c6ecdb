"""Benchmarks of the ``cnn`` kind on this machine's CPU, and the numbers behind its GPU plan.

Run: ``.venv/bin/pytest -m bench -s tests/bench/test_bench_cnn.py``.

* ``test_bench_cnn_speed_and_agreement``: models/s of ``examples/tasks/cnn.toml``
  (N = 64, 4 channels, 2 stages, 16 SGD steps of 16 images) at two chunk sizes,
  in float64 and float32 (best of ``REPEATS`` rounds of 128 models, one torch thread); the
  largest batch-vs-single and chunk-size differences against the declared tau.
* ``test_bench_cnn_accuracy``: the test accuracy of one model trained on
  1,000 digits (8 channels, 2 stages) and evaluated on the other 797.
* ``test_bench_cnn_sizes``: per-image forward multiply-adds, activations a
  training step keeps, and parameters, for the example and for ResNet-9's
  layout on CIFAR-10 (``channels = 64, blocks = 3``, 32x32x3) and a narrow
  variant: the inputs of the GPU plan in docs/tasks.md (an estimate there, not
  a measurement).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.hypercube import sample_bp
from prover.engine import train
from prover.tasks import build_task, load_task
from prover.tasks.cnn import CnnTask, ResidualCnn
from prover.tasks.specs import CnnData, CnnModel, CnnSpec, CnnTrain

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tasks" / "cnn.toml"
REPEATS = 2


def draw(n: int, n_items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    return sample_bp(rng, n, n_items, 0.5), seeds


def example(dtype: str) -> CnnTask:
    task = load_task(EXAMPLE)
    assert isinstance(task, CnnTask)
    if dtype == "float64":
        return task
    spec = dataclasses.replace(task.spec, dtype=dtype)
    out = build_task(spec)
    assert isinstance(out, CnnTask)
    return out


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on shared cores two OpenMP threads can be ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bench_cnn_speed_and_agreement() -> None:
    print(f"\ncnn, examples/tasks/cnn.toml, torch threads = {torch.get_num_threads()}")
    n = 128
    print(f"| dtype | chunk | models/s ({n} models, best of {REPEATS}) |")
    print("|---|---|---|")
    for dtype in ("float64", "float32"):
        task = example(dtype)
        x, seeds = draw(n, task.n_items, 1)
        results = {}
        for chunk in (16, 128):
            times = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                results[chunk] = train(task, x, seeds, chunk_size=chunk)
                times.append(time.perf_counter() - t0)
            print(f"| {dtype} | {chunk} | {n / min(times):.1f} |")
        big = results[128]
        assert big.weights is not None
        single_out = single_w = 0.0
        for k in range(0, n, n // 8):
            alone = task.train_batch(x[k : k + 1], seeds[k : k + 1])
            assert alone.weights is not None
            single_out = max(single_out, float(np.abs(alone.outputs[0] - big.outputs[k]).max()))
            single_w = max(single_w, float(np.abs(alone.weights[0] - big.weights[k]).max()))
        chunks = float(np.abs(results[16].outputs - big.outputs).max())
        print(
            f"  {dtype}: batch-of-128 vs single (8 models) outputs {single_out:.3g}, "
            f"weights {single_w:.3g}; chunk 16 vs 128 outputs {chunks:.3g}; "
            f"tau declared in the example file (float64) {task.output_tolerance:g}; "
            f"|f| up to {np.abs(big.outputs).max():.2f}"
        )
        if dtype == "float64":
            assert max(single_out, chunks) <= task.output_tolerance


def test_bench_cnn_accuracy() -> None:
    spec = CnnSpec(
        n_outputs=797,
        data=CnnData(n_train=1000),
        model=CnnModel(channels=8, blocks=2),
        train=CnnTrain(epochs=8.0, batch_size=32, learning_rate=0.02),
    )
    task = build_task(spec)
    t0 = time.perf_counter()
    res = task.train_batch(np.ones((1, 1000), dtype=np.int8), np.array([0], dtype=np.uint64))
    seconds = time.perf_counter() - t0
    accuracy = float((res.outputs > 0).mean())
    steps = spec.steps()
    print(
        f"\ncnn accuracy: one model (8 channels, 2 stages, {task.n_params} parameters) trained on "
        f"1000 digits for {steps} steps of 32 ({steps * 32 / 1000:.1f} epochs), test accuracy "
        f"{accuracy:.3f} on 797 held-out digits; {seconds:.1f} s"
    )
    assert accuracy > 0.8


def sizes(net: torch.nn.Module, image: tuple[int, int, int]) -> tuple[int, int, int]:
    """(forward multiply-adds, activations kept for backward, parameters) per image."""
    macs = acts = 0

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs, acts
        acts += out.numel()  # every leaf output (conv, norm, relu, pool, linear) is kept
        if isinstance(module, torch.nn.Conv2d):
            macs += out.numel() * module.in_channels * 9
        elif isinstance(module, torch.nn.Linear):
            macs += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        net(torch.zeros(1, *image))
    for h in handles:
        h.remove()
    return macs, acts, sum(p.numel() for p in net.parameters())


def test_bench_cnn_sizes() -> None:
    print("\n| network | input | forward MACs / image | activations / image | parameters |")
    print("|---|---|---|---|---|")
    for name, image, c, k in (
        ("example (c=4, K=2)", (1, 8, 8), 4, 2),
        ("narrow (c=16, K=3)", (3, 32, 32), 16, 3),
        ("ResNet-9 (c=64, K=3)", (3, 32, 32), 64, 3),
    ):
        macs, acts, params = sizes(ResidualCnn(image, c, k, 10), image)
        print(f"| {name} | {image} | {macs:,} | {acts:,} | {params:,} |")
