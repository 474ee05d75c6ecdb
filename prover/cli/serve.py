"""``pacda-prover serve``: run the Prover's gRPC service for one task and one scores file.

Prints ``listening on HOST:PORT`` on stdout (one line, flushed) once the server
accepts connections, so scripts can start it with ``--port 0`` and read the
port; everything else goes to stderr.  SIGTERM or SIGINT stop it gracefully.
The port is bound exclusively: a second ``serve`` on a port in use exits 2.
``--device`` is where challenge points are trained; its class (cpu or cuda)
is announced in every Commit header, and a Verifier on another class charges
the task's larger (CUDA) tolerance.
Sessions, streams and memory are capped (``--help``, docs/wire.md "Limits").
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from protocol.errors import InvalidArgument
from protocol.scores import load_scores
from protocol.signing import generate_private_key, key_id, load_private_key
from prover.adversaries import Armed, arm, catalogue_help, parse_adversary
from prover.cli._devices import add_device_argument, make_executor
from prover.executors import Executor, TaskSource
from prover.service import (
    Ed25519Signer,
    ProverHandlers,
    ServerOptions,
    ServiceLimits,
    TlsFiles,
    start_server,
)
from prover.store import ResultStore
from prover.tasks.base import Task
from prover.tasks.device import Device, parse_device, resolve_device
from prover.tasks.registry import load_task

__all__ = ["HELP", "add_arguments", "run"]

HELP = "serve the Prover over gRPC: commit the scores, answer challenges, open spot checks"
DEFAULT_PORT = 50051


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serve``."""
    parser.add_argument("--task", required=True, type=Path, help="task file (TOML)")
    parser.add_argument("--scores", required=True, type=Path, help="scores file (.npz)")
    parser.add_argument(
        "--store",
        type=Path,
        help="result store directory (resumable training; keeps weights). Without it, "
        "results of open sessions are kept in memory and their weights in spill files "
        "(--spill-dir), until the session is freed",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 = any (default {DEFAULT_PORT})"
    )
    parser.add_argument("--tls-cert", type=Path, help="TLS certificate (PEM); needs --tls-key")
    parser.add_argument("--tls-key", type=Path, help="TLS private key (PEM); needs --tls-cert")
    parser.add_argument("--key", type=Path, help="Ed25519 signing key (default: ephemeral)")
    parser.add_argument(
        "--executor", choices=("inprocess", "ray"), default="inprocess", help="training farm"
    )
    parser.add_argument("--ray-address", help="Ray cluster address (with --executor ray)")
    add_device_argument(parser)
    d, o = ServiceLimits(), ServerOptions()
    parser.add_argument(
        "--workers",
        type=int,
        default=o.max_workers,
        help=f"worker threads serving RPCs (default {o.max_workers}, at least 2)",
    )
    parser.add_argument(
        "--max-streams",
        type=int,
        default=None,
        help="Commit/Challenge/Open streams at once; more are refused with RESOURCE_EXHAUSTED "
        "(default: workers - 2, so two threads always answer health checks and DescribeTask)",
    )
    parser.add_argument(
        "--max-streams-per-client",
        type=int,
        default=None,
        help="of which one client host may run (default: half of --max-streams, at least 1)",
    )
    parser.add_argument(
        "--write-timeout",
        type=float,
        default=o.write_timeout_s,
        metavar="SECONDS",
        help="cancel a stream whose client has not taken a message for this long "
        f"(default {o.write_timeout_s:g})",
    )
    parser.add_argument(
        "--max-points",
        type=int,
        default=d.max_points,
        help=f"most challenge points served per challenge (default {d.max_points:,})",
    )
    parser.add_argument(
        "--max-open",
        type=int,
        default=d.max_open,
        help=f"most indices per Open (default {d.max_open})",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=d.max_sessions,
        help=f"most sessions kept at once, all clients (default {d.max_sessions})",
    )
    parser.add_argument(
        "--max-sessions-per-client",
        type=int,
        default=d.max_sessions_per_client,
        help=f"most sessions kept at once per client host (default {d.max_sessions_per_client})",
    )
    parser.add_argument(
        "--session-idle",
        type=float,
        default=d.session_idle_s,
        metavar="SECONDS",
        help="free a session after this long without a call in progress; covers the "
        f"Verifier's pilot and spot-check retraining (default {d.session_idle_s:g})",
    )
    parser.add_argument(
        "--session-lifetime",
        type=float,
        default=d.session_lifetime_s,
        metavar="SECONDS",
        help=f"free every session this long after its Commit (default {d.session_lifetime_s:g})",
    )
    parser.add_argument(
        "--max-memory",
        type=int,
        default=d.max_memory_bytes >> 20,
        metavar="MIB",
        help="memory for the per-point state of all sessions together (about "
        "8 Z + 97 bytes per challenge point); a challenge that does not fit is refused "
        f"(default {d.max_memory_bytes >> 20})",
    )
    parser.add_argument(
        "--max-client-memory",
        type=int,
        default=d.max_client_memory_bytes >> 20,
        metavar="MIB",
        help="the same for the sessions of one client host "
        f"(default {d.max_client_memory_bytes >> 20})",
    )
    parser.add_argument(
        "--spill-dir",
        type=Path,
        help="where a Prover without --store keeps challenge weights until they are opened "
        "(unlinked temporary files; default: the system's temp directory)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    red = parser.add_argument_group(
        "red-team mode (a CHEATING Prover, for testing Verifiers; never for real audits)"
    )
    red.add_argument(
        "--adversary",
        action="append",
        default=[],
        metavar="NAME[:PARAMS]",
        help="cheat as NAME (repeatable: at most one score manipulation plus one "
        f"result/commitment manipulation). Adversaries: {catalogue_help()}",
    )
    red.add_argument(
        "--adversary-seed",
        type=int,
        default=0,
        help="root seed of the adversaries' randomness (default 0)",
    )


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    return None if args.tls_cert is None else TlsFiles(cert=args.tls_cert, key=args.tls_key)


def _check_store_has_weights(path: Path) -> None:
    """A store ``attribute --no-store-weights`` wrote cannot open spot checks: say what to run."""
    if ResultStore.exists(path) and not ResultStore.read_config(path).store_weights:
        raise InvalidArgument(
            f"result store {path} keeps no model weights (written by 'attribute "
            "--no-store-weights'), which serve needs to open spot checks; give serve a new "
            "--store DIR, or rerun 'attribute --store NEW_DIR' (weights kept by default)"
        )


def _executor(args: argparse.Namespace, task: Task) -> tuple[Executor, TaskSource | None, Device]:
    """The executor, for Ray the picklable task factory its workers rebuild from, the device."""
    executor, device = make_executor(
        args.executor, device=args.device, task=task, ray_address=args.ray_address
    )
    factory = functools.partial(load_task, args.task) if args.executor == "ray" else None
    return executor, factory, device


def run(args: argparse.Namespace) -> int:
    """Load everything, serve until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    adversaries = [parse_adversary(text) for text in args.adversary]  # usage errors first
    parse_device(args.device)
    if args.ray_address is not None and args.executor != "ray":
        raise InvalidArgument("--ray-address needs --executor ray")
    tls = _tls(args)
    options = ServerOptions(
        host=args.host,
        port=args.port,
        max_workers=args.workers,
        max_streams=args.max_streams,
        max_streams_per_client=args.max_streams_per_client,
        write_timeout_s=args.write_timeout,
        tls=tls,
    )
    memory = {"--max-memory": args.max_memory, "--max-client-memory": args.max_client_memory}
    for flag, mib in memory.items():
        if mib < 1:
            raise InvalidArgument(f"{flag} must be >= 1 MiB, got {mib}")
    limits = ServiceLimits(
        max_points=args.max_points,
        max_open=args.max_open,
        max_sessions=args.max_sessions,
        max_sessions_per_client=args.max_sessions_per_client,
        session_idle_s=args.session_idle,
        session_lifetime_s=args.session_lifetime,
        max_memory_bytes=args.max_memory << 20,
        max_client_memory_bytes=args.max_client_memory << 20,
    )
    if args.store is not None:
        _check_store_has_weights(args.store)
    task = load_task(args.task)
    if args.executor != "ray":  # a missing GPU is a usage error before anything is loaded
        resolve_device(args.device, task=task)
    task_toml = args.task.read_text(encoding="utf-8")
    scores = load_scores(
        args.scores, task_digest=task.digest, n_items=task.n_items, n_outputs=task.n_outputs
    )
    if args.key is None:
        private_key = generate_private_key()
        print(
            f"no --key: signing with an ephemeral key {key_id(private_key)} "
            "(make a lasting one with: pacda-prover keygen --out PREFIX)",
            file=sys.stderr,
        )
    else:
        private_key = load_private_key(args.key)
    armed: Armed | None = None
    if adversaries:
        armed = arm(adversaries, task=task, scores=scores, seed=args.adversary_seed)
        scores = armed.scores
        print(
            f"RED-TEAM MODE: this Prover cheats ({armed.describe()}); "
            "its answers must not be trusted",
            file=sys.stderr,
            flush=True,
        )
    executor, factory, device = _executor(args, task)
    with ExitStack() as stack:
        stack.callback(executor.close)
        store = None
        if args.store is not None:
            store = stack.enter_context(
                ResultStore.open_for_task(args.store, task, store_weights=True)
            )
        handlers = ProverHandlers(
            source=factory if factory is not None else task,
            task_toml=task_toml,
            scores=scores,
            signer=Ed25519Signer(private_key),
            store=store,
            executor=executor,
            limits=limits,
            policy=armed.policy if armed is not None else None,
            spill_dir=args.spill_dir,
        )
        server = start_server(handlers, options)
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _on_signal)
        print(f"listening on {server.address}", flush=True)
        print(
            f"task {task.digest}; signing key {key_id(private_key)}; "
            f"{'TLS' if tls else 'plaintext'}; training on {device.description} "
            f"(device class {device.device_class})",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
        print("stopping", file=sys.stderr, flush=True)
        server.stop(grace_s=5.0)
    return 0
