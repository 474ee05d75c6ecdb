"""Planning options shared by ``audit`` and ``certify`` (choices from the protocol's registry)."""

from __future__ import annotations

import argparse
from typing import Any

from protocol.plan import ESTIMATORS

__all__ = ["add_plan_arguments", "plan_options"]


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """``--estimator``, ``--completeness-radius``, ``--tail-fraction`` and the Prover cap."""
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
        "--max-prover-evaluations",
        type=int,
        default=20_000_000,
        help="refuse (lp plans: never plan) more Prover evaluations than this [%(default)s]",
    )
    parser.add_argument(
        "--prover-weight",
        type=float,
        default=0.025,
        help="lp plans: minimise Verifier retrainings + this x Prover evaluations [%(default)s]",
    )


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~verifier.config.AuditConfig` keywords of those options."""
    return {
        "estimator": args.estimator,
        "completeness_radius": args.completeness_radius,
        "tail_fraction": args.tail_fraction,
        "max_prover_evaluations": args.max_prover_evaluations,
        "prover_weight": args.prover_weight,
    }
