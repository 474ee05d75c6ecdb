"""Bring your own model: the plugin of ``examples/bring_your_own_model`` audited end to end.

The plugin (a TorchTask in under 60 lines, kind ``wine-mlp``) is installed with
``pip install --no-deps --target DIR`` into a temporary directory, never into
the project's environment; ``DIR`` on ``PYTHONPATH`` (or ``sys.path``) is all
``importlib.metadata`` needs to find its ``pacda.tasks`` entry point, exactly
as after a plain ``pip install``.  Then the real console scripts run:
``pacda-prover attribute --method datamodel``, ``pacda-prover serve`` on port 0
and ``pacda-verifier audit`` over gRPC, which must accept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from prover.engine import train
from prover.tasks import known_kinds, load_task, task_class
from tests.integration._cli import attribute_serve_audit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bring_your_own_model"
TASK = EXAMPLE / "wine.toml"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin pip-installed into a fresh target directory (from a copy: no build files
    land in the repository)."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
         str(source)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("pacda_byom_wine-*.dist-info"))
    return target


@pytest.fixture
def on_path(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The installed plugin importable in this process; its modules unloaded after."""
    monkeypatch.syspath_prepend(str(site))
    yield
    for name in [m for m in sys.modules if m == "byom_wine" or m.startswith("byom_wine.")]:
        del sys.modules[name]


def env_with(site: Path, home: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    # One intra-op thread: the server and the Verifier train at the same time on few cores.
    return {**os.environ, "PYTHONPATH": path, "PACDA_HOME": str(home), "OMP_NUM_THREADS": "1"}


def test_the_plugin_task_is_short() -> None:
    lines = (EXAMPLE / "byom_wine" / "task.py").read_text().splitlines()
    assert len(lines) < 60


def test_the_entry_point_resolves_and_batches_agree_with_single_models(on_path: None) -> None:
    assert "wine-mlp" in known_kinds()
    task = load_task(TASK)
    assert type(task) is task_class("wine-mlp") and type(task).__name__ == "WineTask"
    rng = np.random.default_rng(0)
    x = np.where(rng.random((6, task.n_items)) < 0.5, 1, -1).astype(np.int8)
    seeds = np.arange(6, dtype=np.uint64)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch = task.train_batch(x, seeds)
        chunked = train(task, x, seeds, chunk_size=4)
        alone = [task.train_batch(x[k : k + 1], seeds[k : k + 1]) for k in range(6)]
    finally:
        torch.set_num_threads(before)
    assert batch.weights is not None
    tau = task.output_tolerance
    for k, single in enumerate(alone):
        assert single.weights is not None
        assert np.abs(single.outputs[0] - batch.outputs[k]).max() <= tau
        assert np.abs(single.weights[0] - batch.weights[k]).max() <= task.weight_tolerance
    assert np.abs(chunked.outputs - batch.outputs).max() <= tau
    assert (batch.outputs > 0).mean() > 0.6  # the models learn: most test wines classified


def test_attribute_serve_and_audit_over_grpc(site: Path, tmp_path: Path, on_path: None) -> None:
    env = env_with(site, tmp_path)
    fit, done, body = attribute_serve_audit(
        TASK, tmp_path, env, samples=800, seed=1, epsilon_relative=0.5, timeout=300
    )
    assert "attribution digest" in fit.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: ACCEPT" in done.stdout
    assert body["decision"] == "accept"
    assert body["task_digest"] == load_task(TASK).digest  # the plugin's task, as installed
