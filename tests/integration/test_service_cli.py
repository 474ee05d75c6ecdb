"""The real ``pacda-prover`` CLI as subprocesses: keygen, tls, and serve (TLS and plaintext).

Readiness is the ``listening on HOST:PORT`` line on stdout; no sleeps.
"""

from __future__ import annotations

import queue
import signal
import stat
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest

from pacda.v1 import prover_pb2 as pb
from pacda.v1 import prover_pb2_grpc as pb_grpc
from protocol.merkle import result_leaf, verify_inclusion
from protocol.signing import load_public_key, public_key_bytes
from prover.tasks.registry import load_task
from tests.integration._cli import prover_exe
from tests.integration._service_util import (
    SYNTHETIC_TOML,
    challenge,
    challenge_request,
    commit,
    make_scores,
    open_points,
)

READY_TIMEOUT_S = 120.0


def _cli() -> list[str]:
    return [prover_exe()]


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_cli(), *args], capture_output=True, text=True, timeout=120)


class Served:
    """A running ``pacda-prover serve``; ``stderr`` is filled in once it stopped."""

    def __init__(self, proc: subprocess.Popen[str], address: str) -> None:
        self.proc = proc
        self.address = address
        self.port = int(address.rsplit(":", 1)[1])
        self.stderr = ""


@contextmanager
def serve(args: Sequence[str], log: Path) -> Iterator[Served]:
    """Start ``serve`` (stderr to ``log``), wait for 'listening on', SIGTERM it at the end."""
    with open(log, "w", encoding="utf-8") as err_file:
        proc = subprocess.Popen(
            [*_cli(), "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    served: Served | None = None
    try:
        line = lines.get(timeout=READY_TIMEOUT_S)
        if line is None or not line.startswith("listening on "):
            raise AssertionError(f"serve did not start: {line!r}")
        served = Served(proc, line.removeprefix("listening on ").strip())
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
        if served is not None:
            served.stderr = log.read_text(encoding="utf-8")


def test_keygen_writes_a_private_key_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    done = _run(["keygen", "--out", str(tmp_path / "prover")])
    assert done.returncode == 0, done.stderr
    key, pub = tmp_path / "prover.key", tmp_path / "prover.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key_id = "ed25519:" + public_key_bytes(load_public_key(pub)).hex()
    assert done.stdout.splitlines() == [
        f"private key: {key} (keep it secret; mode 0600)",
        f"public key:  {pub} ({key_id})",
    ]
    again = _run(["keygen", "--out", str(tmp_path / "prover")])
    assert again.returncode == 2
    assert again.stderr == (
        f"pacda-prover keygen: error: refusing to overwrite existing key file {key} (use --force)\n"
    )


def test_serve_over_tls_with_a_key_file(tmp_path: Path) -> None:
    assert _run(["keygen", "--out", str(tmp_path / "prover")]).returncode == 0
    tls = _run(["tls", "--out", str(tmp_path / "local")])
    assert tls.returncode == 0, tls.stderr
    cert, tls_key = tmp_path / "local-cert.pem", tmp_path / "local-key.pem"
    assert stat.S_IMODE(tls_key.stat().st_mode) == 0o600
    task = load_task(SYNTHETIC_TOML)
    make_scores(task, tmp_path / "scores.npz")
    args = [
        "--task", str(SYNTHETIC_TOML), "--scores", str(tmp_path / "scores.npz"),
        "--store", str(tmp_path / "store"), "--key", str(tmp_path / "prover.key"),
        "--tls-cert", str(cert), "--tls-key", str(tls_key),
    ]  # fmt: skip
    with serve(args, tmp_path / "serve.log") as served:
        assert served.address == f"127.0.0.1:{served.port}"
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(served.address, creds) as channel:
            stub = pb_grpc.ProverStub(channel)
            d = stub.DescribeTask(pb.DescribeTaskRequest(), timeout=30)
            assert d.prover_public_key == public_key_bytes(load_public_key(tmp_path / "prover.pub"))
            sid = commit(stub, task.digest).header.session_id
            res = challenge(stub, challenge_request(sid))
            (o,) = open_points(stub, sid, [11])
            leaf = result_leaf(11, np.asarray(o.outputs), o.weight_digest)
            verify_inclusion(res.root.merkle_root, res.root.n_leaves, 11, leaf, list(o.proof))
        with grpc.insecure_channel(served.address) as plain:  # TLS is required
            try:
                pb_grpc.ProverStub(plain).DescribeTask(pb.DescribeTaskRequest(), timeout=5)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE
            else:
                raise AssertionError("a plaintext call to a TLS server succeeded")
    assert served.proc.returncode == 0
    assert "stopping" in served.stderr
    assert (tmp_path / "store" / "store.json").exists()


def test_serve_without_key_uses_an_ephemeral_key_and_says_so(tmp_path: Path) -> None:
    task = load_task(SYNTHETIC_TOML)
    make_scores(task, tmp_path / "scores.npz")
    args = ["--task", str(SYNTHETIC_TOML), "--scores", str(tmp_path / "scores.npz")]
    with serve(args, tmp_path / "serve.log") as served, grpc.insecure_channel(served.address) as ch:
        d = pb_grpc.ProverStub(ch).DescribeTask(pb.DescribeTaskRequest(), timeout=30)
        served.proc.send_signal(signal.SIGINT)
        # Wait here: a second signal (the fixture's SIGTERM) could hit the process during
        # interpreter shutdown, when Python has restored the default handlers.
        served.proc.wait(timeout=60)
    assert served.proc.returncode == 0
    err = served.stderr
    key_id = "ed25519:" + d.prover_public_key.hex()
    assert (
        f"no --key: signing with an ephemeral key {key_id} "
        "(make a lasting one with: pacda-prover keygen --out PREFIX)"
    ) in err


def test_serve_usage_errors_exit_2(tmp_path: Path) -> None:
    done = _run(
        ["serve", "--task", str(SYNTHETIC_TOML), "--scores", "x.npz", "--tls-cert", "c.pem"]
    )
    assert done.returncode == 2
    assert done.stderr == "pacda-prover serve: error: --tls-cert and --tls-key go together\n"
    missing = tmp_path / "missing.npz"
    done = _run(["serve", "--task", str(SYNTHETIC_TOML), "--scores", str(missing), "--port", "0"])
    assert done.returncode == 2
    assert done.stderr == f"pacda-prover serve: error: {missing}: no such scores file\n"


def test_a_second_serve_on_the_same_port_fails_clearly(tmp_path: Path) -> None:
    task = load_task(SYNTHETIC_TOML)
    make_scores(task, tmp_path / "scores.npz")
    args = ["--task", str(SYNTHETIC_TOML), "--scores", str(tmp_path / "scores.npz")]
    with serve(args, tmp_path / "serve.log") as served:
        done = _run(["serve", *args, "--port", str(served.port)])
        assert done.returncode == 2
        assert done.stderr.splitlines()[-1] == (
            f"pacda-prover serve: error: cannot bind 127.0.0.1:{served.port}: the address is "
            "in use (another server?) or not available on this machine"
        )
        assert done.stdout == ""  # never said "listening on"
        with grpc.insecure_channel(served.address) as ch:  # the first one still serves
            d = pb_grpc.ProverStub(ch).DescribeTask(pb.DescribeTaskRequest(), timeout=30)
            assert d.task_digest == task.digest
    assert served.proc.returncode == 0


@pytest.mark.parametrize("kind", ["npy", "text"])
def test_serve_refuses_a_file_that_is_not_a_scores_file_in_one_line(
    kind: str, tmp_path: Path
) -> None:
    """``serve --scores x.npy`` (another tool's matrix) or a text file: one line, exit 2."""
    path = tmp_path / ("x.npy" if kind == "npy" else "t.npz")
    if kind == "npy":
        np.save(path, np.zeros((2, 50)))
    else:
        path.write_text("not scores\n")
    done = subprocess.run(
        [*_cli(), "serve", "--port", "0", "--task", str(SYNTHETIC_TOML), "--scores", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    expected = "a plain .npy array" if kind == "npy" else "not a pacda scores file"
    assert expected in lines[0]
