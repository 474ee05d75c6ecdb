"""One-line errors and the exit codes the help texts promise (real CLI processes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protocol.report import verify_report
from protocol.signing import load_public_key, write_keypair
from tests.integration.test_audit_real import SYNTHETIC, write_scores

BIN = Path(sys.executable).parent


def verifier(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACDA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(BIN / "pacda-verifier"), *map(str, args)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def help_text(*command: str) -> str:
    done = subprocess.run(
        [str(BIN / "pacda-verifier"), *command, "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    return " ".join(done.stdout.split())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def certify(scores: Path, home: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return verifier("certify", "--task", SYNTHETIC, "--scores", scores, "--epsilon", "0.3",
                    "--delta", "0.05", *extra, home=home)  # fmt: skip


def test_scores_that_are_not_a_scores_file(tmp_path: Path, home: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((2, 50)))
    one_line_error(certify(npy, home), 2, "plain NumPy array (.npy)", "pacda-prover attribute")
    text = tmp_path / "t.npz"
    text.write_text("theta = 1, 2, 3\n")
    one_line_error(certify(text, home), 2, "not an .npz (zip) archive")
    one_line_error(certify(tmp_path / "nope.npz", home), 2, "no such file")


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:http", ":1"])
def test_bad_prover_address_is_a_usage_error(address: str, tmp_path: Path, home: Path) -> None:
    done = verifier("audit", "--prover", address, "--task", SYNTHETIC, "--epsilon", "0.3",
                    "--delta", "0.05", "--report", tmp_path / "r.json", home=home)  # fmt: skip
    one_line_error(done, 2, "--prover must be HOST:PORT with a port in 1..65535")
    assert not (tmp_path / "r.json").exists()


def test_help_texts_state_the_exit_codes() -> None:
    assert "130 interrupted" in help_text()
    audit = help_text("audit")
    assert "1 abort (including a Prover that refuses to open spot checks" in audit
    assert "3 transport failure before the challenge" in audit and "130" in audit
    show = help_text("show")
    assert "0 rendered (whatever the report's verdict" in show
    assert "1 --public-key given and the signature does not verify" in show


def test_show_exit_codes_and_signature_banner(tmp_path: Path, home: Path) -> None:
    """An ABORT report renders with exit 0; --public-key verifies, else UNVERIFIED."""
    key, pub = write_keypair(tmp_path / "v")
    _, other_pub = write_keypair(tmp_path / "other")
    report = tmp_path / "abort.json"
    # zero scores: err = 0.75 per output, far above epsilon = 0.3 (halved scores, err =
    # 0.1875, lie inside epsilon and pass about as often as they abort)
    zero = write_scores(tmp_path / "zero.npz", 0.0)
    done = certify(zero, home, "--key", key, "--report", report)
    assert done.returncode == 1 and "verdict: ABORT" in done.stdout, done.stdout + done.stderr

    plain = verifier("show", report, "--html", tmp_path / "u.html", home=home)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("UNVERIFIED:") and "verdict: ABORT" in plain.stdout
    page = (tmp_path / "u.html").read_text()
    assert "id='unverified'" in page and "UNVERIFIED" in page and "id='verified'" not in page

    checked = verifier("show", report, "--public-key", pub, "--html", tmp_path / "v.html",
                       home=home)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("signature verified: signed by ed25519:")
    page = (tmp_path / "v.html").read_text()
    assert "id='verified'" in page and "UNVERIFIED" not in page

    wrong = verifier("show", report, "--public-key", other_pub, "--html", tmp_path / "w.html",
                     home=home)  # fmt: skip
    assert wrong.returncode == 1 and wrong.stdout.startswith("INVALID:"), wrong.stdout
    assert "verdict" not in wrong.stdout and not (tmp_path / "w.html").exists()


def test_show_is_readable(tmp_path: Path, home: Path) -> None:
    """What ACCEPT certifies in one sentence, err intervals clipped at 0, rounded numbers."""
    key, pub = write_keypair(tmp_path / "v")
    report = tmp_path / "accept.json"
    done = certify(write_scores(tmp_path / "s.npz", 1.0), home, "--key", key, "--report", report)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = verifier("show", report, "--public-key", pub, home=home)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "ACCEPT certifies that, with probability >= 0.95 over the Verifier's own " in out
    assert "is below epsilon = 0.3 on each of the 2 outputs" in out
    lows = [float(m) for m in re.findall(r"\[(-?[0-9.e+-]+), ", out)]
    assert len(lows) == 2 and all(low >= 0 for low in lows), out
    costs = next(line for line in out.splitlines() if line.startswith("costs: "))
    signed = verify_report(report.read_bytes(), load_public_key(pub))
    n = signed.costs["verifier_retrainings"]
    assert n > 200 and f"Verifier retrainings (pilot included) {n:,d}, " in costs, costs
    numbers = re.findall(r"\d+\.\d+", out.split("soundness:")[0].split("merkle root:")[0])
    assert all(len(n.lstrip("0.").replace(".", "")) <= 4 for n in numbers), numbers
