"""The plan and its cost come before any challenge; caps, ``--yes``, ``--plan-only``.

``pacda-verifier audit`` runs in-process (``verifier.cli.main``) against a real
gRPC Prover on ``127.0.0.1:0`` whose result policy counts the challenge
results it computes: a plan that is only printed, or refused, must leave it
at zero.  ``certify`` (local mode) needs no Prover.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from protocol.report import AuditReport, verify_report
from protocol.scores import Scores
from protocol.signing import generate_private_key, load_public_key, write_keypair
from prover.service import Ed25519Signer, ServerOptions, start_server
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from tests.adversarial._audit import OneThreadHandlers
from tests.integration.test_audit_real import SYNTHETIC, write_scores
from verifier import AuditConfig, Auditor
from verifier.cli import main
from verifier.preview import PlanDeclined, PlanPreview


class CountingPolicy(ResultPolicy):
    """Honest, but counts the challenge results computed (only a Challenge computes any)."""

    def __init__(self) -> None:
        self.results_computed = 0
        self._lock = threading.Lock()

    def results(  # type: ignore[no-untyped-def]
        self, session_id: str, plan: ChallengePlan, indices, outputs, weight_digests
    ):
        with self._lock:
            self.results_computed += len(indices)
        return outputs, weight_digests


class Served:
    def __init__(self, address: str, policy: CountingPolicy) -> None:
        self.address = address
        self.policy = policy


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
def served(task: Task) -> Iterator[Served]:
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    scores = Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact")
    policy = CountingPolicy()
    handlers = OneThreadHandlers(
        source=task,
        task_toml=SYNTHETIC.read_text(encoding="utf-8"),
        scores=scores,
        signer=Ed25519Signer(generate_private_key()),
        policy=policy,
    )
    server = start_server(handlers, ServerOptions(host="127.0.0.1", port=0))
    yield Served(f"127.0.0.1:{server.port}", policy)
    server.stop(grace_s=None)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    private, _ = write_keypair(tmp_path_factory.mktemp("keys") / "v")
    return private


def audit_args(served: Served, key: Path, report: Path, *extra: str) -> list[str]:
    return [
        "audit", "--prover", served.address, "--task", str(SYNTHETIC), "--delta", "0.05",
        "--key", str(key), "--report", str(report), "--quiet", *extra,
    ]  # fmt: skip


def test_plan_only_prints_the_cost_and_sends_no_challenge(
    served: Served, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = served.policy.results_computed
    report = tmp_path / "r.json"
    code = main(audit_args(served, key, report, "--epsilon", "0.3", "--plan-only"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pacda plan:" in out
    assert "Verifier retrainings" in out and "pilot 200 (done) + spot checks up to" in out
    assert "Prover evaluations" in out and "estimated Verifier time" in out
    assert "--plan-only: stopped before the challenge; no report written" in out
    assert "verdict" not in out
    assert served.policy.results_computed == before  # no challenge reached the Prover
    assert not report.exists()


def test_plan_above_a_cap_is_refused_without_yes(
    served: Served, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = served.policy.results_computed
    report = tmp_path / "r.json"
    code = main(audit_args(served, key, report, "--epsilon", "0.3", "--max-retrainings", "300"))
    captured = capsys.readouterr()
    assert code == 2
    assert "pilot 200 (done)" in captured.out  # the plan was shown first
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1, captured.err
    assert "--max-retrainings 300" in errors[0] and "--yes" in errors[0]
    assert served.policy.results_computed == before
    assert not report.exists()

    code = main(
        audit_args(served, key, report, "--epsilon", "0.3", "--max-prover-evaluations", "4")
    )
    captured = capsys.readouterr()
    # lp plans are searched within the cap: no plan fits, a signed abort before any challenge.
    assert code == 1, captured.out
    assert "within 4 Prover" in captured.out, captured.out
    assert served.policy.results_computed == before


def test_yes_starts_a_plan_above_the_cap(
    served: Served, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    args = audit_args(served, key, report, "--epsilon", "0.3", "--max-retrainings", "300", "--yes")
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.index("pilot 200 (done)") < out.index("verdict: ACCEPT")
    assert report.exists()


def test_the_hook_runs_before_any_challenge_result(served: Served, task: Task) -> None:
    """Library level: ``on_plan`` sees the Prover before it computed any result."""
    seen: list[tuple[PlanPreview, int]] = []
    before = served.policy.results_computed

    def hook(preview: PlanPreview) -> None:
        seen.append((preview, served.policy.results_computed))
        raise PlanDeclined("stop here")

    auditor = Auditor(
        task,
        AuditConfig(epsilon=0.3, delta=0.05),
        key=generate_private_key(),
        rng=np.random.default_rng(1),
        on_plan=hook,
    )
    with grpc.insecure_channel(served.address) as channel, pytest.raises(PlanDeclined):
        auditor.run(channel)
    ((preview, computed),) = seen
    assert computed == before and served.policy.results_computed == before
    assert preview.pilot_trainings == 200
    assert preview.verifier_retrainings == 200 + preview.plan.verifier_retrainings
    assert preview.prover_evaluations == preview.plan.prover_evaluations
    assert preview.seconds_per_training is not None and preview.estimated_seconds is not None


def test_certify_plan_only_and_cap(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = write_scores(tmp_path / "s.npz", 1.0)
    base = ["certify", "--task", str(SYNTHETIC), "--scores", str(scores), "--epsilon", "0.3",
            "--delta", "0.05", "--key", str(key), "--report", str(tmp_path / "r.json")]  # fmt: skip
    assert main([*base, "--plan-only"]) == 0
    out = capsys.readouterr().out
    assert "pilot 200 (done) + local evaluations" in out and "no Prover" in out
    assert main([*base, "--max-retrainings", "500"]) == 2
    err = capsys.readouterr().err
    assert "--max-retrainings 500" in err and "--yes" in err
    assert not (tmp_path / "r.json").exists()


def test_help_states_the_default_caps(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("audit", "certify"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--max-retrainings N" in text and "[50000]" in text
        assert "--max-prover-evaluations N" in text and "[2000000]" in text
        assert "--yes" in text and "--plan-only" in text


def _relative_report(path: Path, key: Path) -> AuditReport:
    report = verify_report(path.read_bytes(), load_public_key(key.with_suffix(".pub")))
    assert report.plan is not None and report.variance_verified is not None
    assert report.epsilon_relative == pytest.approx(0.5, rel=1e-12)
    assert report.plan["epsilon"] == pytest.approx(0.5 * report.variance_verified, rel=1e-12)
    return report


def test_epsilon_relative_in_local_mode(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = write_scores(tmp_path / "s.npz", 1.0)
    report = tmp_path / "r.json"
    args = ["certify", "--task", str(SYNTHETIC), "--scores", str(scores), "--epsilon-relative",
            "0.5", "--delta", "0.05", "--key", str(key), "--report", str(report)]  # fmt: skip
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    done = _relative_report(report, key)
    assert f"epsilon                  {done.plan['epsilon']:.6g} = 0.5 x max_z Var(f_z)" in out


def test_epsilon_relative_over_grpc(
    served: Served, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    code = main(audit_args(served, key, report, "--epsilon-relative", "0.5"))
    out = capsys.readouterr().out
    assert code == 0, out
    _relative_report(report, key)
    assert "0.5 x Var(f)" in out


def test_epsilon_options_are_exclusive_and_need_a_pilot(
    served: Served, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    with pytest.raises(SystemExit) as both:
        main(audit_args(served, key, report, "--epsilon", "0.3", "--epsilon-relative", "0.5"))
    assert both.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    for extra in (["--planning", "rigorous"], ["--variance", "1.0"]):
        code = main(audit_args(served, key, report, "--epsilon-relative", "0.5", *extra))
        assert code == 2
        assert "epsilon_relative needs the Verifier's pilot" in capsys.readouterr().err
    assert not report.exists()


def test_plan_only_writes_nothing_and_needs_no_report(
    served: Served, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["audit", "--prover", served.address, "--task", str(SYNTHETIC), "--delta", "0.05",
            "--epsilon", "0.3", "--key", str(key), "--quiet"]  # fmt: skip
    assert main([*base, "--plan-only"]) == 0
    assert "pilot 200 (done)" in capsys.readouterr().out
    existing = tmp_path / "r.json"
    existing.write_text("keep me")
    assert main([*base, "--plan-only", "--report", str(existing)]) == 0
    assert existing.read_text() == "keep me"
    capsys.readouterr()
    assert main(base) == 2
    assert "--report is required (except with --plan-only)" in capsys.readouterr().err


def _preview(served: Served, task: Task, **config: object) -> PlanPreview:
    seen: list[PlanPreview] = []

    def hook(preview: PlanPreview) -> None:
        seen.append(preview)
        raise PlanDeclined("stop here")

    auditor = Auditor(
        task,
        AuditConfig(epsilon=0.3, delta=0.05, **config),  # type: ignore[arg-type]
        key=generate_private_key(),
        rng=np.random.default_rng(1),
        on_plan=hook,
    )
    with grpc.insecure_channel(served.address) as channel, pytest.raises(PlanDeclined):
        auditor.run(channel)
    return seen[0]


def _headline(summary: str) -> int:
    found = re.search(r"^  Verifier retrainings +at most ([\d,]+) = pilot", summary, re.M)
    assert found is not None, summary
    return int(found[1].replace(",", ""))


def test_the_headline_is_the_worst_case_with_the_expected_beside(
    served: Served, task: Task
) -> None:
    staged = _preview(served, task, statistic="clipped-gap")
    assert staged.second_stage > 0  # this plan can escalate
    summary = staged.summary()
    assert _headline(summary) == staged.worst_case_retrainings
    assert staged.worst_case_retrainings == (
        staged.pilot_trainings + staged.plan.spot_checks + staged.second_stage
    )
    assert f"expected {staged.verifier_retrainings:,d}: the later stages run only" in summary
    # The default statistic has no later stages: its headline is its whole cost.
    default = _preview(served, task)
    assert default.second_stage == 0
    assert _headline(default.summary()) == default.worst_case_retrainings
    assert default.worst_case_retrainings == default.pilot_trainings + default.plan.spot_checks
    assert "expected" not in default.summary()


def test_the_cap_applies_to_the_worst_case(
    served: Served, task: Task, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staged = _preview(served, task, statistic="clipped-gap")
    # The geometric middle: far from both ends, so another pilot's plan lies on the same sides.
    between = int((staged.verifier_retrainings * staged.worst_case_retrainings) ** 0.5)
    assert 2 * staged.verifier_retrainings < between < staged.worst_case_retrainings // 2
    report = tmp_path / "r.json"
    args = audit_args(served, key, report, "--epsilon", "0.3", "--statistic", "clipped-gap",
                      "--max-retrainings", str(between))  # fmt: skip
    before = served.policy.results_computed
    assert main(args) == 2
    captured = capsys.readouterr()
    # This run's own pilot (unseeded) planned it: read its numbers off its output.
    worst = _headline(captured.out)
    expected = int(re.search(r"expected ([\d,]+): the later", captured.out)[1].replace(",", ""))  # type: ignore[index]
    assert expected < between < worst  # refused only because of the later stages
    assert f"{worst:,d} Verifier retrainings at most (pilot and later stages" in captured.err
    assert served.policy.results_computed == before and not report.exists()
