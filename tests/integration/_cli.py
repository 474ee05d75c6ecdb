"""What the CLI tests share: the installed console scripts and a small ``logreg`` task."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def installed(name: str) -> str:
    """The console script ``name`` of this environment (beside the interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found is not None, f"{name} is not installed (pip install -e .)"
    return found


def prover_exe() -> str:
    """``pacda-prover`` of this environment."""
    return installed("pacda-prover")


#: A ``logreg`` task small enough for CLI tests (40 training points, 60 steps).
LOGREG = """
[task]
kind = "logreg"
bound = 30.0
n_outputs = 3

[task.data]
n_train = 40

[task.train]
steps = 60
"""


def attribute_serve_audit(
    task_file: Path,
    tmp_path: Path,
    env: dict[str, str],
    *,
    samples: int,
    seed: int,
    epsilon_relative: float,
    timeout: float,
    store: Path | None = None,
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str], dict[str, Any]]:
    """A user's whole path: ``attribute`` (datamodel), ``serve`` and ``audit`` over gRPC.

    ``store``: both ``attribute`` and ``serve`` run with ``--store`` this directory.
    Returns the ``attribute`` and ``audit`` processes and the signed report's body;
    the server is stopped whatever happens.
    """
    scores = tmp_path / "scores.npz"
    with_store = [] if store is None else ["--store", str(store)]
    fit = subprocess.run(
        [installed("pacda-prover"), "attribute", "--task", str(task_file), "--method",
         "datamodel", "--samples", str(samples), "--check-samples", "0", "--seed", str(seed),
         "--out", str(scores), *with_store],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    serve = [installed("pacda-prover"), "serve", "--task", str(task_file), "--scores", str(scores),
             "--port", "0", "--log-level", "WARNING", *with_store]  # fmt: skip
    report = tmp_path / "report.json"
    with served(serve, env) as address:
        done = subprocess.run(
            [installed("pacda-verifier"), "audit", "--prover", address,
             "--task", str(task_file), "--epsilon-relative", str(epsilon_relative),
             "--delta", "0.05", "--pilot", "100", "--report", str(report)],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )  # fmt: skip
    body = json.loads(report.read_text())["report"] if report.exists() else {}
    return fit, done, body


def sigint_default() -> None:
    """``preexec_fn`` of a child that the test will Ctrl-C: SIGINT at its default.

    A suite started in the background (``cmd &`` in a script, ``nohup``) runs with
    SIGINT ignored, and Python children inherit that and never see the signal.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def served(serve: Sequence[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``serve`` (a ``pacda-prover serve`` command line, usually ``--port 0``).

    Yields the address from its first stdout line and stops it afterwards.
    """
    proc = subprocess.Popen(
        list(serve),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening on "), f"serve did not start: {line!r}"
        yield line.split()[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
