"""The marketplace example, small: real ``pacda-prover serve`` subprocesses, real Verifier.

Runs ``examples/marketplace_audit/marketplace.py`` as a subprocess on a smaller
synthetic task (N = 20 contributors, Z = 1) and checks its verdicts, payouts
and signed reports.

False-failure bound.  delta = 0.01; the plan allots the sampling error at
most eps/4 with probability delta/2 (Bernstein).  The honest scores (exact
err ~ 0) are rejected only if the estimate deviates by eps/2, twice that; the
manipulated ones (exact err >= 1.3 eps, asserted) are accepted only if it
deviates by more than 0.8 eps, over three times that.  By the sub-Gaussian
part of the Bernstein bound each of these is rarer than (delta/2)^4 < 1e-9
(practical planning: under its variance assumption, docs/protocol.md).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from protocol.report import verify_report
from protocol.signing import load_public_key
from tests.adversarial.test_scores import REJECTED

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "marketplace_audit" / "marketplace.py"
SMALL_TASK = """\
[task]
kind = "synthetic"
p = 0.5
bound = 5.0
output_tolerance = 1e-12
weight_tolerance = 0.0
n_outputs = 1

[task.spectrum]
n_items = 20
degree_weights = [0.1, 0.8, 0.1]
terms_per_degree = [1, 15, 8]
noise = 0.3
structure_seed = 11
"""
BUDGET = 100_000.0
SHAVE = 0.1


def test_marketplace_small(tmp_path: Path) -> None:
    task = tmp_path / "task.toml"
    task.write_text(SMALL_TASK)
    out = tmp_path / "out"
    args = [
        sys.executable, str(SCRIPT), "--task", str(task), "--out", str(out),
        "--trainings", "3000", "--pilot", "200", "--epsilon-fraction", "0.55",
        "--delta", "0.01", "--shave", str(SHAVE), "--boost", "0.45",
        "--favour-fraction", "0.2", "--budget", str(BUDGET), "--seed", "3",
    ]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "honest paid, both manipulations caught" in run.stdout
    assert "[honest] ACCEPT" in run.stdout
    assert "[shaved] ABORT" in run.stdout and "[favoured] ABORT" in run.stdout

    summary = json.loads((out / "summary.json").read_text())
    honest, shaved, favoured = summary["honest"], summary["shaved"], summary["favoured"]
    assert honest["decision"] == "accept" and honest["reason"] == ""
    assert honest["certified_upper_bound"] < summary["epsilon"]
    assert abs(honest["total_payout"] - BUDGET) < 1e-6 * BUDGET
    for cheat in (shaved, favoured):
        assert cheat["decision"] == "abort"
        assert re.search(REJECTED, cheat["reason"]), cheat["reason"]
        assert min(cheat["exact_err_over_epsilon"]) >= 1.3
    assert abs(shaved["payout_difference"] + (1 - SHAVE) * BUDGET) < 1e-6 * BUDGET
    assert favoured["payout_difference"] > 0 and len(favoured["favoured"]) == 4
    assert f"{shaved['payout_difference']:+,.2f}" in run.stdout

    public = load_public_key(out / "verifier.pub")
    for name in ("honest", "shaved", "favoured"):
        report = verify_report((out / f"{name}.report.json").read_bytes(), public)
        assert report.decision == summary[name]["decision"]
        assert report.mode == "committed" and report.planning == "practical"
