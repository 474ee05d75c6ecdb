"""Adding a statistic is one class and one registry line; the real Verifier then audits with it.

The statistic registered here, ``gap-check-all``, is the direct gap with every
challenge point spot-checked: the Verifier retrains all of them, so no
corruption goes unseen (the corruption term of its bound is still charged,
which only makes it conservative).  It reuses the direct gap's planner and
decision through the public interface and counts its own calls, so the test
sees that the Verifier reached it through the registry — by
``AuditConfig(statistic=...)`` — at planning and at the decision, over a real
gRPC server on a socket, and that it decides right: exact scores (err = 0)
accepted, scores with err far above epsilon rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.plan_types import Plan, PlanRequest
from protocol.scores import Scores
from protocol.signing import generate_private_key
from protocol.stats import AuditData, get, names, register, unregister
from protocol.stats.gap import DirectGap
from protocol.verdict import Decision
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from tests.adversarial._audit import serving
from verifier import AuditConfig, Auditor
from verifier.driver import AuditResult

ROOT = Path(__file__).resolve().parents[2]
TOML = ROOT / "examples" / "tasks" / "synthetic.toml"
NAME = "gap-check-all"


class GapCheckAll(DirectGap):
    """The direct gap, every challenge point spot-checked."""

    name = NAME
    summary = "direct gap, every challenge point retrained by the Verifier"

    def __init__(self) -> None:
        self.calls = {"plan": 0, "decide": 0}

    def plan(self, request: PlanRequest) -> Plan:
        self.calls["plan"] += 1
        plan = super().plan(request)
        return dataclasses.replace(plan, spot_checks=plan.prover_evaluations)

    def decide(self, plan: Plan, data: AuditData) -> Decision:
        self.calls["decide"] += 1
        return super().decide(plan, data)


@pytest.fixture
def statistic() -> Iterator[GapCheckAll]:
    s = GapCheckAll()
    register(s)
    try:
        yield s
    finally:
        unregister(NAME)


def _audit(task: Task, scores: Scores, epsilon: float) -> AuditResult:
    with serving(task, TOML, scores) as served:
        config = AuditConfig(epsilon=epsilon, delta=0.05, statistic=NAME)
        auditor = Auditor(task, config, key=generate_private_key(), rng=np.random.default_rng(5))
        with grpc.insecure_channel(served.address) as channel:
            return auditor.run(channel)


def test_a_registered_statistic_audits_over_grpc(statistic: GapCheckAll) -> None:
    assert NAME in names() and get(NAME) is statistic
    task = load_task(TOML)
    fn = task.function  # type: ignore[attr-defined]
    epsilon = 0.5 * float(np.max(fn.variance()))
    theta0, theta = fn.optimal_attribution()
    exact = Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact")
    honest = _audit(task, exact, epsilon)
    assert honest.plan is not None and honest.plan.statistic == NAME
    assert honest.report.decision == "accept", honest.report.reason
    assert honest.spot_checks is not None
    assert len(honest.spot_checks.indices) == honest.plan.prover_evaluations
    assert statistic.calls == {"plan": 1, "decide": 1}
    # err of scores shifted by s in every intercept is s^2 per output: 4 x epsilon here
    shift = 2.0 * np.sqrt(epsilon)
    bad = Scores(theta0=theta0 + shift, theta=theta, task_digest=task.digest, method="shifted")
    assert np.all(fn.err(bad.theta0, bad.theta) >= 3.9 * epsilon)
    cheat = _audit(task, bad, epsilon)
    assert cheat.report.decision == "abort"
    assert "err" in cheat.report.reason


def test_a_statistic_must_serve_the_audits_mode(statistic: GapCheckAll) -> None:
    with pytest.raises(InvalidArgument, match="runs in committed mode"):
        AuditConfig(epsilon=1.0, delta=0.05, mode="paper", statistic=NAME)
    with pytest.raises(InvalidArgument, match="already registered"):
        register(GapCheckAll())
    with pytest.raises(InvalidArgument, match="unknown statistic 'nope'"):
        AuditConfig(epsilon=1.0, delta=0.05, statistic="nope")
