"""The ``cnn`` kind end to end (issue 12): ``attribute --method datamodel``, ``serve``, ``audit``.

A small residual CNN on digits (N = 32 training images, Z = 2 test margins,
4 channels, 2 stages, 8 SGD steps, float64) goes through the real console
scripts: the Prover fits datamodel scores on 600 trainings, serves them on port
0, and ``pacda-verifier audit`` (committed mode, practical planning, a 100-run
pilot, epsilon = 1 x Var(f)) retrains its spot checks and must accept.  Marked
``slow``: 45 to 77 s on two cores busy with other jobs (measured).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from prover.tasks import load_task
from tests.integration._cli import installed

CNN = """
[task]
kind = "cnn"
n_outputs = 2
[task.data]
n_train = 32
[task.model]
channels = 4
blocks = 2
[task.train]
epochs = 8.0
batch_size = 16
learning_rate = 0.02
"""


@pytest.mark.slow
def test_cnn_datamodel_scores_are_audited_over_grpc(tmp_path: Path) -> None:
    task_file = tmp_path / "cnn.toml"
    task_file.write_text(CNN)
    task = load_task(task_file)
    assert task.n_items == 32 and task.recipe.steps == 8  # type: ignore[attr-defined]
    # One intra-op thread: server and Verifier train at the same time on few cores.
    env = {**os.environ, "PACDA_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    scores = tmp_path / "scores.npz"
    fit = subprocess.run(
        [installed("pacda-prover"), "attribute", "--task", str(task_file), "--method",
         "datamodel", "--samples", "600", "--check-samples", "0", "--seed", "2",
         "--out", str(scores)],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "models             600 trained" in fit.stdout
    server = subprocess.Popen(
        [installed("pacda-prover"), "serve", "--task", str(task_file), "--scores", str(scores),
         "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("listening on "), line
        report = tmp_path / "report.json"
        done = subprocess.run(
            [installed("pacda-verifier"), "audit", "--prover", line.split()[-1],
             "--task", str(task_file), "--epsilon-relative", "1.0", "--delta", "0.05",
             "--pilot", "100", "--report", str(report)],
            capture_output=True, text=True, timeout=600, env=env, check=False,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: ACCEPT" in done.stdout
    body = json.loads(report.read_text())["report"]
    assert body["decision"] == "accept"
    assert body["task_digest"] == task.digest
    assert body["costs"]["prover_evaluations"] > 0
