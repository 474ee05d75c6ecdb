"""A complete local audit of the ``synthetic`` task, end to end on one machine.

What runs (docs/design.md §1-2, committed mode, every party in this process):

1. the task is loaded from its TOML spec and its digest computed;
2. two sets of attribution scores are *committed*: the honest optimal
   datamodel and a "shaved" copy (every score scaled by --shave);
3. the Verifier estimates Var(f) from a pilot of its own runs and plans the
   audit (practical planning), printing where epsilon goes;
4. only then is a fresh 32-byte challenge seed drawn and expanded by the PRG
   into correlated pairs; every pair is trained through the Prover's farm
   (in-process executor, resumable result store under --out);
5. the decision rule runs on both score sets and the verdicts are printed
   and written to ``<out>/audit_summary.json``.

Exit status 0 iff the honest scores are accepted and the shaved ones rejected.

    python examples/local_synthetic_audit.py [--epsilon-fraction 0.2] [--out out/demo]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from protocol import PlanRequest, decide_committed, expand_pairs, expand_points, make_plan
from prover.executors import run
from prover.store import ResultStore
from prover.tasks.registry import load_task
from prover.tasks.synthetic import SyntheticTask

HERE = Path(__file__).resolve().parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--task",
        type=Path,
        default=HERE / "tasks" / "synthetic.toml",
        help="task spec (kind must be synthetic) [%(default)s]",
    )
    ap.add_argument(
        "--epsilon-fraction",
        type=float,
        default=0.2,
        help="epsilon as a fraction of the pilot Var(f) [%(default)s]",
    )
    ap.add_argument("--delta", type=float, default=0.05, help="failure probability [%(default)s]")
    ap.add_argument(
        "--shave",
        type=float,
        default=0.5,
        help="the cheating Prover scales every score by this [%(default)s]",
    )
    ap.add_argument("--pilot", type=int, default=4000, help="pilot runs for Var(f) [%(default)s]")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        help="result store and summary directory [%(default)s]",
    )
    ap.add_argument(
        "--seed-hex",
        default=None,
        help="challenge seed (64 hex digits); default: fresh from os.urandom",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    task = load_task(args.task)
    if not isinstance(task, SyntheticTask):
        print(f"error: {args.task} is not a synthetic task", file=sys.stderr)
        return 2
    fn = task.function
    print(
        f"task {args.task.name}: N={task.n_items} Z={task.n_outputs} b={task.bound} "
        f"digest={task.digest}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    store = ResultStore.open(
        args.out / "store", task_digest=task.digest, n_items=task.n_items, n_outputs=task.n_outputs
    )

    # 2. Commitments: honest optimal scores and a shaved copy (pm encoding).
    theta0, theta = fn.optimal_attribution()
    committed = {"honest": (theta0, theta), "shaved": (theta0 * args.shave, theta * args.shave)}

    # 3. Pilot of the Verifier's own runs -> declared variance -> plan.
    rng = np.random.default_rng()
    pilot = expand_points(rng.bytes(32), np.arange(args.pilot), task.n_items, fn.p)
    pilot_out = run(task, pilot.x, pilot.seeds, store=store, chunk_size=args.pilot).outputs
    variance = float(pilot_out.var(axis=0, ddof=1).max())
    g_bound = max(float(np.max(np.abs(a0) + np.abs(a).sum(axis=1))) for a0, a in committed.values())
    plan = make_plan(
        PlanRequest(
            epsilon=args.epsilon_fraction * variance,
            delta=args.delta,
            bound=task.bound,
            tolerance=task.output_tolerance,
            n_outputs=task.n_outputs,
            p=fn.p,
            mode="committed",
            planning="practical",
            variance=variance,
            attribution_bound=g_bound,
        )
    )
    print(plan.table())

    # 4. Challenge seed drawn only now, after the commitments and the plan.
    seed = bytes.fromhex(args.seed_hex) if args.seed_hex else os.urandom(32)
    t0 = time.perf_counter()
    pairs = expand_pairs(seed, np.arange(plan.n_pairs), task.n_items, fn.p, plan.rho_of_pair())
    x = np.vstack([pairs.first, pairs.second])
    seeds = np.concatenate([pairs.first_seeds, pairs.second_seeds])
    result = run(task, x, seeds, store=store, chunk_size=65536)
    n = plan.n_pairs
    f1, f2 = result.outputs[:n], result.outputs[n:]
    print(
        f"challenge {seed.hex()[:16]}...: {len(x):,d} evaluations "
        f"({result.n_trained:,d} trained, {result.n_from_store:,d} from the store) "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    print(
        "local audit: this process computed every evaluation itself, so the plan's spot "
        "checks (needed against a remote Prover) are moot here"
    )

    # 5. Decide for both commitments.
    summary: dict[str, object] = {
        "task_digest": task.digest,
        "epsilon": plan.request.epsilon,
        "delta": args.delta,
        "challenge_seed": seed.hex(),
    }
    verdicts = {}
    for name, (a0, a) in committed.items():
        decision = decide_committed(
            plan,
            first_outputs=f1,
            second_outputs=f2,
            first_predictions=a0 + pairs.first @ a.T,
            second_predictions=a0 + pairs.second @ a.T,
        )
        exact = fn.err(a0, a)
        verdicts[name] = decision.accept
        print(f"\n{name} scores: {'ACCEPT' if decision.accept else 'ABORT'}")
        for o in decision.outputs:
            print(
                f"  output {o.output}: err_hat={o.estimate:.5f} +- {o.standard_error:.5f}  "
                f"certified err <= {o.certified_upper:.5f}  (exact err {exact[o.output]:.5f})"
            )
        if not decision.accept:
            print(f"  reason: {decision.reason}")
        summary[name] = {
            "decision": "accept" if decision.accept else "abort",
            "reason": decision.reason,
            "estimates": [o.estimate for o in decision.outputs],
            "certified_upper": [o.certified_upper for o in decision.outputs],
            "exact_err": exact.tolist(),
        }
    path = args.out / "audit_summary.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nsummary written to {path}")
    ok = verdicts["honest"] and not verdicts["shaved"]
    print("demo result:", "honest accepted, shaved rejected" if ok else "UNEXPECTED verdicts")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
