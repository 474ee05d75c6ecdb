"""What the CLI tests share: the installed console scripts and a small ``logreg`` task."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


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
