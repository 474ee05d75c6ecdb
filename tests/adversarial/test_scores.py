"""Score manipulations against the real Verifier: caught by the direct gap statistic.

A score manipulation commits attributions a' with err(a') >= epsilon and then
answers every challenge honestly, so the only check that can catch it is the
statistic: soundness (docs/design.md §1) says err(a') >= epsilon makes the estimate
exceed eps/2 with probability >= 1 - delta.  Here err(a') >= eps / MARGIN, so
the estimate would have to fall more than 0.6 eps below its mean while the
plan bounds the sampling deviation by eps/4 at confidence 1 - delta/Z: a
sub-Gaussian tail of more than twice the planned deviation, far below 1e-6.

Epsilon is set to :data:`MARGIN` times a *proved* lower bound on max_z err_z(a'):
* ``synthetic``: the exact err (known spectrum, ``SyntheticFunction.err``);
* ``logreg``: err(a') >= (||g_a' - g_a|| - sqrt(err(a)))^2 per output (triangle
  inequality for the degree <= 1 part in L2(B_p)), with a the honest datamodel,
  whose err is at most :data:`LOGREG_BASE_ERR` (measured: 20,000 held-out
  pairs, self-check upper ends 0.020 and 0.016).

Strong manipulations keep the audits small: the Verifier's plan grows with
(Var(q)/eps)^2 and Var(q) >= err(a'), so catching err >= eps costs at least
~5e4 Prover evaluations; weak ones (``scale:0.5``) are ``slow``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.hypercube import bias_moments
from protocol.scores import Scores
from prover.tasks.base import Task
from tests.adversarial._audit import armed, audit
from tests.adversarial.conftest import LOGREG_SMALL_TOML, SYNTHETIC_TOML

#: epsilon = MARGIN x (lower bound on err): err exceeds epsilon by >= 11%.
MARGIN = 0.9
#: Upper bound on err of the honest logreg datamodel, per output (see module docstring).
LOGREG_BASE_ERR = 0.03
#: How a statistic's rejection reads: the u-statistic's certified bound, a gap's threshold.
REJECTED = r"certified bound \S+ >= epsilon|exceeds the threshold|screened out after"


def l2_distance_sq(a: Scores, b: Scores, p: float) -> np.ndarray:
    """``||g_a - g_b||^2`` in L2(B_p) per output: (d0 + mu sum d)^2 + sigma^2 ||d||^2."""
    mu, sigma = bias_moments(p)
    d = a.theta - b.theta
    d0 = a.theta0 - b.theta0 + mu * d.sum(axis=1)
    return np.asarray(d0**2 + sigma**2 * (d**2).sum(axis=1))


def synthetic_err(task: Task, scores: Scores) -> np.ndarray:
    """Exact err per output."""
    return np.asarray(task.function.err(scores.theta0, scores.theta))  # type: ignore[attr-defined]


def logreg_err_lower(scores: Scores, honest: Scores) -> np.ndarray:
    """Proved lower bound on err per output (module docstring)."""
    dist = np.sqrt(l2_distance_sq(scores, honest, 0.5))
    return np.asarray(np.clip(dist - np.sqrt(LOGREG_BASE_ERR), 0.0, None) ** 2)


def assert_caught(report_reason: str, decision: str) -> None:
    assert decision == "abort"
    # The statistic rejected: its certified bound reached epsilon (the u-statistic, the
    # default), a prefix of the stream already bounded err above epsilon (screening), or
    # the gap's estimate exceeded its threshold (eps/2, or the clipped gap's).
    assert re.search(REJECTED, report_reason), report_reason


FAST = ["scale:-1", "boost:0.2:0.4", "noise:0.2", "permute", "lazy:12"]


@pytest.mark.parametrize("adversary", FAST)
def test_synthetic_score_manipulation_is_caught(
    adversary: str, synthetic: Task, synthetic_honest: Scores
) -> None:
    """Exact err(a') >= epsilon / 0.9: the statistic must exceed eps/2 (module docstring)."""
    a = armed(synthetic, synthetic_honest, adversary)
    err = synthetic_err(synthetic, a.scores)
    eps = MARGIN * float(err.max())
    assert err.max() >= eps > 0.0
    result = audit(synthetic, SYNTHETIC_TOML, a.scores, a.policy, epsilon=eps)[0]
    assert_caught(result.report.reason, result.report.decision)
    # the results were honest: the statistic rejects (before any spot check, when it can)
    assert "SpotCheckMismatch" not in result.report.reason


@pytest.mark.parametrize("adversary", FAST)
def test_logreg_score_manipulation_is_caught(
    adversary: str, logreg: Task, logreg_honest: Scores
) -> None:
    """err(a') >= (||g_a' - g_a|| - sqrt(err(a)))^2 >= epsilon / 0.9 (module docstring)."""
    a = armed(logreg, logreg_honest, adversary)
    lower = logreg_err_lower(a.scores, logreg_honest)
    eps = MARGIN * float(lower.max())
    assert lower.max() >= eps > 0.0
    result = audit(logreg, LOGREG_SMALL_TOML, a.scores, a.policy, epsilon=eps)[0]
    assert_caught(result.report.reason, result.report.decision)
    assert "SpotCheckMismatch" not in result.report.reason


def test_influence_is_refused_on_synthetic(synthetic: Task, synthetic_honest: Scores) -> None:
    """``synthetic`` has no model to differentiate: the adversary does not apply."""
    with pytest.raises(InvalidArgument, match=r"adversary 'influence': .*differentiable model"):
        armed(synthetic, synthetic_honest, "influence")


def test_honest_logreg_control_is_accepted(logreg: Task, logreg_honest: Scores) -> None:
    """Control: the honest base of the logreg tests passes (err <= 0.03 << eps/4 = 0.15)."""
    result = audit(logreg, LOGREG_SMALL_TOML, logreg_honest, None, epsilon=0.6)[0]
    assert result.report.decision == "accept", result.report.reason


@pytest.mark.slow
@pytest.mark.parametrize("adversary", ["scale:0.5", "lazy:62"])
def test_synthetic_weak_score_manipulation_is_caught(
    adversary: str, synthetic: Task, synthetic_honest: Scores
) -> None:
    """Weaker manipulations (err close to B_{>=2}): larger plans, same argument."""
    a = armed(synthetic, synthetic_honest, adversary)
    err = synthetic_err(synthetic, a.scores)
    eps = MARGIN * float(err.max())
    result = audit(synthetic, SYNTHETIC_TOML, a.scores, a.policy, epsilon=eps)[0]
    assert_caught(result.report.reason, result.report.decision)


@pytest.mark.slow
@pytest.mark.parametrize("adversary", ["influence", "scale:0.5", "lazy:62"])
def test_logreg_weak_score_manipulation_is_caught(
    adversary: str, logreg: Task, logreg_honest: Scores
) -> None:
    """Influence functions on logreg: err 0.15-0.18 against B_{>=2} ~ 0.18 (a large plan)."""
    a = armed(logreg, logreg_honest, adversary)
    lower = logreg_err_lower(a.scores, logreg_honest)
    eps = MARGIN * float(lower.max())
    assert eps > 0.0
    result = audit(logreg, LOGREG_SMALL_TOML, a.scores, a.policy, epsilon=eps)[0]
    assert_caught(result.report.reason, result.report.decision)
