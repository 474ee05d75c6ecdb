"""``pacda-prover import-scores``: other tools' score matrices become pacda scores files.

The round trips run the installed ``pacda-prover`` entry point as a subprocess on
the ``synthetic`` example task, whose exact optimal linear datamodel is known
(``task.function.optimal_attribution()``); the refusals call the same ``main``
in-process (faster) and check the exit status and the one-line message.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.digests import attribution_digest
from protocol.scores import Scores, load_scores
from prover.cli import main
from prover.tasks.registry import load_task
from prover.tasks.synthetic import SyntheticTask
from tests.integration._cli import LOGREG, prover_exe, sigint_default

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "examples" / "tasks" / "synthetic.toml"  # N = 50, Z = 2, p = 0.5

# N = Z = 3: a square score matrix, (Z, N) and (N, Z) cannot be told apart.
SQUARE = """
[task]
kind = "synthetic"
p = 0.5
bound = 6.0
n_outputs = 3

[task.spectrum]
n_items = 3
degree_weights = [0.2, 0.6, 0.2]
terms_per_degree = [1, 3, 1]
noise = 0.1
structure_seed = 1
"""


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prover_exe(), "import-scores", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def printed_digest(stdout: str) -> str:
    found = re.search(r"^attribution digest (sha256:[0-9a-f]{64})$", stdout, re.MULTILINE)
    assert found is not None, stdout
    return found.group(1)


@pytest.fixture(scope="module")
def task() -> SyntheticTask:
    t = load_task(SYNTHETIC)
    assert isinstance(t, SyntheticTask)
    return t


@pytest.fixture(scope="module")
def exact(task: SyntheticTask) -> tuple[np.ndarray, np.ndarray]:
    """pacda's own exact optimal scores ``(theta0 (Z,), theta (Z, N))``, pm encoding."""
    return task.function.optimal_attribution()


@pytest.fixture(scope="module")
def mask(exact: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The same model in the 0/1 mask encoding: ``(beta0 (Z,), beta (Z, N))``."""
    theta0, theta = exact
    return theta0 - theta.sum(axis=1), 2.0 * theta


def write(path: Path, arr: np.ndarray) -> Path:
    """Save ``arr`` the way another tool might: .npy, .csv (with a header) or .pt."""
    if path.suffix == ".npy":
        np.save(path, arr)
    elif path.suffix == ".pt":
        torch.save(torch.from_numpy(np.ascontiguousarray(arr)), path)
    elif path.suffix == ".csv":
        rows = np.atleast_2d(arr)
        header = ",".join(f"test_{j}" for j in range(rows.shape[1]))
        np.savetxt(path, rows, delimiter=",", fmt="%.17g", header=header, comments="")
    else:
        raise AssertionError(path)
    return path


def in_process(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """``main(["import-scores", ...])``: the exit status and stderr."""
    code = main(["import-scores", *map(str, args)])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", [".npy", ".csv", ".pt"])
def test_exact_scores_round_trip_in_mask_encoding(
    tmp_path: Path,
    task: SyntheticTask,
    exact: tuple[np.ndarray, np.ndarray],
    mask: tuple[np.ndarray, np.ndarray],
    ext: str,
) -> None:
    """(N, Z) mask-encoded exact scores + g(empty set) intercepts import to pacda's exact scores."""
    beta0, beta = mask
    scores_in = write(tmp_path / f"trak{ext}", beta.T)  # (N, Z) = (50, 2)
    intercept = write(tmp_path / f"beta0{ext}", beta0)
    out = tmp_path / "imported.npz"
    done = cli("--task", SYNTHETIC, "--in", scores_in, "--layout", "NZ", "--encoding", "mask",
               "--intercept", intercept, "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    s = load_scores(out, task_digest=task.digest, n_items=50, n_outputs=2)
    theta0, theta = exact
    # theta = beta / 2 is exact; theta0 = beta0 + sum(beta)/2 rounds once per term.
    np.testing.assert_allclose(s.theta, theta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.theta0, theta0, rtol=1e-12, atol=1e-12)
    assert task.function.err(s.theta0, s.theta) == pytest.approx(0.0, abs=1e-20)
    assert s.method == "imported-trak"
    assert s.meta["import"]["layout"] == "NZ" and s.meta["import"]["encoding"] == "mask"
    assert s.meta["import"]["intercepts"] == "file"
    assert printed_digest(done.stdout) == attribution_digest(s.theta0, s.theta)
    assert f"task digest        {task.digest}" in done.stdout


def test_pm_encoding_zn_layout_npz_key_and_intercept_zero(
    tmp_path: Path, task: SyntheticTask, exact: tuple[np.ndarray, np.ndarray]
) -> None:
    """pm scores are taken as they are; --key picks the array; the layout is read from the shape."""
    _, theta = exact
    src = tmp_path / "kronfluence.npz"
    np.savez(src, scores=theta, other=np.zeros(3))
    out = tmp_path / "s.npz"
    done = cli("--task", SYNTHETIC, "--in", src, "--key", "scores", "--encoding", "pm",
               "--intercept-zero", "--tool", "kronfluence", "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    s = load_scores(out, task_digest=task.digest)
    np.testing.assert_array_equal(s.theta, theta)
    np.testing.assert_array_equal(s.theta0, np.zeros(2))
    assert s.method == "imported-kronfluence"
    assert s.meta["import"]["layout"] == "ZN" and s.meta["import"]["key"] == "scores"


def test_mask_intercept_zero_means_empty_set_predicts_zero(
    tmp_path: Path, task: SyntheticTask, mask: tuple[np.ndarray, np.ndarray]
) -> None:
    """--intercept-zero in the mask encoding: g(empty set) = theta0 - sum(theta) = 0."""
    _, beta = mask
    src = write(tmp_path / "dattri.npy", beta.T)
    out = tmp_path / "s.npz"
    assert main(["import-scores", "--task", str(SYNTHETIC), "--in", str(src), "--encoding",
                 "mask", "--intercept-zero", "--out", str(out)]) == 0  # fmt: skip
    s = load_scores(out, task_digest=task.digest)
    empty = -np.ones((1, s.n_items), dtype=np.int8)
    np.testing.assert_allclose(s.predict(empty)[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(s.mask_encoding()[1], beta, rtol=1e-15)


def test_calibrate_recovers_a_rescaled_ranking(
    tmp_path: Path,
    task: SyntheticTask,
    exact: tuple[np.ndarray, np.ndarray],
    mask: tuple[np.ndarray, np.ndarray],
) -> None:
    """Scores x 7.3 without an intercept: --calibrate K fits scale 1/7.3 and the intercept.

    The imported predictor h = 7.3 theta*.x is proportional to the optimal linear
    part, so the population least-squares fit of f on [1, h] is exactly the optimal
    datamodel; with K samples the residual f - g* (variance R = B_{>=2} including
    the seed noise, known exactly here) leaves the intercept with standard error
    sqrt(R/K) and the relative scale with sqrt(R/(K B_1)) (p = 1/2: Var(h/7.3) = B_1).
    Over 40 seeds the measured errors had 0.95-1.18 times these standard errors
    (the residual is not independent of x, only uncorrelated), so 6 of them is a
    wide margin; the run is seeded and so deterministic.
    """
    K = 4000
    _, beta = mask
    src = write(tmp_path / "ranking.csv", 7.3 * beta.T)
    out = tmp_path / "s.npz"
    done = cli("--task", SYNTHETIC, "--in", src, "--layout", "NZ", "--encoding", "mask",
               "--calibrate", K, "--tool", "trak", "--out", out, "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"calibrating: training {K} models of the task on B_p subsets (p=0.5" in done.stderr
    s = load_scores(out, task_digest=task.digest)
    theta0, theta = exact
    R = task.function.residual_weight()
    B1 = task.function.degree_weights()[:, 1]
    se_intercept = np.sqrt(R / K)
    se_scale = np.sqrt(R / (K * B1))
    cal = s.meta["import"]["calibration"]
    scale = np.array(cal["scale"])
    assert np.all(np.abs(scale * 7.3 - 1.0) < 6 * se_scale), (scale * 7.3, se_scale)
    assert np.all(np.abs(s.theta0 - theta0) < 6 * se_intercept), (s.theta0, theta0)
    # The written scores are scale x the imported ones, i.e. the exact ones up to that factor.
    np.testing.assert_allclose(s.theta, (scale * 7.3)[:, None] * theta, rtol=1e-12)
    # The residual mean square estimates R (the optimal linear MSE) up to sampling error.
    np.testing.assert_allclose(cal["residual_mean_square"], R, rtol=0.15)
    for z in range(2):  # the table prints the fitted scale per output
        assert re.search(rf"^\s+{z}\s+{scale[z]:.6g}\s", done.stdout, re.MULTILINE), done.stdout
    digest = printed_digest(done.stdout)
    assert digest == attribution_digest(s.theta0, s.theta)
    # The imported file is audited like any other (local mode: the Verifier trains
    # everything itself), under the digest import-scores printed.  This task's
    # spectrum puts B_3 = 0.05 of the residual's 0.23 at degree 3 (0.22 of E[q^2]),
    # above the default completeness assumption --tail-fraction 0.1: say so.
    verifier = Path(prover_exe()).with_name("pacda-verifier")
    audit = subprocess.run(
        [str(verifier), "certify", "--task", str(SYNTHETIC), "--scores", str(out),
         "--epsilon-relative", "0.05", "--delta", "0.05", "--tail-fraction", "0.25",
         "--yes"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "verdict: ACCEPT" in audit.stdout
    assert f"attribution digest: {digest}" in audit.stdout


@pytest.mark.parametrize("ext", [".npy", ".npz", ".pt", ".csv"])
@pytest.mark.parametrize("layout", ["ZN", "NZ"])
@pytest.mark.parametrize("encoding", ["mask", "pm"])
@pytest.mark.parametrize("give_layout", [True, False])
def test_every_format_layout_and_encoding_round_trips(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    task: SyntheticTask,
    exact: tuple[np.ndarray, np.ndarray],
    mask: tuple[np.ndarray, np.ndarray],
    ext: str,
    layout: str,
    encoding: str,
    give_layout: bool,
) -> None:
    """Each of .npy/.npz/.pt/.csv x (Z, N)/(N, Z) x mask/pm imports to pacda's exact scores.

    With the intercept in the same encoding and format, the written file is the
    exact optimal datamodel (up to one rounding per term of ``sum(beta)/2``); the
    layout is given or read from the shape (N = 50 != Z = 2).
    """
    theta0, theta = exact
    icpt, coef = mask if encoding == "mask" else exact
    matrix = coef if layout == "ZN" else coef.T

    def save(name: str, arr: np.ndarray) -> Path:
        path = tmp_path / f"{name}{ext}"
        if ext == ".npz":
            np.savez(path, **{name: arr})
            return path
        return write(path, arr)

    src, intercept = save("scores", matrix), save("intercept", icpt)
    out = tmp_path / "imported.npz"
    args: list[str | Path] = ["--task", SYNTHETIC, "--in", src, "--encoding", encoding,
                              "--intercept", intercept, "--out", out]  # fmt: skip
    if give_layout:
        args += ["--layout", layout]
    code, err = in_process(capsys, *args)
    assert code == 0, err
    s = load_scores(out, task_digest=task.digest, n_items=50, n_outputs=2)
    np.testing.assert_allclose(s.theta, theta, rtol=1e-15, atol=0.0)
    np.testing.assert_allclose(s.theta0, theta0, rtol=1e-12, atol=1e-12)
    assert s.meta["import"]["layout"] == layout and s.meta["import"]["encoding"] == encoding
    assert s.meta["import"]["key"] == ("scores" if ext == ".npz" else None)
    # And back: the file's mask form is the mask input (pm: the pm input).
    back0, back = s.mask_encoding() if encoding == "mask" else (s.theta0, s.theta)
    np.testing.assert_allclose(back, coef, rtol=1e-15, atol=0.0)
    np.testing.assert_allclose(back0, icpt, rtol=1e-12, atol=1e-12)


def test_intercept_mean_fits_the_intercept_of_exact_slopes(
    tmp_path: Path,
    task: SyntheticTask,
    exact: tuple[np.ndarray, np.ndarray],
    mask: tuple[np.ndarray, np.ndarray],
) -> None:
    """--intercept-mean: theta kept exactly, theta0 within 6 standard errors sqrt(R/K)."""
    K = 2000
    _, beta = mask
    src = write(tmp_path / "beta.npy", beta.T)
    out = tmp_path / "s.npz"
    assert main(["import-scores", "--task", str(SYNTHETIC), "--in", str(src), "--encoding",
                 "mask", "--intercept-mean", "--intercept-samples", str(K),
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    s = load_scores(out, task_digest=task.digest)
    theta0, theta = exact
    np.testing.assert_allclose(s.theta, theta, rtol=1e-15)
    se = np.sqrt(task.function.residual_weight() / K)
    assert np.all(np.abs(s.theta0 - theta0) < 6 * se), (s.theta0, theta0, se)
    assert s.meta["import"]["intercepts"] == "mean"


def test_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: tuple[np.ndarray, np.ndarray]
) -> None:
    src = write(tmp_path / "b.npy", mask[1].T)
    out = tmp_path / "s.npz"
    out.write_bytes(b"keep me")
    args = ("--task", SYNTHETIC, "--in", src, "--encoding", "mask", "--intercept-zero",
            "--out", out)  # fmt: skip
    code, err = in_process(capsys, *args)
    assert code == 2 and "already exists; refusing to overwrite it (use --force)" in err
    assert out.read_bytes() == b"keep me"
    code, err = in_process(capsys, *args, "--force")
    assert code == 0, err
    assert isinstance(load_scores(out), Scores)


# ------------------------------------------------------------------ refusals


def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str | Path) -> str:
    """Run with ``args``; assert exit 2, one line on stderr, nothing written; return the line."""
    out = tmp_path / "refused.npz"
    code, err = in_process(capsys, "--out", out, *args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("pacda-prover import-scores: error: "), err
    assert not out.exists()
    return lines[0]


def test_wrong_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: tuple[np.ndarray, np.ndarray]
) -> None:
    beta = mask[1]  # (Z, N) = (2, 50)
    base = ("--task", SYNTHETIC, "--encoding", "mask", "--intercept-zero")
    extra = write(tmp_path / "extra.npy", np.vstack([beta, beta[:1]]).T)  # (50, 3)
    line = refused(capsys, tmp_path, *base, "--in", extra)
    assert "expected shape (Z, N) = (2, 50) or (N, Z) = (50, 2) for this task, got (50, 3)" in line
    right = write(tmp_path / "zn.npy", beta)
    line = refused(capsys, tmp_path, *base, "--in", right, "--layout", "NZ")
    assert "expected shape (N, Z) = (50, 2) for --layout NZ, got (2, 50)" in line
    assert "(that is --layout ZN)" in line
    cube = write(tmp_path / "cube.npy", beta[None])
    line = refused(capsys, tmp_path, *base, "--in", cube)
    assert "got (1, 2, 50)" in line
    # A square matrix (N = Z) cannot be oriented from its shape.
    square_task = tmp_path / "square.toml"
    square_task.write_text(SQUARE)
    square = write(tmp_path / "square.npy", np.eye(3))
    line = refused(capsys, tmp_path, "--task", square_task, "--encoding", "pm",
                   "--intercept-zero", "--in", square)  # fmt: skip
    assert "shape (3, 3) is ambiguous (N = Z = 3); say --layout ZN or NZ" in line
    ok = ("--task", square_task, "--encoding", "pm", "--intercept-zero", "--in", square)
    code, err = in_process(capsys, *ok, "--layout", "NZ", "--out", tmp_path / "sq.npz")
    assert code == 0, err
    # The intercept file must hold Z numbers.
    src = write(tmp_path / "b.npy", beta.T)
    bad0 = write(tmp_path / "b0.npy", np.zeros(3))
    line = refused(capsys, tmp_path, "--task", SYNTHETIC, "--encoding", "mask", "--in", src,
                   "--intercept", bad0)  # fmt: skip
    assert "expected 2 intercept(s), shape (2,), got (3,)" in line


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("ext", [".npy", ".csv", ".pt"])
def test_non_finite_values(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mask: tuple[np.ndarray, np.ndarray],
    bad: float,
    ext: str,
) -> None:
    beta = mask[1].T.copy()
    beta[7, 1] = bad
    src = write(tmp_path / f"b{ext}", beta)
    line = refused(capsys, tmp_path, "--task", SYNTHETIC, "--encoding", "mask",
                   "--intercept-zero", "--in", src)  # fmt: skip
    assert "1 non-finite value(s) (NaN or inf), the first at index (7, 1)" in line


def test_non_finite_intercept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: tuple[np.ndarray, np.ndarray]
) -> None:
    src = write(tmp_path / "b.npy", mask[1].T)
    b0 = write(tmp_path / "b0.npy", np.array([0.1, math.nan]))
    line = refused(capsys, tmp_path, "--task", SYNTHETIC, "--encoding", "mask", "--in", src,
                   "--intercept", b0)  # fmt: skip
    assert "(--intercept): 1 non-finite value(s)" in line


def test_unknown_extension_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    txt = tmp_path / "scores.txt"
    txt.write_text("1,2\n")
    base = ("--task", SYNTHETIC, "--encoding", "mask", "--intercept-zero")
    line = refused(capsys, tmp_path, *base, "--in", txt)
    assert "unknown extension '.txt'; expected one of .npy, .npz, .pt, .csv" in line
    line = refused(capsys, tmp_path, *base, "--in", tmp_path / "absent.npy")
    assert "absent.npy: no such file" in line


def test_object_arrays_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obj = np.empty((50, 2), dtype=object)
    obj[:] = 1.0
    npy = tmp_path / "obj.npy"
    np.save(npy, obj, allow_pickle=True)
    base = ("--task", SYNTHETIC, "--encoding", "mask", "--intercept-zero")
    line = refused(capsys, tmp_path, *base, "--in", npy)
    assert "is an object array (pickled Python objects), not numbers; refusing to load it" in line
    npz = tmp_path / "obj.npz"
    np.savez(npz, scores=obj)
    line = refused(capsys, tmp_path, *base, "--in", npz)
    assert "array 'scores' is an object array" in line


def test_missing_and_ambiguous_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: tuple[np.ndarray, np.ndarray]
) -> None:
    beta = mask[1].T
    base = ("--task", SYNTHETIC, "--encoding", "mask", "--intercept-zero")
    npz = tmp_path / "two.npz"
    np.savez(npz, scores=beta, grads=beta)
    line = refused(capsys, tmp_path, *base, "--in", npz, "--key", "trak")
    assert "no array named 'trak' (--key); it holds: grads, scores" in line
    line = refused(capsys, tmp_path, *base, "--in", npz)
    assert "holds 2 arrays (grads, scores); choose one with --key NAME" in line
    pt = tmp_path / "dict.pt"
    torch.save({"scores": torch.from_numpy(beta.copy())}, pt)
    line = refused(capsys, tmp_path, *base, "--in", pt, "--key", "trak")
    assert "no tensor named 'trak' (--key); it holds: scores" in line
    assert in_process(capsys, *base, "--in", pt, "--out", tmp_path / "ok.npz")[0] == 0
    npy = write(tmp_path / "b.npy", beta)
    line = refused(capsys, tmp_path, *base, "--in", npy, "--key", "scores")
    assert "--key applies to .npz and .pt files only, not .npy" in line


def test_csv_quoted_numbers_and_malformed_rows(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    task: SyntheticTask,
    exact: tuple[np.ndarray, np.ndarray],
) -> None:
    """A header and quoted numbers are read; a text row after the header or a ragged row is not."""
    theta = exact[1]  # (Z, N), pm
    quoted = tmp_path / "quoted.csv"
    body = "\n".join(",".join(f'"{float(v)!r}"' for v in row) for row in theta)
    quoted.write_text("item_" + ",item_".join(map(str, range(50))) + "\n" + body + "\n")
    out = tmp_path / "q.npz"
    base = ("--task", SYNTHETIC, "--encoding", "pm", "--intercept-zero")
    code, err = in_process(capsys, *base, "--in", quoted, "--out", out)
    assert code == 0, err
    np.testing.assert_array_equal(load_scores(out, task_digest=task.digest).theta, theta)
    text_row = tmp_path / "text.csv"
    text_row.write_text("a,b\n1,2\nthree,4\n")
    line = refused(capsys, tmp_path, *base, "--in", text_row)
    assert "line 3 is not a row of comma-separated numbers: 'three,4'" in line
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    line = refused(capsys, tmp_path, *base, "--in", ragged)
    assert "line 2 has 1 values, earlier rows have 2" in line


def test_pickled_pt_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Arbitrary pickled objects are not loaded (weights_only=True), in one line."""
    pt = tmp_path / "evil.pt"
    torch.save({"scores": Path("x")}, pt)
    line = refused(capsys, tmp_path, "--task", SYNTHETIC, "--encoding", "mask",
                   "--intercept-zero", "--in", pt)  # fmt: skip
    assert "not loadable with torch.load(weights_only=True)" in line


def test_intercept_choice_is_exactly_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: tuple[np.ndarray, np.ndarray]
) -> None:
    src = write(tmp_path / "b.npy", mask[1].T)
    base = ("--task", SYNTHETIC, "--encoding", "mask", "--in", src)
    line = refused(capsys, tmp_path, *base)
    assert "give exactly one of --calibrate K, --intercept FILE, --intercept-mean, " in line
    assert "(got none)" in line
    line = refused(capsys, tmp_path, *base, "--calibrate", "100", "--intercept-zero")
    assert "(got --calibrate, --intercept-zero)" in line
    line = refused(capsys, tmp_path, *base, "--calibrate", "2")
    assert "--calibrate K needs K >= 3 models, got 2" in line
    line = refused(capsys, tmp_path, *base, "--intercept-zero", "--intercept-samples", "50")
    assert "--intercept-samples needs --intercept-mean" in line
    line = refused(capsys, tmp_path, *base, "--calibrate", "100", "--seed", "-1")
    assert "seed must be an integer in [0, 2**63), got -1" in line


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    """SIGINT during calibration: one line on stderr (no traceback), exit 130, nothing written."""
    task = tmp_path / "logreg.toml"
    task.write_text(LOGREG)
    src = write(tmp_path / "ones.npy", np.ones((40, 3)))
    out = tmp_path / "s.npz"
    with subprocess.Popen(
        [prover_exe(), "import-scores", "--task", str(task), "--in", str(src), "--encoding",
         "mask", "--calibrate", "200000", "--out", str(out), "--no-progress"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        preexec_fn=sigint_default,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # the stage line says training has begun
            lines.append(line)
            if line.startswith("[import-scores] calibrating: training "):
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 130, "".join(lines) + rest
    assert rest.strip().splitlines() == [
        "pacda-prover import-scores: interrupted; nothing was written"
    ], rest
    assert not out.exists()


def test_help_states_the_exit_codes_and_formats() -> None:
    done = subprocess.run(
        [prover_exe(), "import-scores", "--help"], capture_output=True, text=True, check=False
    )
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "2 usage error" in text and "130 interrupted" in text
    assert ".npy, .npz, .pt, .csv" in text
    listed = subprocess.run([prover_exe(), "--help"], capture_output=True, text=True, check=False)
    assert "import-scores" in listed.stdout


def test_the_self_check_is_printed_and_brackets_the_exact_err(
    tmp_path: Path, task: SyntheticTask, mask: tuple[np.ndarray, np.ndarray]
) -> None:
    """``import-scores`` prints ``attribute``'s self-check; on synthetic its interval holds err."""
    _, beta = mask
    noisy = beta + np.random.default_rng(11).normal(0.0, 0.08, beta.shape)
    src = write(tmp_path / "noisy.npy", 3.0 * noisy.T)  # a ranking on the tool's own scale
    out = tmp_path / "s.npz"
    done = cli("--task", SYNTHETIC, "--in", src, "--encoding", "mask", "--calibrate", 300,
               "--check-samples", 600, "--seed", 2, "--out", out, "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "self-check on held-out retrainings (err with the audit's degree-1 statistic" in (
        done.stdout
    )
    assert re.search(r"^budget: these scores can be audited down to epsilon ~ ", done.stdout, re.M)
    assert "self-check: training 6" in done.stderr  # held-out models, after the calibration's
    s = load_scores(out, task_digest=task.digest)
    err = np.asarray(task.function.err(s.theta0, s.theta))
    check = s.meta["import"]["self_check"]
    assert float(err.min()) > 0.01  # the noise is there to be seen
    for z, o in enumerate(check["outputs"]):
        assert o["err_low"] <= err[z] <= o["err_high"], (z, err[z], o)
    skipped = cli("--task", SYNTHETIC, "--in", src, "--encoding", "mask", "--calibrate", 300,
                  "--check-samples", 0, "--out", tmp_path / "t.npz", "--no-progress")  # fmt: skip
    assert "self-check         skipped (--check-samples 0)" in skipped.stdout
    assert "budget:" not in skipped.stdout
