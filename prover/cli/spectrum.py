"""``pacda-prover spectrum``: measure how much of the residuals' weight lies above degree 2.

Example::

    pacda-prover spectrum --task examples/tasks/logreg.toml --scores scores.npz --pairs 8000

The audit's default statistic is biased upward by the residuals' Fourier
weight above degree 2, so the Verifier sizes completeness on an assumption
``B_{>=3}(q) <= tail_fraction E[q^2]`` (``pacda-verifier audit --tail-fraction``,
default 0.1).  This command measures it: ``--pairs`` subsets and a partner at
each of seven correlations (``pairs x 8`` trainings), the noise-stability
curve of ``q = f - g_a``, confidence bounds on ``B_{>=3} / E[q^2]``
(:mod:`protocol.spectrum`) and the scores' err by the degree-1 U-statistic,
which no degree biases.  Progress goes to stderr, the summary to stdout,
``--json`` writes it all (an existing file only with ``--force``).  Ctrl-C
ends it with exit status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from protocol.errors import InvalidArgument
from protocol.scores import load_scores
from protocol.spectrum import degree_fit, degree_one_ustatistic, weight_bounds
from prover.cli._devices import add_device_argument
from prover.cli._interrupt import EXIT_INTERRUPTED
from prover.spectrum import RHOS, Measurement, measure_curve
from prover.tasks.device import resolve_device
from prover.tasks.registry import load_task

__all__ = ["HELP", "add_arguments", "run"]

HELP = "measure the residuals' weight above degree 2 (what --tail-fraction assumes)"
MIN_PAIRS = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``spectrum``."""
    parser.epilog = "exit codes: 0 success, 1 failure of the job, 2 usage error, 130 interrupted"
    parser.add_argument("--task", required=True, type=Path, help="task file (TOML)")
    parser.add_argument("--scores", required=True, type=Path, help="scores file (.npz)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=4000,
        metavar="M",
        help=f"subsets per correlation; trains M x {len(RHOS) + 1} models [%(default)s]",
    )
    parser.add_argument("--delta", type=float, default=0.05, help="bounds hold w.p. 1 - delta")
    parser.add_argument("--seed", type=int, default=0, help="root seed of every random draw")
    add_device_argument(parser)
    parser.add_argument("--chunk-size", type=int, default=512, help="models per training chunk")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:
    """Validate, measure, print the summary (and write ``--json``)."""
    if args.pairs < MIN_PAIRS:
        raise InvalidArgument(f"--pairs must be >= {MIN_PAIRS}, got {args.pairs}")
    if not 0.0 < args.delta < 1.0:
        raise InvalidArgument(f"--delta must lie in (0, 1), got {args.delta}")
    if args.json is not None and args.json.is_dir():
        raise InvalidArgument(f"--json {args.json} is a directory")
    if args.json is not None and args.json.exists() and not args.force:
        raise InvalidArgument(f"refusing to overwrite {args.json} (use --force)")
    task = load_task(args.task)
    device = resolve_device(args.device, task=task).name
    scores = load_scores(
        args.scores, task_digest=task.digest, n_items=task.n_items, n_outputs=task.n_outputs
    )

    def progress(rho: float, value: float) -> None:
        print(f"spectrum: rho = {rho:+.2f}: C = {value:.4f} E[q^2]", file=sys.stderr, flush=True)

    print(f"spectrum: training {args.pairs * (len(RHOS) + 1):,d} models "
          f"({args.pairs:,d} per correlation) on {device}", file=sys.stderr)  # fmt: skip
    try:
        measured = measure_curve(
            task, scores.predict, args.pairs, rng=np.random.default_rng(args.seed), device=device,
            chunk_size=args.chunk_size, on_node=progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        print("spectrum: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = summarise(measured, task.p, args.delta)
    print_summary(summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def summarise(measured: Measurement, p: float, delta: float) -> dict[str, Any]:
    """Bounds, fits and the U-statistic of a measurement, as plain JSON-able values."""
    curve = measured.curve
    fits = {}
    for degree in (2, 3):
        weights, above, chi2 = degree_fit(curve, degree)
        fits[str(degree)] = {"weights": weights.tolist(), "above": above, "chi2": chi2,
                             "dof": len(curve.rhos) - degree - 2}  # fmt: skip
    u, u_err = degree_one_ustatistic(measured.points, measured.residuals, p)
    ratio = u / measured.second_moments
    seed_noise = 1.0 - curve.values[curve.rhos.index(1.0)] if 1.0 in curve.rhos else None
    return {
        "pairs": len(measured.points),
        "trainings": measured.trainings,
        "delta": delta,
        "curve": {
            "rho": list(curve.rhos),
            "value": list(curve.values),
            "error": list(curve.errors),
        },
        "second_moments": measured.second_moments.tolist(),
        "seed_noise": seed_noise,
        "fits": fits,
        "tail_bounds": list(weight_bounds(curve, "tail", delta=delta)),
        "tail_fit": float(sum(fits["3"]["weights"][3:]) + fits["3"]["above"]),
        "err_bounds": list(weight_bounds(curve, (0, 1), delta=delta)),
        "err_ustatistic": ratio.tolist(),
        "err_ustatistic_error": (u_err / measured.second_moments).tolist(),
    }


def print_summary(s: dict[str, Any]) -> None:
    """The human-readable summary (stdout)."""
    c = s["curve"]
    print(f"noise-stability curve of q = f - g_a, {s['pairs']:,d} pairs per correlation, "
          "pooled over outputs, in units of E[q^2]:")  # fmt: skip
    print("  rho      C(rho)    s.e.")
    for rho, value, error in zip(c["rho"], c["value"], c["error"], strict=True):
        print(f"  {rho:+.2f}  {value:9.4f}  {error:7.4f}")
    if s["seed_noise"] is not None:
        print(f"training-seed noise (1 - C(1)): {s['seed_noise']:.3f} E[q^2]")
    two = s["fits"]["2"]
    print(f"fit with degrees <= 2: chi-square {two['chi2']:.1f} on {two['dof']} dof; "
          f"with degrees <= 3: B_>=3 = {s['tail_fit']:.4f} E[q^2]")  # fmt: skip
    lo, hi = s["tail_bounds"]
    print(f"B_>=3 / E[q^2] in [{lo:.4f}, {hi:.4f}] with probability >= {1 - s['delta']:g}")
    elo, ehi = s["err_bounds"]
    u = np.asarray(s["err_ustatistic"])
    print(f"err / E[q^2] of the scores: in [{elo:.4f}, {ehi:.4f}] by the curve; "
          f"{u.min():.4f} .. {u.max():.4f} over outputs by the degree-1 U-statistic "
          f"(s.e. about {np.mean(s['err_ustatistic_error']):.4f})")  # fmt: skip
    print(
        f"the Verifier's completeness sizing: --tail-fraction {min(1.0, hi):.3g} covers the "
        "upper bound (default 0.1; soundness does not depend on it)"
    )
