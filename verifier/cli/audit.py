"""``pacda-verifier audit``: audit a Prover service and write a signed report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verifier.cli._plan_args import (
    GATE_HELP,
    add_config_option,
    add_device_argument,
    add_epsilon_arguments,
    add_mode_argument,
    add_plan_arguments,
    add_planning_argument,
    cap_prover_evaluations,
    devices_line,
    epsilon_options,
    plan_gate,
    plan_options,
)
from verifier.cli.common import (
    atomic_write,
    check_output,
    details_document,
    details_path,
    load_signing_key,
)

HELP = "audit a Prover over gRPC and write the signed report"
DESCRIPTION = """\
Run the pacda protocol against a Prover (docs/design.md §2): check the task digest,
receive the committed attributions, send a fresh challenge, check the
Merkle-committed results, retrain the spot checks locally and decide.  The
signed report is written to --report in every case (also on abort).

The plan and its cost (Verifier retrainings with the pilot counted, Prover
evaluations, an estimated training time from the pilot's measured speed) are
printed before any challenge is sent; --plan-only stops there.

epsilon (--epsilon) is absolute, in squared output units; --epsilon-relative R
sets epsilon = R x max_z Var(f_z) of the Verifier's own pilot.  The report
states both."""
EPILOG = (
    "exit codes: 0 accept (or --plan-only), 1 abort (including a Prover that refuses to open "
    "spot checks after its signed root), 2 usage error (including a plan above the caps "
    "without --yes), 3 transport failure before the challenge (Prover unreachable; a Prover "
    "that ends the audit after the challenge is an abort, recorded), "
    "130 interrupted.  " + GATE_HELP
)

KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prover", required=True, metavar="HOST:PORT", help="Prover address")
    parser.add_argument("--task", required=True, type=Path, help="the Verifier's own TASK.toml")
    add_epsilon_arguments(parser)
    parser.add_argument("--delta", required=True, type=float, help="failure probability")
    add_mode_argument(parser)
    add_planning_argument(parser)
    add_plan_arguments(parser)
    add_config_option(parser, "variance", type=float)
    add_config_option(parser, "pilot_trainings", "--pilot", type=int)
    add_config_option(parser, "chunk_points", type=int)
    add_config_option(parser, "rpc_timeout_s", "--timeout", type=float)
    add_config_option(parser, "challenge_log", metavar="PATH|default|none")
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA certificate (PEM) for TLS")
    parser.add_argument(
        "--key", type=Path, default=None, help="Verifier signing key (default: per-user key)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="where to write the signed report (and REPORT.details.json beside it); "
        "required unless --plan-only",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --report (default: refuse)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_device_argument(parser)


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


def check_address(address: str) -> None:
    """``HOST:PORT`` with a port in 1..65535, else :class:`InvalidArgument` (exit 2)."""
    from protocol.errors import InvalidArgument

    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidArgument(
            f"--prover must be HOST:PORT with a port in 1..65535, got {address[:80]!r}"
        )


def run(args: argparse.Namespace) -> int:
    from protocol.errors import InvalidArgument
    from prover.tasks.registry import load_task
    from verifier.cli import EXIT_ABORT, EXIT_OK, EXIT_TRANSPORT, EXIT_USAGE
    from verifier.cli.progress import ProgressDisplay
    from verifier.config import AuditConfig
    from verifier.driver import Auditor
    from verifier.preview import PlanDeclined
    from verifier.render import render_text

    if args.report is None:
        if not args.plan_only:
            raise InvalidArgument("--report is required (except with --plan-only)")
    elif not args.plan_only:  # --plan-only writes nothing
        check_output(args.report, force=args.force, what="--report")
        check_output(details_path(args.report), force=args.force, what="--report's details")
    check_address(args.prover)
    config = AuditConfig(
        **epsilon_options(args),
        delta=args.delta,
        mode=args.mode,
        planning=args.planning,
        variance=args.variance,
        **plan_options(args),
        pilot_trainings=args.pilot,
        chunk_points=args.chunk_points,
        rpc_timeout_s=args.timeout,
        device=args.device,
        challenge_log=args.challenge_log,
    )
    config = cap_prover_evaluations(config)
    key = load_signing_key(args.key)
    task = load_task(args.task)
    print(f"task {args.task}: N={task.n_items} Z={task.n_outputs} b={task.bound:g} {task.digest}")
    display = ProgressDisplay(enabled=not args.quiet)
    auditor = Auditor(task, config, key=key, progress=display, on_plan=plan_gate(args))
    print(f"Verifier retrains on {auditor.device.description}")
    try:
        with _channel(args.prover, args.tls_ca) as channel:
            result = auditor.run(channel)
    except PlanDeclined as stop:
        display.close()
        if stop.plan_only:
            print("--plan-only: stopped before the challenge; no report written")
            return EXIT_OK
        print(f"pacda-verifier audit: error: {stop}", file=sys.stderr)
        return EXIT_USAGE
    display.close()
    if args.plan_only:  # the audit ended before its plan (e.g. the pilot rejected the scores)
        print(render_text(result.report))
        print("--plan-only: the audit ended before a plan; no report written")
        return EXIT_TRANSPORT if result.transport_failure else EXIT_ABORT
    atomic_write(args.report, result.document)
    atomic_write(details_path(args.report), details_document(result))
    print(render_text(result.report))
    print(devices_line(result.report))
    print(f"report written to {args.report}")
    sys.stdout.flush()
    if result.transport_failure:
        return EXIT_TRANSPORT
    return EXIT_OK if result.report.decision == "accept" else EXIT_ABORT
