"""The ``cnn`` kind end to end (issue 12): ``attribute --method datamodel``, ``serve``, ``audit``.

A small residual CNN on digits (N = 32 training images, Z = 2 test margins,
4 channels, 2 stages, 8 SGD steps, float64) goes through the real console
scripts: the Prover fits datamodel scores on 600 trainings, serves them on port
0, and ``pacda-verifier audit`` (committed mode, practical planning, a 100-run
pilot, epsilon = 1 x Var(f)) retrains its spot checks and must accept.  Marked
``slow``: 45 to 77 s on two cores busy with other jobs (measured).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prover.tasks import load_task
from tests.integration._cli import attribute_serve_audit

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
    fit, done, body = attribute_serve_audit(
        task_file, tmp_path, env, samples=600, seed=2, epsilon_relative=1.0, timeout=600
    )
    assert "models             600 trained" in fit.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: ACCEPT" in done.stdout
    assert body["decision"] == "accept"
    assert body["task_digest"] == task.digest
    assert body["costs"]["prover_evaluations"] > 0
