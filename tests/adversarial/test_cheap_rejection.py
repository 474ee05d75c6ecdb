"""Bad scores are rejected cheaply on both sides, over real gRPC (issue 10: cheap rejection).

Scores with exact err three times epsilon (synthetic task): a prefix of the
result stream already bounds err above epsilon (the screening), so the
Verifier stops the stream — the Prover evaluates a fraction of the challenge —
and aborts having retrained only its pilot.  With screening off
(``early_rejection=False`` turns every cheap rejection off) the same scores
are rejected by the spot-checked decision.  Exact scores are still
spot-checked.
"""

from __future__ import annotations

import numpy as np

from protocol.scores import Scores
from protocol.stats import statistic_of
from prover.service.handlers import ServiceStats
from prover.tasks.base import Task
from tests.adversarial._audit import armed, audit
from tests.adversarial.conftest import SYNTHETIC_TOML
from verifier.config import AuditConfig


def test_scores_far_beyond_epsilon_are_screened_out_from_a_prefix_of_the_stream(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    bad = armed(synthetic, synthetic_honest, "scale:0.5").scores
    err = float(np.max(synthetic.function.err(bad.theta0, bad.theta)))  # type: ignore[attr-defined]
    stats: list[ServiceStats] = []
    result = audit(synthetic, SYNTHETIC_TOML, bad, None, epsilon=err / 3.0, prover_stats=stats)[0]
    report, plan = result.report, result.plan
    assert report.decision == "abort"
    assert "screened out after" in report.reason, report.reason
    assert report.costs["spot_checks"] == 0
    assert plan is not None and plan.spot_checks > 0  # the plan wanted some
    pilot = AuditConfig(epsilon=err / 3.0, delta=0.05).pilot_trainings
    assert report.costs["verifier_retrainings"] == pilot  # nothing beyond the pilot retrained
    looks = [2 * m for m in statistic_of(plan).screen_looks(plan)]
    evaluated = report.costs["prover_evaluations"]
    assert evaluated < plan.prover_evaluations
    assert any(f"after {look:,d} of" in report.reason for look in looks), (report.reason, looks)
    # the stream was cancelled: the Prover trained far fewer points than the plan's
    assert evaluated <= stats[0].n_trained < plan.prover_evaluations / 2


def test_without_screening_the_statistic_rejects_before_any_spot_check(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    bad = armed(synthetic, synthetic_honest, "scale:0.5").scores
    err = float(np.max(synthetic.function.err(bad.theta0, bad.theta)))  # type: ignore[attr-defined]
    result = audit(synthetic, SYNTHETIC_TOML, bad, None, epsilon=err / 3.0, early_rejection=False)
    report = result[0].report
    assert report.decision == "abort"
    assert "screened out" not in report.reason
    assert result[0].plan is not None
    assert report.costs["prover_evaluations"] == result[0].plan.prover_evaluations


def test_honest_scores_are_spot_checked_as_their_results_call_for(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    """Exact scores (err = 0): accepted, with spot checks, at most the planned number."""
    var = float(np.max(synthetic.function.variance()))  # type: ignore[attr-defined]
    result = audit(synthetic, SYNTHETIC_TOML, synthetic_honest, None, epsilon=0.2 * var)[0]
    assert result.report.decision == "accept", result.report.reason
    assert result.plan is not None
    assert 0 < result.report.costs["spot_checks"] <= result.plan.spot_checks
