"""``pacda-prover spectrum`` on the synthetic task, whose spectrum is planted (known exactly)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protocol.scores import Scores, save_scores
from prover.tasks.registry import load_task
from tests.integration._cli import LOGREG as SMALL_LOGREG
from tests.integration._cli import prover_exe, sigint_default

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "examples" / "tasks" / "synthetic.toml"
LOGREG = ROOT / "examples" / "tasks" / "logreg.toml"


def _spectrum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prover.cli", "spectrum", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def exact_scores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The optimal datamodel of the synthetic task: q = f - g* has weight only at degrees 2, 3."""
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("spectrum") / "exact.npz"
    save_scores(path, Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact"))
    return path


def test_measures_the_planted_spectrum(exact_scores: Path, tmp_path: Path) -> None:
    out = tmp_path / "spectrum.json"
    done = _spectrum("--task", str(SYNTHETIC), "--scores", str(exact_scores),
                     "--pairs", "4000", "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    function = load_task(SYNTHETIC).function  # type: ignore[attr-defined]
    weights = function.degree_weights()[0]  # B_0..B_3 of every output (all alike here)
    second = weights[2] + weights[3] + function.noise_variance()  # E[q^2] of the exact scores
    s = json.loads(out.read_text())
    lo, hi = s["tail_bounds"]
    assert lo <= weights[3] / second <= hi  # the planted 0.05 / 0.23 of E[q^2]
    assert s["fits"]["2"]["chi2"] > 11.3  # degrees <= 2 cannot explain it (p < 0.01, 3 dof)
    seed_noise = function.noise_variance() / second
    assert abs(s["seed_noise"] - seed_noise) < 4 * s["curve"]["error"][0]
    u, u_err = np.asarray(s["err_ustatistic"]), np.asarray(s["err_ustatistic_error"])
    assert np.all(np.abs(u) < 4 * u_err)  # the exact scores have err = 0
    assert s["trainings"] == 4000 * 8
    assert f"--tail-fraction {min(1.0, hi):.3g} covers the upper bound" in done.stdout
    assert "rho = -0.50" in done.stderr  # progress, one line per correlation


def test_biased_scores_show_their_err(exact_scores: Path, tmp_path: Path) -> None:
    """Shifted scores: the U-statistic finds the shift's err, (E q)^2 = 0.3^2 of E[q^2] units."""
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    shifted = tmp_path / "shifted.npz"
    save_scores(shifted, Scores(theta0=theta0 + 0.3, theta=theta, task_digest=task.digest,
                                method="exact"))  # fmt: skip
    out = tmp_path / "s.json"
    done = _spectrum("--task", str(SYNTHETIC), "--scores", str(shifted), "--pairs", "2000",
                     "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    s = json.loads(out.read_text())
    expected = 0.09 / np.asarray(s["second_moments"])  # err / E[q^2]
    u, u_err = np.asarray(s["err_ustatistic"]), np.asarray(s["err_ustatistic_error"])
    assert np.all(np.abs(u - expected) < 4 * u_err + 0.01), (u, expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pairs", "10"], "--pairs must be >= 100"),
        (["--delta", "1.5"], "--delta must lie in (0, 1)"),
        (["--device", "cuda:7"], "cuda"),
    ],
)
def test_usage_errors(exact_scores: Path, args: list[str], message: str) -> None:
    done = _spectrum("--task", str(SYNTHETIC), "--scores", str(exact_scores), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_an_existing_json_file_needs_force(exact_scores: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    out.write_text("keep me")
    base = ["--task", str(SYNTHETIC), "--scores", str(exact_scores), "--pairs", "100"]
    refused = _spectrum(*base, "--json", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert out.read_text() == "keep me"  # checked before any training
    assert _spectrum(*base, "--json", str(out), "--force").returncode == 0
    assert json.loads(out.read_text())["pairs"] == 100


def test_scores_for_another_task_are_refused(exact_scores: Path) -> None:
    done = _spectrum("--task", str(LOGREG), "--scores", str(exact_scores), "--pairs", "100")
    assert done.returncode == 2, done.stderr
    assert "scores are for task" in done.stderr


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    task_file = tmp_path / "logreg.toml"
    task_file.write_text(SMALL_LOGREG)
    task = load_task(task_file)
    zeros = Scores(theta0=np.zeros(task.n_outputs), theta=np.zeros((task.n_outputs, task.n_items)),
                   task_digest=task.digest, method="zero")  # fmt: skip
    scores = save_scores(tmp_path / "zero.npz", zeros)
    out = tmp_path / "s.json"
    with subprocess.Popen(
        [prover_exe(), "spectrum", "--task", str(task_file), "--scores", str(scores),
         "--pairs", "400000", "--json", str(out)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, preexec_fn=sigint_default,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed just before training starts
        assert first.startswith("spectrum: training 3,200,000 models"), first
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, first + rest
    assert rest.strip().splitlines()[-1] == "spectrum: interrupted; nothing written", rest
    assert "Traceback" not in rest and not out.exists()
