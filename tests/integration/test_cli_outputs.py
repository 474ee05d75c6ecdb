"""Output paths are checked before any work; an existing file is replaced only with --force.

Real ``pacda-verifier`` / ``pacda-prover`` processes.  Every refusal is one
line on stderr with exit status 2, and the existing file is left as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_audit_real import SYNTHETIC, write_scores

BIN = Path(sys.executable).parent


def cli(tool: str, *args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACDA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_audit_refuses_an_existing_report_before_connecting(tmp_path: Path, home: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text("keep me")
    # Port 1 on localhost: nothing listens; a connection attempt would be exit 3.
    args = ("audit", "--prover", "127.0.0.1:1", "--task", SYNTHETIC, "--epsilon", "0.3",
            "--delta", "0.05", "--timeout", "5", "--report", report)  # fmt: skip
    one_line_error(cli("pacda-verifier", *args, home=home), "--report", "already exists", "--force")
    assert report.read_text() == "keep me"
    details = tmp_path / "r.json.details.json"
    report.unlink()
    details.write_text("keep me too")
    one_line_error(cli("pacda-verifier", *args, home=home), "details", "--force")
    assert details.read_text() == "keep me too"
    details.unlink()
    report.mkdir()
    one_line_error(cli("pacda-verifier", *args, home=home), "is a directory")
    report.rmdir()
    # With --force the paths pass and the run gets as far as the (absent) Prover: exit 3.
    report.write_text("old")
    forced = cli("pacda-verifier", *args, "--force", home=home)
    assert forced.returncode == 3, forced.stdout + forced.stderr
    assert report.read_bytes().startswith(b'{"report":')


def test_audit_refuses_a_report_under_a_file(tmp_path: Path, home: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = cli(
        "pacda-verifier", "audit", "--prover", "127.0.0.1:1", "--task", SYNTHETIC,
        "--epsilon", "0.3", "--delta", "0.05", "--report", blocker / "r.json", home=home,
    )  # fmt: skip
    one_line_error(done, "cannot write --report", "is not a directory")


def test_certify_refuses_an_existing_report_before_training(tmp_path: Path, home: Path) -> None:
    scores = write_scores(tmp_path / "s.npz", 1.0)
    report = tmp_path / "r.json"
    report.write_text("keep me")
    done = cli(
        "pacda-verifier", "certify", "--task", SYNTHETIC, "--scores", scores, "--epsilon", "0.3",
        "--delta", "0.05", "--report", report, home=home,
    )  # fmt: skip
    one_line_error(done, "--report", "already exists", "--force")
    assert report.read_text() == "keep me" and "pilot" not in done.stderr


def test_show_html_needs_force_to_replace(tmp_path: Path, home: Path) -> None:
    scores = write_scores(tmp_path / "s.npz", 1.0)
    report = tmp_path / "r.json"
    done = cli(
        "pacda-verifier", "certify", "--task", SYNTHETIC, "--scores", scores, "--epsilon", "0.3",
        "--delta", "0.05", "--report", report, home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    page = tmp_path / "r.html"
    page.write_text("keep me")
    one_line_error(
        cli("pacda-verifier", "show", report, "--html", page, home=home), "--html", "--force"
    )
    assert page.read_text() == "keep me"
    forced = cli("pacda-verifier", "show", report, "--html", page, "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert page.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("tool", ["pacda-verifier", "pacda-prover"])
def test_keygen_refusal_names_force(tool: str, tmp_path: Path, home: Path) -> None:
    prefix = tmp_path / "k"
    first = cli(tool, "keygen", "--out", prefix, home=home)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "k.key").read_bytes()
    refused = cli(tool, "keygen", "--out", prefix, home=home)
    one_line_error(refused, "refusing to overwrite existing key file", "(use --force)")
    assert (tmp_path / "k.key").read_bytes() == key
    forced = cli(tool, "keygen", "--out", prefix, "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "k.key").read_bytes() != key
