"""Abort and retry: a Prover that walks away from unfavourable challenges, over real gRPC.

The Prover (:class:`prover.adversaries.walkaway.WalkAwayPolicy`) commits scores
with exact err >= epsilon (synthetic task), computes the U-statistic of its
honest results on the first chunk of every challenge and ends the session when
it exceeds a threshold, then asks for another audit of the same scores.  Every
audit must be a rejection: the walk-aways recorded as such (not as transport
failures), the answered ones rejected by the statistic.  The Verifier's record
of challenges (one per test: ``tests/conftest.py`` gives each test its own
``$PACDA_HOME``) numbers the audits and audit ``j`` spends ``delta / (j (j + 1))``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from protocol.scores import Scores
from prover.adversaries.walkaway import WalkAwayPolicy
from prover.tasks.base import Task
from tests.adversarial._audit import armed, audit
from tests.adversarial.conftest import SYNTHETIC_TOML
from tests.adversarial.test_strategic import MARGIN
from verifier.render import render_text

DELTA = 0.05
TRIES = 5
WALKED_AWAY = "the Prover ended the audit after the challenge was issued"


def _log_lines() -> list[dict[str, object]]:
    path = Path(os.environ["PACDA_HOME"]) / "challenges.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_walking_away_gains_nothing_and_every_try_is_counted(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    bad = armed(synthetic, synthetic_honest, "scale:0.5").scores
    err = np.asarray(synthetic.function.err(bad.theta0, bad.theta))  # type: ignore[attr-defined]
    epsilon = MARGIN * float(err.max())
    # Walk away unless the chunk's U looks like an honest Prover's (below eps / 2).
    policy = WalkAwayPolicy(epsilon / 2, scores=bad, n_items=synthetic.n_items, p=synthetic.p)
    results = audit(synthetic, SYNTHETIC_TOML, bad, policy, epsilon=epsilon, audits=TRIES)
    assert len(policy.walked_away) >= 1  # the strategy was exercised
    for j, result in enumerate(results, start=1):
        report = result.report
        assert report.decision == "abort", report.reason
        assert not result.transport_failure  # a walk-away is an answer, not a network fault
        plan = report.plan
        assert plan is not None
        assert plan["audits_started"] == j
        assert plan["delta_requested"] == DELTA
        assert plan["delta"] == DELTA / (j * (j + 1))
    walked = [r for r in results if WALKED_AWAY in r.report.reason]
    assert len(walked) == len(policy.walked_away)
    assert all("walking away" in r.report.reason for r in walked)  # the Prover's own words
    lines = _log_lines()
    assert [e["audit"] for e in lines] == list(range(1, TRIES + 1))
    assert {e["attribution_digest"] for e in lines} == {results[0].report.attribution_digest}
    assert sum(float(e["delta"]) for e in lines) < DELTA  # type: ignore[arg-type]


def test_an_honest_prover_audited_again_is_accepted_with_the_next_share(
    synthetic: Task, synthetic_honest: Scores
) -> None:
    results = audit(synthetic, SYNTHETIC_TOML, synthetic_honest, None, epsilon=0.3, audits=2)
    for j, result in enumerate(results, start=1):
        assert result.report.decision == "accept", result.report.reason
        assert result.report.plan is not None
        assert result.report.plan["audits_started"] == j
        assert result.report.plan["delta"] == DELTA / (j * (j + 1))
    assert "audit 2 of these scores by this Verifier" in render_text(results[1].report)
