"""``pacda-verifier certify``: mode ``local`` — the Verifier evaluates everything itself.

No Prover is involved.  The Verifier draws the challenge seed itself, trains
every point of the plan locally and applies the committed-mode decision
(direct gap statistic on ``q = f - g_a``).  What is certified: with
probability >= 1 - delta over the Verifier's own randomness, err(a) of the
given scores on this task is at most the reported certified upper bound
(and err < epsilon on accept).  The plan's corruption budget is not needed
(nothing is outsourced) and is kept as extra margin; there are no spot checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verifier.cli._plan_args import (
    GATE_HELP,
    add_config_option,
    add_device_argument,
    add_epsilon_arguments,
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
    check_scores_file,
    load_signing_key,
)

HELP = "local mode: certify a scores file by training everything locally (no Prover)"
DESCRIPTION = __doc__
EPILOG = (
    "exit codes: 0 accept (or --plan-only), 1 abort, 2 usage error (including a plan above "
    "the caps without --yes), 130 interrupted.  " + GATE_HELP
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, type=Path, help="TASK.toml")
    parser.add_argument("--scores", required=True, type=Path, help="scores .npz (pacda-scores/1)")
    add_epsilon_arguments(parser)
    parser.add_argument("--delta", required=True, type=float, help="failure probability")
    add_planning_argument(parser)
    add_config_option(parser, "variance", type=float)
    add_config_option(parser, "pilot_trainings", "--pilot", type=int)
    add_plan_arguments(parser)
    parser.add_argument("--key", type=Path, default=None, help="signing key (default: per-user)")
    add_device_argument(parser)
    parser.add_argument("--report", type=Path, default=None, help="write the signed report here")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --report (default: refuse)"
    )


def run(args: argparse.Namespace) -> int:
    from protocol.scores import load_scores
    from prover.tasks.registry import load_task
    from verifier.cli import EXIT_ABORT, EXIT_OK, EXIT_USAGE
    from verifier.cli.progress import ProgressDisplay
    from verifier.config import AuditConfig
    from verifier.local import certify_local
    from verifier.preview import PlanDeclined
    from verifier.render import render_text

    if args.report is not None and not args.plan_only:  # --plan-only writes nothing
        check_output(args.report, force=args.force, what="--report")
    check_scores_file(args.scores)
    task = load_task(args.task)
    scores = load_scores(
        args.scores, task_digest=task.digest, n_items=task.n_items, n_outputs=task.n_outputs
    )
    config = AuditConfig(
        **epsilon_options(args),
        delta=args.delta,
        planning=args.planning,
        variance=args.variance,
        pilot_trainings=args.pilot,
        **plan_options(args),
        device=args.device,
    )
    config = cap_prover_evaluations(config)
    key = load_signing_key(args.key)
    display = ProgressDisplay()
    try:
        result = certify_local(
            task,
            scores.theta0,
            scores.theta,
            config,
            key=key,
            progress=display,
            on_plan=plan_gate(args),
        )
    except PlanDeclined as stop:
        display.close()
        if stop.plan_only:
            print("--plan-only: stopped before the local evaluations; no report written")
            return EXIT_OK
        print(f"pacda-verifier certify: error: {stop}", file=sys.stderr)
        return EXIT_USAGE
    display.close()
    print(render_text(result.report))
    print(devices_line(result.report))
    if args.plan_only:  # the audit ended before its plan (e.g. the pilot rejected the scores)
        print("--plan-only: the audit ended before a plan; no report written")
        return EXIT_ABORT
    if args.report is not None:
        atomic_write(args.report, result.document)
        print(f"report written to {args.report}")
    return EXIT_OK if result.report.decision == "accept" else EXIT_ABORT
