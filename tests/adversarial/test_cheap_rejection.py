"""Bad scores are rejected at the cost of the pilot, over real gRPC (issue 10: cheap rejection).

Scores with exact err three times epsilon (synthetic task): the Verifier's
certified bound cannot go below epsilon whatever its spot checks would show,
so the audit aborts right after the Prover's signed root, having retrained
only its pilot.  Exact scores are still spot-checked.
"""

from __future__ import annotations

import numpy as np

from protocol.scores import Scores
from prover.tasks.base import Task
from tests.adversarial._audit import armed, audit
from tests.adversarial.conftest import SYNTHETIC_TOML
from verifier.config import AuditConfig


def test_scores_far_beyond_epsilon_are_rejected_without_spot_checks(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    bad = armed(synthetic, synthetic_honest, "scale:0.5").scores
    err = float(np.max(synthetic.function.err(bad.theta0, bad.theta)))  # type: ignore[attr-defined]
    result = audit(synthetic, SYNTHETIC_TOML, bad, None, epsilon=err / 3.0)[0]
    report = result.report
    assert report.decision == "abort"
    assert "is not below epsilon" in report.reason, report.reason
    assert report.costs["spot_checks"] == 0
    assert result.plan is not None and result.plan.spot_checks > 0  # the plan wanted some
    pilot = AuditConfig(epsilon=err / 3.0, delta=0.05).pilot_trainings
    assert report.costs["verifier_retrainings"] == pilot  # nothing beyond the pilot retrained
    assert report.costs["prover_evaluations"] == result.plan.prover_evaluations


def test_honest_scores_are_spot_checked_as_their_results_call_for(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    """Exact scores (err = 0): accepted, with spot checks, at most the planned number."""
    var = float(np.max(synthetic.function.variance()))  # type: ignore[attr-defined]
    result = audit(synthetic, SYNTHETIC_TOML, synthetic_honest, None, epsilon=0.2 * var)[0]
    assert result.report.decision == "accept", result.report.reason
    assert result.plan is not None
    assert 0 < result.report.costs["spot_checks"] <= result.plan.spot_checks
