"""The self-check describes the audit the Prover will face.

``pacda-prover attribute`` prints, per output, an interval on err and
``eps_min``, the smallest epsilon whose default audit plan has a completeness
radius covering the interval's upper end.  On the synthetic task the exact err
of any scores is known (its spectrum is planted), so this checks, through the
real commands and a real gRPC audit:

* the interval brackets the exact err (the interval is at delta = 1e-3 here,
  union over the outputs, so a false failure has probability about 1e-3);
* the audit run with default settings at epsilon = 1.1 x max_z eps_min
  accepts.  eps_min is the least epsilon whose default plan (the
  u-statistic's) has a completeness radius covering err_high, so honest
  scores with err <= err_high lie inside the radius at 1.1 x eps_min and are
  accepted with probability >= 1 - delta (delta = 1e-3).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

from protocol.scores import load_scores
from prover.tasks.registry import load_task
from tests.integration._cli import installed, served

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "examples" / "tasks" / "synthetic.toml"


def test_eps_min_is_accepted_by_a_real_audit_and_err_is_bracketed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    scores = tmp_path / "scores.npz"
    fit = subprocess.run(
        [installed("pacda-prover"), "attribute", "--task", str(TASK), "--method", "datamodel",
         "--samples", "3000", "--check-samples", "4000", "--delta", "0.001", "--seed", "3",
         "--out", str(scores)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    loaded = load_scores(scores)
    check = loaded.meta["self_check"]
    task = load_task(TASK)
    exact = task.function.err(loaded.theta0, loaded.theta)  # type: ignore[attr-defined]
    outputs = check["outputs"]
    for z, o in enumerate(outputs):
        assert o["err_low"] <= exact[z] <= o["err_high"], (z, exact[z], o)
    eps_min = max(o["eps_min"] for o in outputs)
    assert np.isfinite(eps_min) and eps_min > 0

    report = tmp_path / "report.json"
    serve = [installed("pacda-prover"), "serve", "--task", str(TASK), "--scores", str(scores),
             "--port", "0", "--log-level", "WARNING"]  # fmt: skip
    with served(serve, env) as address:
        audit = subprocess.run(
            [installed("pacda-verifier"), "audit", "--prover", address, "--task", str(TASK),
             "--epsilon", repr(1.1 * eps_min), "--delta", "0.001", "--yes",
             "--report", str(report)],
            capture_output=True, text=True, timeout=300, env=env, check=False,
        )  # fmt: skip
    body = json.loads(report.read_text())["report"]
    certified, costs = body.get("certified_upper_bound"), body.get("costs")
    print(f"eps_min {eps_min:.4g}; exact err {exact}; certified {certified}; costs {costs}")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
    assert body["decision"] == "accept"
    # the default statistic, as in the self-check
    assert body["plan"]["estimator"] == "degree-1"
    assert body["plan"]["statistic"] == "u-statistic"
    assert body["certified_upper_bound"] >= float(np.max(exact))
