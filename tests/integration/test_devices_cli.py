"""``--device`` on the four training commands, as real subprocesses, and devices over real gRPC.

On a machine without CUDA, ``--device cuda`` is a usage error (exit 2) that
names the missing device, on ``attribute``, ``serve``, ``audit`` and
``certify`` alike; ``auto`` falls back to the CPU.  An audit over real gRPC
with ``--device cpu`` on both sides records both devices in the signed
report, and a Prover that announces another device class makes the
Verifier charge the task's larger (CUDA) tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from protocol.report import verify_report
from protocol.scores import Scores
from protocol.signing import generate_private_key, load_public_key, write_keypair
from prover.executors import InProcessExecutor
from prover.service import Ed25519Signer, ServerOptions, start_server
from prover.tasks.device import Device
from prover.tasks.registry import load_task
from tests.adversarial._audit import OneThreadHandlers
from tests.integration._cli import installed, prover_exe, served
from tests.integration.test_audit_real import SYNTHETIC, write_scores
from verifier import AuditConfig, Auditor

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
#: One intra-op thread per subprocess: they run at once on 2 shared cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("devices")
    write_scores(path / "scores.npz", 1.0)
    write_keypair(path / "v")
    return path


def _commands(workdir: Path, device: str) -> dict[str, list[str]]:
    task, scores, key = str(SYNTHETIC), str(workdir / "scores.npz"), str(workdir / "v.key")
    verifier, prover = installed("pacda-verifier"), prover_exe()
    out = str(workdir / f"out-{device}.npz")
    return {
        "attribute": [
            prover, "attribute", "--task", task, "--method", "datamodel", "--samples", "60",
            "--out", out, "--device", device,
        ],
        "serve": [prover, "serve", "--task", task, "--scores", scores, "--port", "0",
                  "--device", device],
        # Port 1 is never contacted: the device is refused before any connection.
        "audit": [
            verifier, "audit", "--prover", "127.0.0.1:1", "--task", task, "--epsilon", "0.3",
            "--delta", "0.05", "--key", key, "--plan-only", "--device", device,
        ],
        "certify": [
            verifier, "certify", "--task", task, "--scores", scores, "--epsilon", "0.3",
            "--delta", "0.05", "--key", key, "--plan-only", "--device", device,
        ],
    }  # fmt: skip


def _run_all(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run the commands at once (each is mostly interpreter start-up) and collect them."""
    procs = {
        name: subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )
        for name, argv in commands.items()
    }
    done = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def _certify_auto(workdir: Path) -> list[str]:
    return [
        installed("pacda-verifier"), "certify", "--task", str(SYNTHETIC),
        "--scores", str(workdir / "scores.npz"), "--epsilon", "0.3", "--delta", "0.05",
        "--key", str(workdir / "v.key"), "--report", str(workdir / "certify.json"),
        "--device", "auto",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def refused(workdir: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """``--device cuda:1`` on every command (without CUDA), and ``certify --device auto``.

    They run at once: each is mostly interpreter start-up.
    """
    commands = {f"{k} cuda:1": v for k, v in _commands(workdir, "cuda:1").items()}
    if torch.cuda.is_available():  # cuda:1 may exist here: those tests skip
        commands = {}
    return _run_all({**commands, "certify auto": _certify_auto(workdir)})


@NO_CUDA
@pytest.mark.parametrize("command", ["attribute", "serve", "audit", "certify"])
def test_cuda_without_a_gpu_is_a_usage_error_naming_it(
    refused: dict[str, subprocess.CompletedProcess[str]], command: str
) -> None:
    res = refused[f"{command} cuda:1"]
    assert res.returncode == 2, res.stdout + res.stderr
    tool = "pacda-prover" if command in ("attribute", "serve") else "pacda-verifier"
    errors = [line for line in res.stderr.splitlines() if line.startswith(tool)]
    assert errors == [
        f"{tool} {command}: error: cuda:1 requested but this machine has no CUDA device "
        "(CUDA is not available to torch); use --device cpu or auto"
    ], res.stderr
    assert "Traceback" not in res.stderr
    assert "listening on" not in res.stdout  # serve never bound its port


@pytest.mark.parametrize("command", ["audit", "certify"])
def test_a_misspelt_device_is_a_usage_error(
    workdir: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from verifier.cli import main

    assert main(_commands(workdir, "gpu")[command][1:]) == 2
    err = capsys.readouterr().err
    assert (
        f"pacda-verifier {command}: error: device must be cpu, cuda, cuda:K or auto, got 'gpu'"
        in err
    )


@pytest.fixture(scope="module")
def served_cpu(workdir: Path) -> Iterator[str]:
    """``pacda-prover serve --device cpu`` on port 0; yields its address."""
    argv = _commands(workdir, "cpu")["serve"] + ["--log-level", "WARNING"]
    with served(argv, ENV) as address:
        yield address


def test_an_audit_over_grpc_with_cpu_on_both_sides_records_the_devices(
    workdir: Path, served_cpu: str
) -> None:
    report = workdir / "audit.json"
    verifier = installed("pacda-verifier")
    argv = [
        verifier, "audit", "--prover", served_cpu, "--task", str(SYNTHETIC), "--epsilon", "0.3",
        "--delta", "0.05", "--key", str(workdir / "v.key"), "--report", str(report), "--quiet",
        "--device", "cpu",
    ]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Verifier retrains on cpu" in res.stdout
    assert "devices: Prover cpu (cpu), Verifier cpu (cpu); tolerance charged tau = 1e-12" in (
        res.stdout
    )
    signed = verify_report(report.read_bytes(), load_public_key(workdir / "v.pub"))
    assert signed.devices == {
        "prover": "cpu",
        "prover_name": "cpu",
        "verifier": "cpu",
        "verifier_name": "cpu",
    }
    assert signed.plan is not None and signed.plan["tolerance"] == 1e-12


def test_certify_with_auto_falls_back_to_the_cpu(
    workdir: Path, refused: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    res = refused["certify auto"]
    assert res.returncode == 0, res.stdout + res.stderr
    document = json.loads((workdir / "certify.json").read_bytes())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert document["report"]["devices"]["verifier"] == expected
    assert document["report"]["devices"]["prover"] == ""  # local mode: no Prover
    assert f"devices: Verifier {expected} " in res.stdout


class AnnouncedDevice(InProcessExecutor):
    """Trains on the CPU but announces another device: the stand-in for a Prover's GPU here."""

    def __init__(self, announced: Device) -> None:
        super().__init__(device="cpu")
        self.announced = announced

    def device_info(self) -> Device:
        return self.announced


def test_a_prover_on_another_class_is_charged_the_cuda_tolerance(tmp_path: Path) -> None:
    """Over real gRPC: the Commit header's class sets the tolerance, the report shows both."""
    toml = tmp_path / "task.toml"
    text = SYNTHETIC.read_text(encoding="utf-8")
    toml.write_text(
        text.replace("n_outputs = 2", "n_outputs = 2\ncuda_output_tolerance = 1e-4"),
        encoding="utf-8",
    )
    task = load_task(toml)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    scores = Scores(theta0=theta0, theta=theta, task_digest=task.digest, method="exact")
    gpu = Device("cuda:0", "cuda", "cuda:0 Announced GPU")
    handlers = OneThreadHandlers(
        source=task,
        task_toml=toml.read_text(encoding="utf-8"),
        scores=scores,
        signer=Ed25519Signer(generate_private_key()),
        executor=AnnouncedDevice(gpu),
    )
    server = start_server(handlers, ServerOptions(host="127.0.0.1", port=0))
    try:
        import grpc

        config = AuditConfig(epsilon=0.3, delta=0.05, device="cpu")
        auditor = Auditor(task, config, key=generate_private_key(), rng=np.random.default_rng(12))
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            result = auditor.run(channel)
    finally:
        server.stop(grace_s=None)
    report = result.report
    assert report.decision == "accept", report.reason
    assert report.devices == {
        "prover": "cuda",
        "prover_name": "cuda:0 Announced GPU",
        "verifier": "cpu",
        "verifier_name": "cpu",
    }
    assert report.plan is not None and report.plan["tolerance"] == 1e-4  # not the CPU's 1e-12
    names = ("tolerance", "tolerance slack")  # the u-statistic's, the gaps' budget line
    tolerance = next(b for b in report.plan["budget"] if b["name"] in names)
    assert tolerance["value"] > 0
