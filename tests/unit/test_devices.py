"""Devices (issue 12): parsing and resolving ``--device``, tolerances per device class,
the plan charging the larger one across classes, and the report recording both devices."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.errors import InvalidArgument
from protocol.report import AuditReport
from prover.tasks.device import (
    CPU,
    Device,
    DeviceUnavailable,
    Tolerances,
    describe_device,
    device_class,
    parse_device,
    resolve_device,
    tolerances_between,
)
from prover.tasks.registry import load_task, load_task_text
from tests.unit.test_report import _fields
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import plan_audit
from verifier.report_builder import AuditState, devices
from verifier.retrain import DeviceBoundTask, bind_task, train_points

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "examples" / "tasks" / "synthetic.toml"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")

#: synthetic.toml with CUDA tolerances far above its CPU tau (1e-12), so the plan shows them.
CROSS = SYNTHETIC.read_text(encoding="utf-8").replace(
    "weight_tolerance = 0.0",
    "weight_tolerance = 0.0\ncuda_output_tolerance = 1e-4\ncuda_weight_tolerance = 2e-4",
)


@pytest.mark.parametrize("text", ["cpu", "cuda", "cuda:0", "cuda:1", "cuda:15", "auto"])
def test_parse_accepts_the_four_spellings(text: str) -> None:
    assert parse_device(text) == text


@pytest.mark.parametrize("text", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:01", "tpu", "", "cpu:0"])
def test_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidArgument, match="device must be cpu, cuda, cuda:K or auto"):
        parse_device(text)


def test_device_classes() -> None:
    assert [device_class(d) for d in ("cpu", "cuda", "cuda:3")] == ["cpu", "cuda", "cuda"]
    with pytest.raises(InvalidArgument, match="until it is resolved"):
        device_class("auto")


def test_cpu_always_resolves_and_auto_falls_back_to_it() -> None:
    task = load_task(SYNTHETIC)  # numpy only: auto is the CPU even with a GPU
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto", task=task) == CPU
    auto = resolve_device("auto")
    assert auto.device_class == ("cuda" if torch.cuda.is_available() else "cpu")


@NO_CUDA
@pytest.mark.parametrize("text", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_names_the_missing_device(text: str) -> None:
    with pytest.raises(DeviceUnavailable, match=f"^{text} requested but this machine has no CUDA"):
        resolve_device(text)
    assert issubclass(DeviceUnavailable, InvalidArgument)  # every CLI: exit 2


@NO_CUDA
def test_a_cuda_device_absent_here_keeps_its_class() -> None:
    """Ray workers' GPUs: the driver describes what it cannot resolve."""
    assert describe_device("cuda:2") == Device("cuda:2", "cuda", "cuda:2")
    assert describe_device("auto") == CPU


def test_tolerances_per_device_class() -> None:
    task = load_task_text(CROSS)
    assert task.tolerances_on("cpu") == Tolerances(output=1e-12, weight=0.0)
    assert task.tolerances_on("cuda") == Tolerances(output=1e-4, weight=2e-4)
    assert tolerances_between(task, "cpu", "cpu") == task.tolerances_on("cpu")
    assert tolerances_between(task, "cuda", "cpu") == Tolerances(output=1e-4, weight=2e-4)
    assert tolerances_between(task, "cpu", "cuda") == tolerances_between(task, "cuda", "cpu")
    with pytest.raises(InvalidArgument, match="device class must be one of cpu, cuda"):
        task.tolerances_on("tpu")


def test_cuda_tolerance_is_never_below_the_cpu_one() -> None:
    text = CROSS.replace("output_tolerance = 1e-12", "output_tolerance = 0.01")
    assert load_task_text(text).tolerances_on("cuda").output == 0.01


def test_default_cuda_tolerances_enter_the_digest() -> None:
    plain = load_task(SYNTHETIC)
    assert plain.tolerances_on("cuda") == Tolerances(output=1e-6, weight=1e-6)  # the defaults
    spelled = SYNTHETIC.read_text(encoding="utf-8").replace(
        "n_outputs = 2", "n_outputs = 2\ncuda_output_tolerance = 1e-6"
    )
    assert load_task_text(spelled).digest == plain.digest  # a default spelled out: same task
    assert load_task_text(CROSS).digest != plain.digest
    with pytest.raises(InvalidArgument, match=r"task\.cuda_output_tolerance: expected a non-neg"):
        load_task_text(CROSS.replace("= 1e-4", "= -1.0"))


def _commitment() -> Commitment:
    synthetic = load_task_text(CROSS)
    theta0, theta = synthetic.function.optimal_attribution()  # type: ignore[attr-defined]
    return Commitment.unsigned(theta0, theta, source="test")


def test_a_cross_class_plan_charges_the_larger_tolerance() -> None:
    task = load_task_text(CROSS)
    config = AuditConfig(epsilon=0.3, delta=0.05, variance=1.0, estimator="chebyshev")
    commitment = _commitment()
    same = plan_audit(config, bind_task(task, CPU, "cpu"), commitment, None)
    cross = plan_audit(config, bind_task(task, CPU, "cuda"), commitment, None)
    assert same.request.tolerance == 1e-12
    assert cross.request.tolerance == 1e-4
    assert cross.tolerance_slack > same.tolerance_slack > 0
    assert cross.tolerance_slack > 100 * same.tolerance_slack


def test_the_bound_task_is_the_task_but_for_tolerances_and_device() -> None:
    task = load_task_text(CROSS)
    bound = bind_task(task, CPU, "cuda")
    assert (bound.digest, bound.n_items, bound.n_outputs, bound.bound, bound.p) == (
        task.digest,
        task.n_items,
        task.n_outputs,
        task.bound,
        task.p,
    )
    assert bound.spec is task.spec  # type: ignore[attr-defined]  # other attributes pass through
    assert (bound.output_tolerance, bound.weight_tolerance) == (1e-4, 2e-4)
    assert bind_task(bound, CPU).output_tolerance == 1e-12  # rebinding starts from the task
    local = bind_task(task, CPU)  # no Prover: the Verifier's own class
    assert local.output_tolerance == 1e-12 and local.prover_class is None
    x = np.where(np.random.default_rng(0).random((3, task.n_items)) < 0.5, 1, -1).astype(np.int8)
    seeds = np.arange(3, dtype=np.uint64)
    np.testing.assert_allclose(
        train_points(bound, x, seeds, chunk_size=2).outputs,
        task.train_batch(x, seeds).outputs,
        rtol=0,
        atol=1e-12,
    )


def test_train_points_uses_the_bound_device() -> None:
    task = load_task(SYNTHETIC)  # numpy only: refuses any GPU, present or not
    gpu = DeviceBoundTask(task, device=Device("cuda", "cuda", "a GPU"), tolerances=Tolerances(1, 1))
    x = np.ones((1, task.n_items), dtype=np.int8)
    with pytest.raises(InvalidArgument, match="runs only on the CPU, got 'cuda'"):
        train_points(gpu, x, np.zeros(1, dtype=np.uint64), chunk_size=2)
    train_points(gpu, x, np.zeros(1, dtype=np.uint64), chunk_size=2, device="cpu")


def test_audit_config_checks_the_spelling_only() -> None:
    assert AuditConfig(epsilon=1.0, delta=0.1).device == "cpu"
    assert AuditConfig(epsilon=1.0, delta=0.1, device="cuda:3").device == "cuda:3"
    with pytest.raises(InvalidArgument, match="got 'gpu'"):
        AuditConfig(epsilon=1.0, delta=0.1, device="gpu")


@NO_CUDA
def test_auditor_and_local_mode_refuse_a_missing_gpu() -> None:
    from protocol.signing import generate_private_key
    from verifier.driver import Auditor
    from verifier.local import certify_local

    config = AuditConfig(epsilon=1.0, delta=0.1, device="cuda:1")
    key = generate_private_key()
    with pytest.raises(DeviceUnavailable, match="cuda:1 requested"):
        Auditor(SYNTHETIC, config, key=key)
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    with pytest.raises(DeviceUnavailable, match="cuda:1 requested"):
        certify_local(task, theta0, theta, config, key=key)


# ---------------------------------------------------------------- the report
DEVICES = {
    "prover": "cuda",
    "prover_name": "cuda:0 A GPU",
    "verifier": "cpu",
    "verifier_name": "cpu",
}


def test_the_report_records_both_devices() -> None:
    report = AuditReport(**_fields(), devices=DEVICES)
    assert report.to_dict()["devices"] == DEVICES
    assert AuditReport.from_dict(report.to_dict()) == report
    old = AuditReport(**_fields())  # reports from before the field: no key at all
    assert "devices" not in old.to_dict()
    assert AuditReport.from_dict(old.to_dict()).devices is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prover": "tpu"}, "devices.prover must be 'cpu', 'cuda' or empty"),
        ({"verifier": ""}, "devices.verifier must name the Verifier's device class"),
        ({"verifier_name": "x" * 201}, "devices.verifier_name is longer than 200"),
        ({"extra": "1"}, "devices: unknown field 'extra'"),
    ],
)
def test_the_devices_field_is_validated(change: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        AuditReport(**_fields(), devices={**DEVICES, **change})


def test_report_builder_devices() -> None:
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    commitment = replace(
        Commitment.unsigned(theta0, theta, source="p"),
        device_class="cuda",
        device_name="cuda:0 A GPU",
    )
    config = AuditConfig(epsilon=1.0, delta=0.1)
    state = AuditState(config=config, task_digest=task.digest, verifier_device=CPU)
    assert devices(state) == {**DEVICES, "prover": "", "prover_name": ""}  # before Commit
    state.commitment = commitment
    assert devices(state) == DEVICES
    state.report_mode = "local"  # no Prover
    assert devices(state) == {**DEVICES, "prover": "", "prover_name": ""}
    state.verifier_device = None
    assert devices(state) is None
