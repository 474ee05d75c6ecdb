"""Result manipulations against the real Verifier: caught by the spot checks.

These Provers are consistent liars: the results they stream are the ones
their Merkle root commits to, openings carry weights matching the committed
digests, so every commitment check passes.  The Verifier then retrains k
points drawn from its private randomness *after* the root and compares within
tau (docs/design.md §2 step 7).  A corrupted fraction c of the n results is missed by
all k spot checks with probability <= (1 - c)^k; the plan tolerates only
m* = ``plan.tolerated_corruptions`` corruptions (a few, against thousands of
corrupted results here), so these Provers must be caught.  Each test asserts
the bound ``(1 - c)^k < 1e-6`` on the plan actually used.

Epsilon is large (small plans): the spot-check argument does not depend on it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from protocol.scores import Scores
from prover.tasks.base import Task
from tests.adversarial._audit import armed, audit
from tests.adversarial.conftest import LOGREG_SMALL_TOML, SYNTHETIC_TOML
from verifier.driver import AuditResult

#: Cheap plans: a few thousand points, a few thousand spot checks.
EPSILON = {"synthetic": 0.3, "logreg": 0.2}
MISMATCH = "SpotCheckMismatch: spot check failed:"
OUTPUTS_DISAGREE = "disagree with the Prover's outputs beyond tau"


def _setup(
    which: str, synthetic: Task, synthetic_honest: Scores, logreg: Task, logreg_honest: Scores
) -> tuple[Task, Path, Scores]:
    if which == "synthetic":
        return synthetic, SYNTHETIC_TOML, synthetic_honest
    return logreg, LOGREG_SMALL_TOML, logreg_honest


def _run(task: Task, toml: Path, honest: Scores, adversary: str, eps: float) -> AuditResult:
    a = armed(task, honest, adversary)
    # early_rejection=False: these liars' numbers alone may already reject; the spot
    # checks are what this module tests
    return audit(task, toml, a.scores, a.policy, epsilon=eps, early_rejection=False)[0]


def assert_spot_check_caught(result: AuditResult, corrupted_fraction: float) -> None:
    """Abort by spot-check mismatch, on a plan where missing every corruption is < 1e-6."""
    plan = result.plan
    assert plan is not None
    n, k = plan.prover_evaluations, plan.spot_checks
    assert corrupted_fraction * n > 2 * (plan.tolerated_corruptions + 1)
    assert k * math.log1p(-corrupted_fraction) < math.log(1e-6)
    assert result.report.decision == "abort"
    assert result.report.reason.startswith(MISMATCH), result.report.reason
    assert OUTPUTS_DISAGREE in result.report.reason


TASKS = ["synthetic", "logreg"]


@pytest.mark.parametrize("which", TASKS)
@pytest.mark.parametrize(("adversary", "fraction"), [("lie:0.1", 0.1), ("forge:0.2", 0.2)])
def test_lie_and_forge_are_caught(
    which: str,
    adversary: str,
    fraction: float,
    synthetic: Task,
    synthetic_honest: Scores,
    logreg: Task,
    logreg_honest: Scores,
) -> None:
    """A Bernoulli(c) share of results replaced (random values / g_a(x) + noise).

    The number corrupted is Binomial(n, c), more than c n / 2 except with
    probability exp(-c n / 8) < 1e-6 at these n; they disagree with the
    Verifier's retraining by far more than tau.
    """
    task, toml, honest = _setup(which, synthetic, synthetic_honest, logreg, logreg_honest)
    result = _run(task, toml, honest, adversary, EPSILON[which])
    assert_spot_check_caught(result, fraction / 2)


@pytest.mark.parametrize("which", TASKS)
def test_reuse_is_caught(
    which: str, synthetic: Task, synthetic_honest: Scores, logreg: Task, logreg_honest: Scores
) -> None:
    """Every result is the first point's: all but one differ from a retraining of their point."""
    task, toml, honest = _setup(which, synthetic, synthetic_honest, logreg, logreg_honest)
    result = _run(task, toml, honest, "reuse", EPSILON[which])
    assert_spot_check_caught(result, 0.5)


@pytest.mark.parametrize("which", TASKS)
def test_wrong_subset_is_caught(
    which: str, synthetic: Task, synthetic_honest: Scores, logreg: Task, logreg_honest: Scores
) -> None:
    """Every result trained on a fresh B_p subset instead of the challenge's (N >= 50 items)."""
    task, toml, honest = _setup(which, synthetic, synthetic_honest, logreg, logreg_honest)
    result = _run(task, toml, honest, "wrong-subset", EPSILON[which])
    assert_spot_check_caught(result, 0.5)


def test_ignore_seeds_is_caught_on_synthetic(synthetic: Task, synthetic_honest: Scores) -> None:
    """Synthetic outputs carry seed noise (half-width 0.3): other seeds give other outputs."""
    result = _run(synthetic, SYNTHETIC_TOML, synthetic_honest, "ignore-seeds", 1.0)
    assert_spot_check_caught(result, 0.5)


def test_ignore_seeds_changes_nothing_on_logreg(logreg: Task, logreg_honest: Scores) -> None:
    """Not a deviation on logreg: full-batch GD from w = 0 never reads the seed.

    The Prover's results are honest ones, so there is nothing to catch and the
    audit must accept (abort would be a completeness bug).  The Verifier's
    retraining agrees with them within the task's tolerance tau, not bit for bit:
    the Prover trained each point in a chunk of the challenge and the Verifier
    in a batch of spot checks, and batch composition and thread split move the
    last bits (logreg batch-vs-single agreement is about 1e-14).
    """
    # Honest scores (err <= 0.02) pass at epsilon 0.6: err is far below the plan's
    # completeness radius (epsilon / 10) there.
    result = _run(logreg, LOGREG_SMALL_TOML, logreg_honest, "ignore-seeds", 0.6)
    assert result.report.decision == "accept", result.report.reason
    assert result.spot_checks is not None
    worst = float(result.spot_checks.output_diff.max())
    assert worst <= logreg.output_tolerance, (worst, logreg.output_tolerance)
    # Far inside tau: the agreement is float64 round-off, not a tolerated deviation.
    assert worst <= 1e-3 * logreg.output_tolerance, worst
