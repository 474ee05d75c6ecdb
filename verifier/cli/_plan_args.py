"""Options shared by ``audit`` and ``certify``: epsilon, planning, the device, the cost gate.

The cost gate (:func:`plan_gate`) is the driver's ``on_plan`` hook: it prints
the plan and its cost (the pilot counted) before any challenge is sent, and
stops the audit there for ``--plan-only`` or when the plan is larger than
``--max-retrainings`` / ``--max-prover-evaluations`` without ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from protocol.plan import ESTIMATORS
from protocol.stats import DEFAULT as DEFAULT_STATISTIC
from protocol.stats import get as get_statistic
from protocol.stats import names as statistic_names

if TYPE_CHECKING:
    from protocol.report import AuditReport
    from verifier.config import AuditConfig
    from verifier.preview import PlanPreview

__all__ = [
    "DEFAULT_MAX_PROVER_EVALUATIONS",
    "DEFAULT_MAX_RETRAININGS",
    "GATE_HELP",
    "HARD_MAX_PROVER_EVALUATIONS",
    "add_device_argument",
    "add_epsilon_arguments",
    "add_plan_arguments",
    "cap_prover_evaluations",
    "devices_line",
    "epsilon_options",
    "plan_gate",
    "plan_options",
]

DEFAULT_MAX_RETRAININGS = 50_000
DEFAULT_MAX_PROVER_EVALUATIONS = 2_000_000
#: Plans other than ``lp`` are made under this cap (the Verifier holds every result in memory).
HARD_MAX_PROVER_EVALUATIONS = 20_000_000

GATE_HELP = (
    "cost gate: the plan is printed, with the pilot counted in the Verifier retrainings, "
    "before any challenge is sent; a plan above --max-retrainings or "
    "--max-prover-evaluations is refused (exit 2) unless --yes"
)


DEVICE_HELP = (
    "where the Verifier retrains: cpu, cuda (the current GPU), cuda:K or auto (CUDA when "
    "torch sees a GPU and the task can use it, else the CPU); a GPU this machine lacks is a "
    "usage error (exit 2).  When the Prover trains on another device class, the task's "
    "larger (CUDA) tolerance is charged [%(default)s]"
)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda|cuda:K|auto`` (default cpu): where the Verifier retrains."""
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help=DEVICE_HELP)


def devices_line(report: AuditReport) -> str:
    """One line naming the devices the report records (both sides; only the Verifier's locally)."""
    d = report.devices
    if d is None:
        return "devices: not recorded"
    mine = f"Verifier {d['verifier']} ({d['verifier_name']})"
    if not d["prover"]:
        return f"devices: {mine}"
    tau = report.plan["tolerance"] if report.plan else None
    charged = "" if tau is None else f"; tolerance charged tau = {tau:g}"
    theirs = f"Prover {d['prover']} ({d['prover_name']})"
    return f"devices: {theirs}, {mine}{charged}"


def add_epsilon_arguments(parser: argparse.ArgumentParser) -> None:
    """``--epsilon E`` or ``--epsilon-relative R`` (exactly one)."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--epsilon", type=float, default=None, help="accuracy, absolute (squared output units)"
    )
    group.add_argument(
        "--epsilon-relative",
        type=float,
        default=None,
        metavar="R",
        help="accuracy relative to the outputs' spread: epsilon = R x max_z Var(f_z) measured "
        "on the Verifier's own pilot (practical planning without --variance); the report "
        "records both R and the absolute epsilon",
    )


def epsilon_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~verifier.config.AuditConfig` keywords of the epsilon options.

    With ``--epsilon-relative`` the absolute epsilon is a placeholder (1.0) until
    the pilot replaces it (:meth:`AuditConfig.with_pilot_variance`).
    """
    if args.epsilon_relative is not None:
        return {"epsilon": 1.0, "epsilon_relative": args.epsilon_relative}
    return {"epsilon": args.epsilon}


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Planner options, the cost caps, ``--yes`` and ``--plan-only``."""
    _add_planner_arguments(parser)
    _add_gate_arguments(parser)


def _add_planner_arguments(parser: argparse.ArgumentParser) -> None:
    """``--statistic``, ``--estimator``, ``--completeness-radius``, ``--tail-fraction``, ..."""
    listing = "; ".join(f"{n}: {get_statistic(n).summary}" for n in statistic_names())
    parser.add_argument(
        "--statistic",
        choices=statistic_names(),
        default=None,
        metavar="NAME",
        help=f"the audit's statistic ({listing}); default: the one serving --mode, "
        f"--planning and --estimator ({DEFAULT_STATISTIC} for committed mode with practical "
        "planning)",
    )
    parser.add_argument(
        "--estimator",
        choices=("auto", *ESTIMATORS),
        default="auto",
        help="node functional family; auto = lp (clipped direct gap) for committed mode with "
        "practical planning, chebyshev otherwise [%(default)s]",
    )
    parser.add_argument(
        "--completeness-radius",
        type=float,
        default=None,
        metavar="R",
        help="lp plans: honest scores with err below R (absolute) must pass w.p. >= 1 - delta "
        "(default: epsilon / 10)",
    )
    parser.add_argument(
        "--tail-fraction",
        type=float,
        default=0.1,
        help="lp plans, completeness sizing only: assume B_{>=3}(q) <= this x E[q^2] [%(default)s]",
    )
    parser.add_argument(
        "--prover-weight",
        type=float,
        default=0.05,
        help="lp plans: minimise Verifier retrainings + this x (epsilon / E[q^2]) x Prover "
        "evaluations [%(default)s]",
    )


def _add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The cost caps, ``--always-spot-check``, ``--yes`` and ``--plan-only``."""
    parser.add_argument(
        "--max-retrainings",
        type=int,
        default=DEFAULT_MAX_RETRAININGS,
        metavar="N",
        help="refuse to start (exit 2) a plan needing more Verifier retrainings than N, the "
        "pilot included, unless --yes [%(default)s]",
    )
    parser.add_argument(
        "--max-prover-evaluations",
        type=int,
        default=DEFAULT_MAX_PROVER_EVALUATIONS,
        metavar="N",
        help="lp plans are searched within N Prover evaluations; other plans above N are "
        f"refused (exit 2) unless --yes, and never exceed max(N, "
        f"{HARD_MAX_PROVER_EVALUATIONS:,d}) [%(default)s]",
    )
    parser.add_argument(
        "--always-spot-check",
        action="store_true",
        help="lp plans: receive every result and draw the spot checks even when the "
        "Prover's results alone already reject (no screening of the result stream; "
        "slower; a liar is then caught with signed evidence in the report)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="start even above --max-retrainings / --max-prover-evaluations",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        help="print the plan and its cost, then stop before any challenge (exit 0); practical "
        "planning still trains the pilot",
    )


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~verifier.config.AuditConfig` keywords of the planner options."""
    return {
        "estimator": args.estimator,
        "statistic": args.statistic,
        "completeness_radius": args.completeness_radius,
        "tail_fraction": args.tail_fraction,
        "max_prover_evaluations": args.max_prover_evaluations,
        "prover_weight": args.prover_weight,
        "early_rejection": not args.always_spot_check,
    }


def cap_prover_evaluations(config: AuditConfig) -> AuditConfig:
    """``lp`` plans keep the cap as a planner constraint; others plan up to the hard cap.

    Plans that are not ``lp`` are not searched within a cap: a plan above
    ``--max-prover-evaluations`` reaches :func:`plan_gate`, which refuses it
    unless ``--yes``.
    """
    if config.resolved_estimator == "lp":
        return config
    cap = max(config.max_prover_evaluations, HARD_MAX_PROVER_EVALUATIONS)
    return replace(config, max_prover_evaluations=cap)


def plan_gate(args: argparse.Namespace) -> Callable[[PlanPreview], None]:
    """The ``on_plan`` hook of the CLI (see the module docstring)."""
    from verifier.preview import PlanDeclined

    def gate(preview: PlanPreview) -> None:
        print(preview.plan.table())
        print(preview.summary())
        sys.stdout.flush()
        if args.plan_only:
            raise PlanDeclined("--plan-only: stopped before the challenge", plan_only=True)
        over = []
        if preview.verifier_retrainings > args.max_retrainings:
            over.append(
                f"{preview.verifier_retrainings:,d} Verifier retrainings (pilot included) > "
                f"--max-retrainings {args.max_retrainings:,d}"
            )
        if preview.prover_evaluations > args.max_prover_evaluations:
            over.append(
                f"{preview.prover_evaluations:,d} Prover evaluations > "
                f"--max-prover-evaluations {args.max_prover_evaluations:,d}"
            )
        if over and not args.yes:
            raise PlanDeclined(
                "the plan needs " + " and ".join(over) + "; not started: raise epsilon "
                "or the cap, or pass --yes"
            )

    return gate
