"""A data marketplace audits the attribution behind its payouts.

The marketplace trains models on data from N contributors and pays each one
``rate x attribution_i`` with ``attribution_i = sum_z max(theta_zi, 0)``: the
positive part of the contributor's datamodel score (pm encoding, output units),
summed over the Z outputs buyers pay for.  The scores come from a Prover (the
marketplace's compute provider); an independent Verifier audits them with
pacda before the money moves.  Three Provers commit three score matrices:

* ``honest``   — a ridge datamodel fitted on ``--trainings`` models;
* ``shaved``   — the honest scores x ``--shave``: every contributor is underpaid;
* ``favoured`` — the honest scores plus ``--boost`` on a random
  ``--favour-fraction`` of the contributors (the Prover's affiliates).

Each runs as a real ``pacda-prover serve --port 0`` subprocess; the Verifier
audits it over gRPC on localhost with :class:`verifier.Auditor` (committed
mode, practical planning, Var(f) and epsilon from the Verifier's own runs) and
writes a signed report.  The script prints each verdict, the payouts and how
they differ from the honest ones, and (the task is synthetic) the exact
err(a)/epsilon of every schedule.  Exit status 0 iff the honest scores are
accepted and both manipulated ones are rejected.

    python examples/marketplace_audit/marketplace.py [--out out/marketplace] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from numpy.typing import NDArray

from protocol.prg import expand_points
from protocol.scores import Scores, save_scores
from protocol.signing import load_private_key, write_keypair
from prover.attribution import fit_datamodel
from prover.engine import train
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from prover.tasks.synthetic import SyntheticTask
from verifier import AuditConfig, Auditor

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FloatArray = NDArray[np.float64]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--task", type=Path, default=HERE / "task.toml", help="[%(default)s]")
    ap.add_argument("--out", type=Path, default=Path("out/marketplace"), help="[%(default)s]")
    ap.add_argument("--trainings", type=int, default=20000, help="honest fit [%(default)s]")
    ap.add_argument("--pilot", type=int, default=500, help="Verifier's Var(f) runs [%(default)s]")
    ap.add_argument("--epsilon-fraction", type=float, default=0.2, help="x Var(f) [%(default)s]")
    ap.add_argument("--delta", type=float, default=0.05, help="[%(default)s]")
    ap.add_argument("--budget", type=float, default=100_000.0, help="honest total payout")
    ap.add_argument("--shave", type=float, default=0.5, help="shaved scores = honest x this")
    ap.add_argument("--favour-fraction", type=float, default=0.2, help="[%(default)s]")
    ap.add_argument("--boost", type=float, default=0.2, help="added to favoured scores")
    ap.add_argument("--seed", type=int, default=7, help="root seed of this script's draws")
    return ap.parse_args(argv)


@dataclass(frozen=True)
class Schedule:
    """A committed score matrix and the payouts it implies.

    Attributes:
        name: honest, shaved or favoured.
        scores: what the Prover commits (pm encoding).
        favoured: indices of favoured contributors (empty unless ``favoured``).
    """

    name: str
    scores: Scores
    favoured: NDArray[np.int64]


def attribution(scores: Scores) -> FloatArray:
    """Per-contributor attribution ``sum_z max(theta_zi, 0)``: float64 ``(N,)``."""
    return np.asarray(np.clip(scores.theta, 0.0, None).sum(axis=0))


def honest_scores(task: Task, trainings: int, rng: np.random.Generator) -> Scores:
    """Ridge datamodel (Ilyas et al. 2022) on ``trainings`` fresh runs of the task."""
    p = float(getattr(getattr(task, "spec", None), "p", 0.5))
    pts = expand_points(rng.bytes(32), np.arange(trainings), task.n_items, p)
    y = train(task, pts.x, pts.seeds).outputs
    fit = fit_datamodel(pts.x, y, p=p, rng=rng)
    return Scores(
        theta0=fit.theta0,
        theta=fit.theta,
        task_digest=task.digest,
        method="ridge-datamodel",
        meta={"trainings": trainings},
    )


def schedules(honest: Scores, args: argparse.Namespace, rng: np.random.Generator) -> list[Schedule]:
    """The honest schedule and the two manipulated ones."""
    n = honest.n_items
    favoured = np.sort(rng.choice(n, size=max(1, round(args.favour_fraction * n)), replace=False))
    boosted = np.array(honest.theta)
    boosted[:, favoured] += args.boost
    shaved = args.shave * np.asarray(honest.theta)

    def variant(name: str, theta0: FloatArray, theta: FloatArray) -> Scores:
        return Scores(theta0=theta0, theta=theta, task_digest=honest.task_digest, method=name)

    none = np.zeros(0, dtype=np.int64)
    return [
        Schedule("honest", honest, none),
        Schedule("shaved", variant("shaved", args.shave * honest.theta0, shaved), none),
        Schedule("favoured", variant("favoured", np.array(honest.theta0), boosted), favoured),
    ]


def verifier_variance(task: Task, n: int, rng: np.random.Generator) -> float:
    """Var(f) (max over outputs) from the Verifier's own ``n`` runs, never the Prover's."""
    p = float(getattr(getattr(task, "spec", None), "p", 0.5))
    pts = expand_points(rng.bytes(32), np.arange(n), task.n_items, p)
    return float(np.max(np.var(train(task, pts.x, pts.seeds).outputs, axis=0, ddof=1)))


@contextmanager
def prover(task: Path, scores: Path) -> Iterator[str]:
    """``pacda-prover serve --port 0`` on localhost; yields its address."""
    exe = BIN / "pacda-prover"
    proc = subprocess.Popen(
        [str(exe) if exe.exists() else "pacda-prover", "serve", "--task", str(task),
         "--scores", str(scores), "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the Prover did not start: {line!r}")
        yield line.split()[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t_start = time.perf_counter()
    root = np.random.SeedSequence(args.seed)
    fit_seq, cheat_seq, verifier_seq = root.spawn(3)
    task = load_task(args.task)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"task {args.task}: N={task.n_items} contributors, Z={task.n_outputs} outputs")

    t0 = time.perf_counter()
    honest = honest_scores(task, args.trainings, np.random.default_rng(fit_seq))
    print(f"honest Prover: ridge datamodel on {args.trainings:,d} runs "
          f"({time.perf_counter() - t0:.1f}s)")  # fmt: skip
    plans = schedules(honest, args, np.random.default_rng(cheat_seq))
    rate = args.budget / float(attribution(honest).sum())

    verifier_rng = np.random.default_rng(verifier_seq)
    var_f = verifier_variance(task, args.pilot, verifier_rng)
    epsilon = args.epsilon_fraction * var_f
    print(f"Verifier: Var(f) = {var_f:.4g} from {args.pilot} own runs; epsilon = "
          f"{args.epsilon_fraction:g} x Var(f) = {epsilon:.4g}, delta = {args.delta}")  # fmt: skip
    key_path = args.out / "verifier.key"
    if not key_path.exists():
        write_keypair(args.out / "verifier")
    key = load_private_key(key_path)

    honest_pay = rate * attribution(honest)
    summary: dict[str, object] = {
        "epsilon": epsilon,
        "delta": args.delta,
        "variance_f": var_f,
        "rate": rate,
        "public_key": str(args.out / "verifier.pub"),
    }
    verdicts: dict[str, bool] = {}
    for s in plans:
        path = save_scores(args.out / f"{s.name}.npz", s.scores, overwrite=True)
        t0 = time.perf_counter()
        with prover(args.task, path) as address, grpc.insecure_channel(address) as channel:
            config = AuditConfig(epsilon=epsilon, delta=args.delta)
            result = Auditor(task, config, key=key, rng=verifier_rng).run(channel)
        report = result.report
        (args.out / f"{s.name}.report.json").write_bytes(result.document)
        accepted = report.decision == "accept"
        verdicts[s.name] = accepted
        pay = rate * attribution(s.scores)
        exact = _exact_err(task, s.scores)
        print(f"\n[{s.name}] {'ACCEPT' if accepted else 'ABORT'} "
              f"({time.perf_counter() - t0:.1f}s, Prover trained "
              f"{report.costs['prover_evaluations']:,d}, Verifier retrained "
              f"{report.costs['verifier_retrainings']:,d})")  # fmt: skip
        if accepted:
            print(f"  certified: err <= {report.certified_upper_bound:.4g} for every output")
        else:
            print(f"  reason: {report.reason}")
        if exact is not None:
            print("  exact err / epsilon (synthetic task): "
                  + " ".join(f"{e / epsilon:.2f}" for e in exact))  # fmt: skip
        print(f"  total payout {pay.sum():>12,.2f}  (honest {honest_pay.sum():,.2f}, "
              f"difference {pay.sum() - honest_pay.sum():+,.2f})")  # fmt: skip
        diff = pay - honest_pay
        print(f"  largest change for one contributor {diff[np.argmax(np.abs(diff))]:+,.2f}")
        if len(s.favoured):
            others = np.setdiff1d(np.arange(task.n_items), s.favoured)
            print(f"  {len(s.favoured)} favoured contributors {list(map(int, s.favoured))}: "
                  f"{honest_pay[s.favoured].sum():,.2f} -> {pay[s.favoured].sum():,.2f}; "
                  f"the other {len(others)}: {pay[others].sum():,.2f} (unchanged)")  # fmt: skip
        summary[s.name] = {
            "decision": report.decision,
            "reason": report.reason,
            "certified_upper_bound": report.certified_upper_bound,
            "total_payout": float(pay.sum()),
            "payout_difference": float(pay.sum() - honest_pay.sum()),
            "payouts": pay.tolist(),
            "favoured": s.favoured.tolist(),
            "exact_err_over_epsilon": None if exact is None else (exact / epsilon).tolist(),
            "report": str(args.out / f"{s.name}.report.json"),
            "costs": report.costs,
        }
    ok = verdicts["honest"] and not verdicts["shaved"] and not verdicts["favoured"]
    summary["ok"] = ok
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nsigned reports and summary.json in {args.out}; check one offline with\n"
          f"  pacda-verifier check-report {args.out}/honest.report.json "
          f"--public-key {args.out}/verifier.pub")  # fmt: skip
    print("marketplace result:", "honest paid, both manipulations caught" if ok
          else "UNEXPECTED verdicts", f"({time.perf_counter() - t_start:.0f}s)")  # fmt: skip
    return 0 if ok else 1


def _exact_err(task: Task, scores: Scores) -> FloatArray | None:
    """Exact err per output on a synthetic task, else None."""
    if not isinstance(task, SyntheticTask):
        return None
    return task.function.err(scores.theta0, scores.theta)


if __name__ == "__main__":
    sys.exit(main())
