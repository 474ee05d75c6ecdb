"""``pacda-verifier audit``: audit a Prover service and write a signed report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verifier.cli._plan_args import add_plan_arguments, plan_options
from verifier.cli.common import atomic_write, details_document, details_path, load_signing_key

HELP = "audit a Prover over gRPC and write the signed report"
DESCRIPTION = """\
Run the pacda protocol against a Prover (docs/design.md §2): check the task digest,
receive the committed attributions, send a fresh challenge, check the
Merkle-committed results, retrain the spot checks locally and decide.  The
signed report is written to --report in every case (also on abort).

epsilon is absolute, in squared output units; the report also states it
relative to Var(f) estimated from the Verifier's own trainings."""
EPILOG = "exit codes: 0 accept, 1 abort, 2 usage error, 3 transport failure (Prover unreachable)"

KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prover", required=True, metavar="HOST:PORT", help="Prover address")
    parser.add_argument("--task", required=True, type=Path, help="the Verifier's own TASK.toml")
    parser.add_argument("--epsilon", required=True, type=float, help="accuracy (squared units)")
    parser.add_argument("--delta", required=True, type=float, help="failure probability")
    parser.add_argument("--mode", choices=("committed", "paper"), default="committed")
    parser.add_argument("--planning", choices=("rigorous", "practical"), default="practical")
    add_plan_arguments(parser)
    parser.add_argument(
        "--variance",
        type=float,
        default=None,
        help="practical planning: declared bound on the planned values' second moment "
        "(default: a pilot of the Verifier's own trainings)",
    )
    parser.add_argument("--pilot", type=int, default=200, help="pilot trainings [%(default)s]")
    parser.add_argument("--chunk-points", type=int, default=256, help="results per batch")
    parser.add_argument("--timeout", type=float, default=3600.0, help="deadline per RPC, seconds")
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA certificate (PEM) for TLS")
    parser.add_argument(
        "--key", type=Path, default=None, help="Verifier signing key (default: per-user key)"
    )
    parser.add_argument("--report", required=True, type=Path, help="where to write the report")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def _channel(address: str, tls_ca: Path | None):  # type: ignore[no-untyped-def]
    import grpc

    from protocol.errors import InvalidArgument

    if tls_ca is None:
        return grpc.insecure_channel(address, options=KEEPALIVE_OPTIONS)
    try:
        ca = tls_ca.read_bytes()
    except OSError as err:
        raise InvalidArgument(f"--tls-ca: cannot read {tls_ca}: {err.strerror}") from None
    creds = grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.secure_channel(address, creds, options=KEEPALIVE_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from protocol.errors import InvalidArgument
    from prover.tasks.registry import load_task
    from verifier.cli import EXIT_ABORT, EXIT_OK, EXIT_TRANSPORT
    from verifier.cli.progress import ProgressDisplay
    from verifier.config import AuditConfig
    from verifier.driver import Auditor
    from verifier.render import render_text

    if ":" not in args.prover:
        raise InvalidArgument(f"--prover must be HOST:PORT, got {args.prover!r}")
    config = AuditConfig(
        epsilon=args.epsilon,
        delta=args.delta,
        mode=args.mode,
        planning=args.planning,
        variance=args.variance,
        **plan_options(args),
        pilot_trainings=args.pilot,
        chunk_points=args.chunk_points,
        rpc_timeout_s=args.timeout,
    )
    key = load_signing_key(args.key)
    task = load_task(args.task)
    print(f"task {args.task}: N={task.n_items} Z={task.n_outputs} b={task.bound:g} {task.digest}")
    display = ProgressDisplay(enabled=not args.quiet)
    with _channel(args.prover, args.tls_ca) as channel:
        result = Auditor(task, config, key=key, progress=display).run(channel)
    display.close()
    if result.plan is not None:
        print(result.plan.table())
    atomic_write(args.report, result.document)
    atomic_write(details_path(args.report), details_document(result))
    print(render_text(result.report))
    print(f"report written to {args.report}")
    sys.stdout.flush()
    if result.transport_failure:
        return EXIT_TRANSPORT
    return EXIT_OK if result.report.decision == "accept" else EXIT_ABORT
