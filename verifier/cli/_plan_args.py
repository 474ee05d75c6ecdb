"""Options shared by ``audit`` and ``certify``: epsilon, planning, the device, the cost gate.

Options that set an :class:`~verifier.config.AuditConfig` field of the same
meaning take their default and help text from the field
(:func:`add_config_option`).

The cost gate (:func:`plan_gate`) is the driver's ``on_plan`` hook: it prints
the plan and its cost (the pilot counted) before any challenge is sent, and
stops the audit there for ``--plan-only`` or when the plan is larger than
``--max-retrainings`` / ``--max-prover-evaluations`` without ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, get_args

from protocol.plan import ESTIMATORS
from protocol.stats import DEFAULT as DEFAULT_STATISTIC
from protocol.stats import get as get_statistic
from protocol.stats import names as statistic_names
from verifier.config import AuditConfig, AuditMode, AuditPlanning

if TYPE_CHECKING:
    from protocol.report import AuditReport
    from verifier.preview import PlanPreview

__all__ = [
    "DEFAULT_MAX_PROVER_EVALUATIONS",
    "DEFAULT_MAX_RETRAININGS",
    "GATE_HELP",
    "HARD_MAX_PROVER_EVALUATIONS",
    "add_config_option",
    "add_device_argument",
    "add_epsilon_arguments",
    "add_mode_argument",
    "add_plan_arguments",
    "add_planning_argument",
    "cap_prover_evaluations",
    "devices_line",
    "epsilon_options",
    "plan_gate",
    "plan_options",
]

DEFAULT_MAX_RETRAININGS = 50_000
DEFAULT_MAX_PROVER_EVALUATIONS = 2_000_000

_FIELDS = {f.name: f for f in fields(AuditConfig)}

#: Plans of statistics that do not plan within the cap are made under this cap (the
#: Verifier holds every result in memory): the library's default
#: ``AuditConfig.max_prover_evaluations``.
HARD_MAX_PROVER_EVALUATIONS: int = AuditConfig.max_prover_evaluations

GATE_HELP = (
    "cost gate: the plan is printed, with the pilot counted in the Verifier retrainings, "
    "before any challenge is sent; a plan above --max-retrainings or "
    "--max-prover-evaluations is refused (exit 2) unless --yes"
)


def add_config_option(
    parser: argparse._ActionsContainer, name: str, flag: str | None = None, **kwargs: Any
) -> None:
    """``--name-with-hyphens`` (or ``flag``) for the AuditConfig field ``name``.

    The default and the help text are the field's (its ``metadata["help"]``, with
    ``[default]`` appended unless the default is ``None``); ``kwargs`` (``type``,
    ``choices``, ``metavar``) go to :meth:`argparse.ArgumentParser.add_argument`.
    """
    f = _FIELDS[name]
    shown = "" if f.default is None else " [%(default)s]"
    parser.add_argument(
        flag or "--" + name.replace("_", "-"),
        default=f.default,
        help=f.metadata["help"] + shown,
        **kwargs,
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda|cuda:K|auto`` (default cpu): where the Verifier retrains."""
    add_config_option(parser, "device", metavar="DEVICE")


def add_mode_argument(parser: argparse.ArgumentParser) -> None:
    """``--mode committed|paper``."""
    add_config_option(parser, "mode", choices=get_args(AuditMode))


def add_planning_argument(parser: argparse.ArgumentParser) -> None:
    """``--planning rigorous|practical``."""
    add_config_option(parser, "planning", choices=get_args(AuditPlanning))


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
    add_config_option(group, "epsilon", type=float)
    add_config_option(group, "epsilon_relative", type=float, metavar="R")


def epsilon_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~verifier.config.AuditConfig` keywords of the epsilon options.

    With ``--epsilon-relative`` epsilon is ``None`` until the pilot sets it
    (:meth:`AuditConfig.with_pilot_variance`).
    """
    return {"epsilon": args.epsilon, "epsilon_relative": args.epsilon_relative}


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
    add_config_option(parser, "estimator", choices=("auto", *ESTIMATORS))
    add_config_option(parser, "completeness_radius", type=float, metavar="R")
    add_config_option(parser, "tail_fraction", type=float)
    add_config_option(parser, "prover_weight", type=float)


def _add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The cost caps, ``--always-spot-check``, ``--yes`` and ``--plan-only``."""
    parser.add_argument(
        "--max-retrainings",
        type=int,
        default=DEFAULT_MAX_RETRAININGS,
        metavar="N",
        help="refuse to start (exit 2) a plan that can need more Verifier retrainings than N "
        "(its worst case: the pilot and any later stages included), unless --yes [%(default)s]",
    )
    parser.add_argument(
        "--max-prover-evaluations",
        type=int,
        default=DEFAULT_MAX_PROVER_EVALUATIONS,
        metavar="N",
        help="default (u-statistic) and clipped-gap plans are searched within N Prover "
        "evaluations; other plans above N are "
        f"refused (exit 2) unless --yes, and never exceed max(N, "
        f"{HARD_MAX_PROVER_EVALUATIONS:,d}) [%(default)s]",
    )
    parser.add_argument(
        "--always-spot-check",
        action="store_true",
        help="receive every result and draw the spot checks even when the "
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
    """Statistics that plan within the cap keep it as a planner constraint; others plan up
    to the hard cap.

    The u-statistic's and the clipped gap's planners search within the cap
    (``plans_within_cap``); the others' are not: a plan above
    ``--max-prover-evaluations`` reaches :func:`plan_gate`, which refuses it
    unless ``--yes``.
    """
    if get_statistic(config.resolved_statistic).plans_within_cap:
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
        if preview.worst_case_retrainings > args.max_retrainings:
            over.append(
                f"{preview.worst_case_retrainings:,d} Verifier retrainings at most (pilot and "
                f"later stages included) > --max-retrainings {args.max_retrainings:,d}"
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
