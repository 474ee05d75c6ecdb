"""``make demo``: a complete local audit of the ``logreg`` task over gRPC.

1. computes attribution scores for ``examples/tasks/logreg.toml`` — with
   ``pacda-prover attribute`` when that command is installed, otherwise with a
   ridge datamodel fitted here on ``--trainings`` models (Ilyas et al. 2022);
2. starts ``pacda-prover serve --port 0`` as a subprocess and reads its port;
3. audits it with ``pacda-verifier audit`` (committed mode, practical
   planning) with ``--epsilon-relative``: epsilon is ``--epsilon-fraction`` x
   max_z Var(f_z) measured on the Verifier's own pilot, so that the plan stays
   affordable on a laptop;
4. prints the verdict and where the signed report is, stops the server.

Exit status 0 iff the audit accepted.

    python examples/demo_audit.py [--out out/demo_audit] [--epsilon-fraction 0.05]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", type=Path, default=HERE / "tasks" / "logreg.toml")
    ap.add_argument("--out", type=Path, default=Path("out/demo_audit"))
    ap.add_argument("--trainings", type=int, default=20000, help="datamodel fit [%(default)s]")
    ap.add_argument("--epsilon-fraction", type=float, default=0.05, help="x Var(f) [%(default)s]")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--mode", choices=("committed", "paper"), default="committed")
    return ap.parse_args(argv)


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def ridge_scores(task_path: Path, out: Path, trainings: int) -> None:
    """Fit theta0 + theta x by ridge regression on fresh trainings."""
    from protocol.prg import expand_points
    from protocol.scores import Scores, save_scores
    from prover.engine import train
    from prover.tasks.registry import load_task

    task = load_task(task_path)
    p = float(getattr(task, "spec").p)  # noqa: B009
    pts = expand_points(secrets.token_bytes(32), np.arange(trainings), task.n_items, p)
    t0 = time.perf_counter()
    y = train(task, pts.x, pts.seeds).outputs
    X = pts.x.astype(np.float64)
    Xc, yc = X - X.mean(axis=0), y - y.mean(axis=0)
    lam = 1e-2 * trainings
    theta = np.linalg.solve(Xc.T @ Xc + lam * np.eye(task.n_items), Xc.T @ yc).T
    theta0 = y.mean(axis=0) - theta @ X.mean(axis=0)
    save_scores(out, Scores(theta0=theta0, theta=theta, task_digest=task.digest,
                            method="ridge-datamodel"), overwrite=True)  # fmt: skip
    print(f"ridge datamodel on {trainings} trainings in {time.perf_counter() - t0:.1f}s -> {out}")


def compute_scores(args: argparse.Namespace, scores: Path) -> None:
    help_run = subprocess.run([_tool("pacda-prover"), "attribute", "--help"], capture_output=True)
    if help_run.returncode == 0:
        cmd = [
            _tool("pacda-prover"), "attribute", "--task", str(args.task), "--method", "datamodel",
            "--samples", str(args.trainings), "--check-samples", "0", "--out", str(scores),
            "--force", "--no-progress",
        ]  # fmt: skip
        print("$", " ".join(cmd))
        if subprocess.run(cmd).returncode == 0 and scores.exists():
            return
        print("pacda-prover attribute failed; fitting a ridge datamodel here instead")
    ridge_scores(args.task, scores, args.trainings)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scores = args.out / "scores.npz"
    compute_scores(args, scores)
    key = args.out / "verifier"
    if not (args.out / "verifier.key").exists():
        subprocess.run([_tool("pacda-verifier"), "keygen", "--out", str(key)], check=True)
    serve = subprocess.Popen(
        [_tool("pacda-prover"), "serve", "--task", str(args.task), "--scores", str(scores),
         "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = serve.stdout.readline() if serve.stdout else ""
        if not line.startswith("listening on "):
            print(f"the Prover did not start: {line!r}", file=sys.stderr)
            return 1
        address = line.split()[-1]
        print(f"Prover listening on {address}")
        report = args.out / "report.json"
        cmd = [
            _tool("pacda-verifier"), "audit", "--prover", address, "--task", str(args.task),
            "--epsilon-relative", f"{args.epsilon_fraction:g}", "--delta", str(args.delta),
            "--mode", args.mode, "--key", f"{key}.key", "--report", str(report), "--force",
        ]  # fmt: skip
        print("$", " ".join(cmd))
        code = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        if serve.stdout is not None:
            serve.stdout.close()
    verdict = {0: "ACCEPT", 1: "ABORT", 3: "ABORT (transport failure)"}.get(code, f"error {code}")
    print(f"\ndemo verdict: {verdict}; signed report: {report}")
    print(f"check it offline: pacda-verifier check-report {report} --public-key {key}.pub")
    print(f"demo took {time.perf_counter() - t0:.0f}s")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
