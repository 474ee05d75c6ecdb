"""Scores computed elsewhere (a TRAK-style estimate in plain numpy), imported, served, audited.

1. **Elsewhere** (plain numpy and scikit-learn's data, nothing from pacda): a
   binary classification data set (breast cancer, 400 training and 16 test
   points, standardised) is saved as ``data.npz``; 5 L2-regularised logistic
   regressions are trained on random halves of the training set by this
   script's own gradient descent; TRAK's estimator (Park et al. 2023) for
   logistic regression gives, per test point t and training point i, the effect
   of including i on the margin ``y_t w.x_t``::

       tau[t, i] = mean_m  (y_t x_t)^T (X^T X + lambda I)^{-1} x_i y_i sigmoid(-y_i w_m.x_i)

   (margin gradients ``y x``, TRAK's ``Q = 1 - p``; ``lambda`` a ridge relative to
   the kernel's mean eigenvalue).  Saved as TRAK saves its scores: a plain
   ``(N train, Z test)`` float64 ``trak_scores.npy``.
2. **pacda**: a task file ``task.toml`` for the same data (kind ``logreg``,
   ``source = "data.npz"``, N = 400, Z = 16); ``pacda-prover import-scores
   --layout NZ --encoding mask --calibrate K`` turns the ranking into a linear
   datamodel (intercept and one scale per output, fitted by least squares on K
   of pacda's own retrainings) and records the calibration; ``pacda-prover
   serve`` serves it; ``pacda-verifier audit`` audits it over gRPC and writes a
   signed report whose ``scores_provenance`` records the calibration.

Exit status 0 iff every step ran (accept or abort); the verdict is printed.

    .venv/bin/python examples/import_scores/trak_logreg.py [--out out/import_scores] \\
        [--calibrate 1000] [--epsilon-fraction 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent

TASK = """\
# The data of examples/import_scores/trak_logreg.py, as a pacda task.
[task]
kind = "logreg"
p = 0.5
bound = 30.0
n_outputs = 16

[task.data]
source = "data.npz"
n_train = 400
standardize = false   # the script standardised it already

[task.train]
steps = 200
learning_rate = 0.5
momentum = 0.9
l2 = 0.01
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/import_scores"))
    ap.add_argument("--ensemble", type=int, default=5, help="TRAK models [%(default)s]")
    ap.add_argument("--damping", type=float, default=1.0, help="relative ridge [%(default)s]")
    ap.add_argument("--calibrate", type=int, default=1000, help="K retrainings [%(default)s]")
    ap.add_argument("--epsilon-fraction", type=float, default=0.25, help="x Var(f) [%(default)s]")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, text=True, check=False)


# --------------------------------------------------------------- elsewhere
def make_data(out: Path, seed: int) -> tuple[np.ndarray, ...]:
    """400 training and 16 test points of breast cancer, standardised; saved as data.npz."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    tr, te = order[:400], order[400:416]
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    np.savez(out / "data.npz", X_train=x[tr], y_train=y[tr], X_test=x[te], y_test=y[te])
    return x[tr], 2.0 * y[tr] - 1.0, x[te], 2.0 * y[te] - 1.0


def train_logreg(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 500) -> np.ndarray:
    """Plain gradient descent on mean logistic loss + (l2/2)||w||^2 (bias last, unpenalised)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    decay = np.full(xb.shape[1], l2)
    decay[-1] = 0.0
    for _ in range(steps):
        margin = y * (xb @ w)
        grad = -(xb * (y / (1.0 + np.exp(margin)))[:, None]).mean(axis=0) + decay * w
        w -= 0.5 * grad
    return w


def trak_scores(
    x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, args: argparse.Namespace
) -> np.ndarray:
    """TRAK for logistic regression, ``(N, Z)``: effect of including item i on margin t."""
    rng = np.random.default_rng(args.seed + 1)
    xb = np.hstack([x_tr, np.ones((len(x_tr), 1))])
    xt = np.hstack([x_te, np.ones((len(x_te), 1))])
    kernel = xb.T @ xb  # margin gradients y_i x_i: Phi^T Phi = X^T X
    ridge = args.damping * np.trace(kernel) / len(kernel)
    target = (y_te[:, None] * xt) @ np.linalg.inv(kernel + ridge * np.eye(len(kernel)))  # (Z, P)
    tau = np.zeros((len(x_te), len(x_tr)))
    for _ in range(args.ensemble):
        half = rng.random(len(x_tr)) < 0.5
        w = train_logreg(x_tr[half], y_tr[half], l2=0.01)
        q = 1.0 / (1.0 + np.exp(y_tr * (xb @ w)))  # Q_i = 1 - p_i = sigmoid(-margin_i)
        tau += target @ (xb * (y_tr * q)[:, None]).T
    return np.ascontiguousarray((tau / args.ensemble).T)


# --------------------------------------------------------------- pacda
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = make_data(out, args.seed)
    scores = trak_scores(x_tr, y_tr, x_te, y_te, args)
    np.save(out / "trak_scores.npy", scores)
    (out / "task.toml").write_text(TASK)
    print(f"elsewhere: TRAK scores {scores.shape} of {args.ensemble} models -> trak_scores.npy")

    imported = out / "trak.npz"
    done = _run(
        [_tool("pacda-prover"), "import-scores", "--task", str(out / "task.toml"),
         "--in", str(out / "trak_scores.npy"), "--layout", "NZ", "--encoding", "mask",
         "--calibrate", str(args.calibrate), "--tool", "trak", "--seed", str(args.seed),
         "--out", str(imported), "--force"]
    )  # fmt: skip
    if done.returncode != 0:
        return 1
    key = out / "verifier"
    if not (out / "verifier.key").exists():
        subprocess.run([_tool("pacda-verifier"), "keygen", "--out", str(key)], check=True)
    serve = subprocess.Popen(
        [_tool("pacda-prover"), "serve", "--task", str(out / "task.toml"), "--scores",
         str(imported), "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    report = out / "report.json"
    try:
        line = serve.stdout.readline() if serve.stdout else ""
        if not line.startswith("listening on "):
            print(f"the Prover did not start: {line!r}", file=sys.stderr)
            return 1
        address = line.split()[-1]
        code = subprocess.run(
            [_tool("pacda-verifier"), "audit", "--prover", address, "--task",
             str(out / "task.toml"), "--epsilon-relative", f"{args.epsilon_fraction:g}",
             "--delta", str(args.delta), "--key", f"{key}.key", "--report", str(report),
             "--force", "--yes"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False,
        ).returncode  # fmt: skip
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        if serve.stdout is not None:
            serve.stdout.close()
    if code not in (0, 1):
        return 1
    body = json.loads(report.read_text())
    body = body.get("report", body)
    provenance = body.get("scores_provenance")
    print(f"\nverdict: {'ACCEPT' if code == 0 else 'ABORT'}; signed report: {report}")
    if provenance and provenance.get("calibration"):
        cal = provenance["calibration"]
        print(
            f"the report records: method {provenance['method']}, calibrated by "
            f"{cal['source']} on {cal['samples']} retrainings (seed {cal['seed']}): "
            f"{cal['fitted']}"
        )
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
