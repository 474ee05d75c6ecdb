"""Fixtures of the adversarial suite: tasks, honest scores, a real server per audit.

Every audit runs the real Verifier (:class:`verifier.Auditor`, seeded private
generator) against a real gRPC server on ``127.0.0.1:0`` around
:class:`prover.service.ProverHandlers` with the adversary's scores and policy.
The challenge seed is still drawn by the Verifier from :mod:`secrets`, so the
parameters are chosen with margins that make an accepted audit of a cheater
far rarer than 1e-6 (each test's docstring says why).

Server and Verifier train with torch in one process on 2 cores; one intra-op
thread each avoids oversubscription (tenfold slowdowns otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.scores import Scores
from prover.attribution import fit_datamodel
from prover.engine import train
from prover.tasks.base import Task
from prover.tasks.registry import load_task

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SYNTHETIC_TOML = ROOT / "examples" / "tasks" / "synthetic.toml"
LOGREG_TOML = ROOT / "examples" / "tasks" / "logreg.toml"
LOGREG_SMALL_TOML = HERE / "logreg_small.toml"
#: Retrainings behind the honest logreg datamodel (measured err <= 0.02, see test_scores).
LOGREG_FIT_SAMPLES = 3000


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread while this module runs (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic() -> Task:
    """The example ``synthetic`` task (N = 50, Z = 2, exact err)."""
    return load_task(SYNTHETIC_TOML)


@pytest.fixture(scope="session")
def synthetic_honest(synthetic: Task) -> Scores:
    """The exact optimal attributions of ``synthetic`` (err = 0)."""
    theta0, theta = synthetic.function.optimal_attribution()  # type: ignore[attr-defined]
    return Scores(theta0=theta0, theta=theta, task_digest=synthetic.digest, method="exact")


@pytest.fixture(scope="session")
def logreg() -> Task:
    """The small ``logreg`` task of this suite (N = 60, Z = 2)."""
    return load_task(LOGREG_SMALL_TOML)


def fit_logreg_honest(task: Task, samples: int = LOGREG_FIT_SAMPLES) -> Scores:
    """An honest ridge datamodel on ``samples`` seeded B_p retrainings."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(np.random.SeedSequence(20240601))
        x = np.where(rng.random((samples, task.n_items)) < 0.5, 1, -1).astype(np.int8)
        seeds = rng.integers(0, 2**63, size=samples, dtype=np.uint64)
        y = train(task, x, seeds).outputs
        fit = fit_datamodel(x, y, p=0.5, rng=rng)
    finally:
        torch.set_num_threads(before)
    return Scores(theta0=fit.theta0, theta=fit.theta, task_digest=task.digest, method="datamodel")


@pytest.fixture(scope="session")
def logreg_honest(logreg: Task) -> Scores:
    """Honest datamodel scores of the small logreg task."""
    return fit_logreg_honest(logreg)
