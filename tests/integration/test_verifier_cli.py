"""``pacda-verifier`` as real subprocesses against a real ``pacda-prover serve``."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.report import verify_report
from protocol.signing import load_public_key
from tests.integration.test_audit_real import SYNTHETIC, ProverProcess, write_scores

BIN = Path(sys.executable).parent
VERIFIER = str(BIN / "pacda-verifier")


def run(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACDA_HOME": str(home)}
    return subprocess.run(
        [VERIFIER, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[ProverProcess]:
    proc = ProverProcess(SYNTHETIC, write_scores(workdir / "scores.npz", 1.0))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def audited(workdir: Path, server: ProverProcess) -> tuple[Path, Path]:
    """An accepted audit: (report path, public key path)."""
    keys = run("keygen", "--out", str(workdir / "v"), home=workdir)
    assert keys.returncode == 0, keys.stderr
    report = workdir / "report.json"
    done = run(
        "audit", "--prover", server.address, "--task", str(SYNTHETIC), "--epsilon", "0.3",
        "--delta", "0.05", "--key", str(workdir / "v.key"), "--report", str(report),
        home=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: ACCEPT" in done.stdout
    assert f"report written to {report}" in done.stdout
    return report, workdir / "v.pub"


def test_keygen_writes_private_key_0600(audited: tuple[Path, Path], workdir: Path) -> None:
    assert stat.S_IMODE((workdir / "v.key").stat().st_mode) == 0o600
    again = run("keygen", "--out", str(workdir / "v"), home=workdir)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_check_report_accepts_the_signed_report(audited: tuple[Path, Path], workdir: Path) -> None:
    report, pub = audited
    done = run("check-report", str(report), "--public-key", str(pub), home=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid:" in done.stdout and "decision: accept" in done.stdout


def test_any_single_byte_change_is_rejected(audited: tuple[Path, Path], workdir: Path) -> None:
    report, pub = audited
    document = report.read_bytes()
    key = load_public_key(pub)
    verify_report(document, key)
    for pos in range(len(document)):  # every position, in-process (fast)
        changed = bytearray(document)
        changed[pos] ^= 0x01
        with pytest.raises(Exception) as info:
            verify_report(bytes(changed), key)
        assert type(info.value).__name__ in ("SignatureError", "InvalidArgument")
    tampered = workdir / "tampered.json"
    changed = bytearray(document)
    changed[len(changed) // 2] ^= 0x20
    tampered.write_bytes(bytes(changed))
    done = run("check-report", str(tampered), "--public-key", str(pub), home=workdir)
    assert done.returncode == 1 and "INVALID" in done.stdout


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "grpc", "prover", "pacda"):
                raise ImportError(f"blocked: {name}")
            return None
    sys.meta_path.insert(0, Block())
    from verifier.cli import main
    code = main(sys.argv[1:])
    loaded = [m for m in sys.modules if m.split(".")[0] in ("torch", "grpc", "prover")]
    assert not loaded, loaded
    sys.exit(code)
    """
)


def test_check_report_and_show_need_only_protocol(
    audited: tuple[Path, Path], workdir: Path
) -> None:
    report, pub = audited
    for args in (["check-report", str(report), "--public-key", str(pub)],
                 ["show", str(report), "--html", str(workdir / "r.html")]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
    html = (workdir / "r.html").read_text()
    assert html.count("<svg") == 2 and "ACCEPT" in html


def test_transport_failure_exits_3(workdir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = workdir / "unreachable.json"
    done = run(
        "audit", "--prover", f"127.0.0.1:{port}", "--task", str(SYNTHETIC), "--epsilon", "0.3",
        "--delta", "0.05", "--timeout", "5", "--report", str(report), home=workdir,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "verdict: ABORT" in done.stdout and "transport failure" in done.stdout
    assert report.exists()


def test_usage_errors_exit_2(workdir: Path) -> None:
    bad = run(
        "audit", "--prover", "nocolon", "--task", str(SYNTHETIC), "--epsilon", "0.3",
        "--delta", "0.05", "--report", str(workdir / "x.json"), home=workdir,
    )  # fmt: skip
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    neg = run(
        "audit", "--prover", "h:1", "--task", str(SYNTHETIC), "--epsilon", "-1",
        "--delta", "0.05", "--report", str(workdir / "x.json"), home=workdir,
    )  # fmt: skip
    assert neg.returncode == 2 and "epsilon must be finite and > 0" in neg.stderr
    assert run("audit", home=workdir).returncode == 2


def test_certify_local_mode(workdir: Path) -> None:
    scores = write_scores(workdir / "local_scores.npz", 1.0)
    report = workdir / "local.json"
    home = workdir / "fresh_home"
    done = run(
        "certify", "--task", str(SYNTHETIC), "--scores", str(scores), "--epsilon", "0.3",
        "--delta", "0.05", "--report", str(report), home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created a new per-user Verifier key" in done.stderr
    pub = load_public_key(home / "verifier.pub")
    assert verify_report(report.read_bytes(), pub).mode == "local"
