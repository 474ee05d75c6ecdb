"""``Auditor.config`` is the configuration the audit used: its epsilon is the report's.

Real audits over gRPC: the Prover service (``prover.service.start_server`` on
``127.0.0.1:0``) serves the synthetic task's exact optimal scores; the
Verifier runs in-process.  With ``epsilon_relative`` the epsilon is ``None``
before the audit and ``R x Var(f)`` of the Verifier's pilot after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
import numpy as np
import pytest
import torch

from protocol.report import AuditReport
from protocol.scores import Scores
from protocol.signing import generate_private_key
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from tests.adversarial._audit import serving
from tests.integration.test_audit_real import SYNTHETIC
from verifier import AuditConfig, Auditor, audit
from verifier.preview import PlanDeclined, PlanHook, PlanPreview

R = 0.5


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task(SYNTHETIC)


@pytest.fixture(scope="module")
def address(task: Task) -> Iterator[str]:
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    exact = Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact")
    with serving(task, SYNTHETIC, exact) as served:
        yield served.address


def _auditor(task: Task, config: AuditConfig, on_plan: PlanHook | None = None) -> Auditor:
    rng = np.random.default_rng(11)
    return Auditor(task, config, key=generate_private_key(), rng=rng, on_plan=on_plan)


def _run(auditor: Auditor, address: str) -> AuditReport:
    with grpc.insecure_channel(address) as channel:
        report = auditor.run(channel).report
    assert report.decision == "accept", report.reason
    assert report.plan is not None
    return report


def test_absolute_epsilon_is_the_reports(task: Task, address: str) -> None:
    config = AuditConfig(epsilon=0.3, delta=0.05)
    auditor = _auditor(task, config)
    report = _run(auditor, address)
    # The configuration the audit used: the given one, with the share of delta it
    # spent as the first audit of these scores in this test's challenge record.
    assert auditor.config == replace(config, delta=0.05 / 2)
    assert auditor.config.delta == report.plan["delta"]
    assert report.plan["delta_requested"] == 0.05 and report.plan["audits_started"] == 1
    assert auditor.config.epsilon == report.plan["epsilon"] == 0.3
    assert auditor.config.epsilon_variance is None


def test_relative_epsilon_is_set_from_the_pilot(task: Task, address: str) -> None:
    given = AuditConfig(epsilon_relative=R, delta=0.05)
    auditor = _auditor(task, given)
    assert auditor.config.epsilon is None  # set from the pilot, not a placeholder
    report = _run(auditor, address)
    used = auditor.config
    assert report.variance_verified is not None and report.epsilon_relative is not None
    assert used.epsilon == report.plan["epsilon"]
    assert used.epsilon == R * report.variance_verified
    assert used.epsilon_variance == report.variance_verified
    assert report.epsilon_relative == pytest.approx(R, rel=1e-12)
    assert used.require_epsilon() == used.epsilon
    # Each audit starts from the configuration given: a new pilot, a new epsilon.
    again = _run(auditor, address)
    assert auditor.config.epsilon == again.plan["epsilon"]
    assert auditor.config.epsilon == R * again.variance_verified  # type: ignore[operator]
    assert again.variance_verified != report.variance_verified
    auditor.config = given
    assert auditor.config.epsilon is None


def test_a_declined_plan_leaves_the_pilots_epsilon(task: Task, address: str) -> None:
    seen: list[PlanPreview] = []

    def decline(preview: PlanPreview) -> None:
        seen.append(preview)
        raise PlanDeclined("stop before the challenge")

    auditor = _auditor(task, AuditConfig(epsilon_relative=R, delta=0.05), on_plan=decline)
    with grpc.insecure_channel(address) as channel, pytest.raises(PlanDeclined):
        auditor.run(channel)
    (preview,) = seen
    assert preview.pilot_variance is not None
    assert auditor.config.epsilon == preview.epsilon == R * preview.pilot_variance


def test_the_library_call_passes_epsilon_relative_through(task: Task, address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        report = audit(channel, task, epsilon_relative=R, delta=0.05, key=generate_private_key())
    assert report.decision == "accept", report.reason
    assert report.plan is not None and report.variance_verified is not None
    assert report.plan["epsilon"] == R * report.variance_verified
