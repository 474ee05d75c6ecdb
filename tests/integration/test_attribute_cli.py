"""``pacda-prover attribute`` as a real subprocess: success, resumption and refusals.

Acceptance 3 of issue 4: bad inputs give clear errors (exit code and message
asserted) and nothing is overwritten without ``--force``.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from protocol.scores import load_scores
from prover.tasks.registry import load_task
from tests.integration._cli import LOGREG, prover_exe, sigint_default

SYNTHETIC = """
[task]
kind = "synthetic"
p = 0.5
bound = 8.0
n_outputs = 2

[task.spectrum]
n_items = 20
degree_weights = [0.2, 0.6, 0.15, 0.05]
terms_per_degree = [1, 15, 8, 3]
noise = 0.3
structure_seed = 5
"""


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prover_exe(), "attribute", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "synthetic.toml"
    path.write_text(SYNTHETIC)
    return path


def test_datamodel_end_to_end_then_resume_and_refuse_overwrite(
    tmp_path: Path, task_file: Path
) -> None:
    out = tmp_path / "scores.npz"
    store = tmp_path / "store"
    base = ["--task", task_file, "--method", "datamodel", "--samples", "300", "--out", out]
    first = cli(*base, "--store", store, "--check-samples", "200", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert "[attribute] training 300 models on B_p subsets" in first.stderr
    assert "mean LDS" in first.stdout and "worst err / Var(f)" in first.stdout
    scores = load_scores(out, task_digest=load_task(task_file).digest, n_items=20, n_outputs=2)
    assert scores.method == "datamodel"
    assert scores.meta["config"]["samples"] == 300
    assert scores.meta["self_check"]["outputs"][0]["lds"] > 0.3
    # the budget line: the worst output's eps_min / Var(f), and 1/M scaling below it
    outputs = scores.meta["self_check"]["outputs"]
    worst = max(o["eps_min"] / o["variance"] for o in outputs)
    budget = [line for line in first.stdout.splitlines() if line.startswith("budget: ")]
    assert budget == [budget[0]] and f"epsilon ~ {worst:.3g} x Var(f)" in budget[0]
    for target in (0.1, 0.05):
        if worst > target:
            assert f"~{math.ceil(300 * worst / target):,d} for {target:g} x Var(f)" in budget[0]
    before = out.read_bytes()

    refused = cli(*base, "--store", store, "--check-samples", "200", "--seed", "3")
    assert refused.returncode == 2
    assert f"{out} already exists; refusing to overwrite it (use --force)" in refused.stderr
    assert "training" not in refused.stderr  # refused before any work
    assert out.read_bytes() == before

    again = cli(*base, "--store", store, "--check-samples", "200", "--seed", "3", "--force")
    assert again.returncode == 0, again.stderr
    assert re.search(r"models +0 trained, 50\d from the store", again.stdout), again.stdout
    np.testing.assert_array_equal(load_scores(out).theta, scores.theta)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--method", "tracin", "--samples", "100"],
            "unknown attribution method 'tracin'; known: ",
        ),
        (
            ["--method", "datamodel", "--samples", "21"],
            "--samples M=21 is too small for N=20 items with method 'datamodel': need M >= 22",
        ),
        (["--method", "datamodel"], "--samples M is required for method 'datamodel'"),
        (["--method", "datamodel", "--samples", "-5"], "samples must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_usage_errors(
    tmp_path: Path, task_file: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "s.npz"
    res = cli("--task", task_file, "--out", out, *args)
    assert res.returncode == 2
    assert f"pacda-prover attribute: error: {message}" in res.stderr
    assert not out.exists()


def test_bad_task_file_and_output_path(tmp_path: Path, task_file: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SYNTHETIC.replace('kind = "synthetic"', 'kind = "nope"'))
    res = cli(
        "--task", bad, "--method", "datamodel", "--samples", "50", "--out", tmp_path / "a.npz"
    )
    assert res.returncode == 2 and "unknown task kind 'nope'" in res.stderr
    res = cli("--task", task_file, "--method", "datamodel", "--samples", "50", "--out", "x.txt")
    assert res.returncode == 2 and "--out must name a .npz file" in res.stderr
    missing = tmp_path / "nowhere" / "s.npz"
    res = cli("--task", task_file, "--method", "datamodel", "--samples", "50", "--out", missing)
    assert res.returncode == 2 and "directory" in res.stderr and "does not exist" in res.stderr


def test_store_of_another_task_is_refused(tmp_path: Path, task_file: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(SYNTHETIC.replace("structure_seed = 5", "structure_seed = 6"))
    store = tmp_path / "store"
    ok = cli("--task", other, "--method", "empirical-influence", "--samples", "40",
             "--check-samples", "0", "--out", tmp_path / "o.npz", "--store", store)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    res = cli("--task", task_file, "--method", "empirical-influence", "--samples", "40",
              "--out", tmp_path / "s.npz", "--store", store)  # fmt: skip
    assert res.returncode == 2
    assert "task_digest: stored 'sha256:" in res.stderr or "holds task sha256:" in res.stderr
    assert not (tmp_path / "s.npz").exists()


def test_influence_function_and_empirical_influence_on_logreg(tmp_path: Path) -> None:
    task = tmp_path / "logreg.toml"
    task.write_text(LOGREG)
    res = cli("--task", task, "--method", "influence-function", "--check-samples", "60",
              "--out", tmp_path / "if.npz")  # fmt: skip
    assert res.returncode == 0, res.stderr
    scores = load_scores(tmp_path / "if.npz")
    assert scores.method == "influence-function" and scores.theta.shape == (3, 40)
    assert scores.meta["fit"]["solver"] == "exact"
    res = cli("--task", task, "--method", "empirical-influence", "--samples", "200",
              "--check-samples", "60", "--out", tmp_path / "ei.npz")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert load_scores(tmp_path / "ei.npz").method == "empirical-influence"


@pytest.mark.slow
def test_ray_executor_gives_the_same_scores(tmp_path: Path, task_file: Path) -> None:
    """``--executor ray`` (a local Ray instance started by the CLI) matches in-process."""
    common = ["--task", task_file, "--method", "datamodel", "--samples", "100",
              "--check-samples", "40", "--seed", "9"]  # fmt: skip
    local = cli(*common, "--out", tmp_path / "local.npz")
    assert local.returncode == 0, local.stderr
    ray = cli(*common, "--out", tmp_path / "ray.npz", "--executor", "ray")
    assert ray.returncode == 0, ray.stderr
    a, b = load_scores(tmp_path / "local.npz"), load_scores(tmp_path / "ray.npz")
    assert a.digest() == b.digest()
    usage = cli(*common, "--out", tmp_path / "x.npz", "--ray-address", "auto")
    assert usage.returncode == 2 and "--ray-address needs --executor ray" in usage.stderr


def verifier_exe() -> str:
    return str(Path(prover_exe()).with_name("pacda-verifier"))


def test_printed_attribution_digest_is_the_reports(tmp_path: Path, task_file: Path) -> None:
    """One digest, one name: ``attribute`` prints what the report records and ``show`` shows."""
    out = tmp_path / "scores.npz"
    made = cli("--task", task_file, "--method", "datamodel", "--samples", "100",
               "--check-samples", "0", "--out", out)  # fmt: skip
    assert made.returncode == 0, made.stderr
    found = re.search(r"^attribution digest +(sha256:[0-9a-f]{64})$", made.stdout, re.M)
    assert found is not None, made.stdout
    assert "scores digest" not in made.stdout
    digest = found.group(1)
    report = tmp_path / "r.json"
    env = {"PACDA_HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [verifier_exe(), "certify", "--task", str(task_file), "--scores", str(out),
         "--epsilon-relative", "0.5", "--delta", "0.05", "--report", str(report)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert f"attribution digest: {digest}" in done.stdout
    shown = subprocess.run(
        [verifier_exe(), "show", str(report)], capture_output=True, text=True, timeout=60, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert f"attribution digest: {digest}" in shown.stdout
    assert f'"attribution_digest":"{digest}"' in report.read_text()


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    """SIGINT while training: one line on stderr (no traceback), exit 130, no scores file."""
    task = tmp_path / "logreg.toml"
    task.write_text(LOGREG)
    out = tmp_path / "s.npz"
    with subprocess.Popen(
        [prover_exe(), "attribute", "--task", str(task), "--method", "datamodel",
         "--samples", "2000000", "--out", str(out), "--store", str(tmp_path / "store"),
         "--no-progress"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        preexec_fn=sigint_default,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # the stage line says training has begun
            lines.append(line)
            if line.startswith("[attribute] training "):
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)  # a hang fails here, not at the suite's limit
        assert proc.returncode == 130, "".join(lines) + rest
    assert rest.strip().splitlines() == [
        f"pacda-prover attribute: interrupted; models trained so far are kept in --store "
        f"{tmp_path / 'store'} (rerun to resume)"
    ], rest
    assert not out.exists()


def test_attribute_help_states_the_exit_codes() -> None:
    done = subprocess.run([prover_exe(), "attribute", "--help"], capture_output=True, text=True)
    text = " ".join(done.stdout.split())
    assert "2 usage error" in text and "130 interrupted" in text
