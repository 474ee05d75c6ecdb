"""CUDA checks of issue 12; they skip cleanly (with the reason) without a GPU.

Run them on a machine with CUDA (and a CUDA build of torch) with::

    .venv/bin/pytest -s -rs tests/integration/test_devices_cuda.py

* every built-in kind that trains on a GPU, at its example recipe, trained on
  ``cuda`` and on the CPU: the outputs and weights agree within the task's
  CUDA tolerances (``Task.tolerances_on("cuda")``); the measured maxima are
  printed (``CUDA-AGREEMENT ...`` lines) for docs/tasks.md, "GPU measurements";
* an audit over real gRPC with the Prover on ``cuda`` (``attribute`` and
  ``serve --device cuda``) and the Verifier on the CPU: it accepts, charges the
  CUDA tolerance and the signed report names both devices.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.report import verify_report
from protocol.signing import load_public_key, write_keypair
from prover.engine import train
from prover.tasks.registry import load_task
from tests.integration._cli import LOGREG, installed, prover_exe

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device (torch.cuda.is_available() is False on this machine)",
)

ROOT = Path(__file__).resolve().parents[2]
MODELS = 64


def _draw(n: int, n_items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((n, n_items)) < 0.5, 1, -1).astype(np.int8)
    return x, rng.integers(0, 2**63, size=n, dtype=np.uint64)


@pytest.mark.parametrize("kind", ["logreg", "mlp", "ablation"])
def test_batch_training_on_cuda_agrees_with_the_cpu_within_the_cuda_tolerance(
    kind: str,
) -> None:  # pragma: no cover - GPU only
    task = load_task(ROOT / "examples" / "tasks" / f"{kind}.toml")
    x, seeds = _draw(MODELS, task.n_items, 12)
    cpu = train(task, x, seeds, device="cpu")
    gpu = train(task, x, seeds, device="cuda")
    tol = task.tolerances_on("cuda")
    out_diff = float(np.max(np.abs(gpu.outputs - cpu.outputs)))
    w_diff = 0.0
    if cpu.weights is not None:
        assert gpu.weights is not None
        w_diff = float(np.max(np.abs(gpu.weights - cpu.weights)))
    print(
        f"CUDA-AGREEMENT {kind}: {MODELS} models on {torch.cuda.get_device_name()}, "
        f"torch {torch.__version__}: outputs {out_diff:.3g} (tau {tol.output:g}), "
        f"weights {w_diff:.3g} (tolerance {tol.weight:g})"
    )
    assert out_diff <= tol.output
    assert w_diff <= tol.weight


def test_an_audit_with_the_prover_on_cuda_and_the_verifier_on_the_cpu(
    tmp_path: Path,
) -> None:  # pragma: no cover - GPU only
    toml = tmp_path / "logreg.toml"
    toml.write_text(LOGREG, encoding="utf-8")
    scores, report = tmp_path / "scores.npz", tmp_path / "report.json"
    env = {**os.environ, "PACDA_HOME": str(tmp_path)}
    made = subprocess.run(
        [prover_exe(), "attribute", "--task", str(toml), "--method", "datamodel",
         "--samples", "2000", "--check-samples", "0", "--out", str(scores), "--device", "cuda"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "(device class cuda)" in made.stderr
    write_keypair(tmp_path / "v")
    serve = subprocess.Popen(
        [prover_exe(), "serve", "--task", str(toml), "--scores", str(scores), "--port", "0",
         "--device", "cuda", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        line = serve.stdout.readline() if serve.stdout else ""
        assert line.startswith("listening on "), line
        res = subprocess.run(
            [installed("pacda-verifier"), "audit", "--prover", line.split()[-1],
             "--task", str(toml), "--epsilon-relative", "0.05", "--delta", "0.05",
             "--key", str(tmp_path / "v.key"), "--report", str(report), "--quiet",
             "--device", "cpu"],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        if serve.stdout is not None:
            serve.stdout.close()
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    signed = verify_report(report.read_bytes(), load_public_key(tmp_path / "v.pub"))
    assert signed.devices is not None
    assert (signed.devices["prover"], signed.devices["verifier"]) == ("cuda", "cpu")
    assert signed.devices["prover_name"].startswith("cuda:")
    cuda_tau = load_task(toml).tolerances_on("cuda").output
    assert signed.plan is not None and signed.plan["tolerance"] == cuda_tau
