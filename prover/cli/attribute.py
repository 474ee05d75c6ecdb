"""``pacda-prover attribute``: train on B_p subsets, fit scores, self-check, write them.

Example::

    pacda-prover attribute --task examples/tasks/logreg.toml --method datamodel \\
        --samples 20000 --out scores.npz --store runs/logreg

Everything is validated before any model is trained: the output path (an
existing file is never replaced without ``--force``), the method, the task
file, the budget (``--samples`` against N) and ``--device`` (``cuda`` on a
machine without a GPU is a usage error naming the missing device).  Stage lines go to stderr, the
quality summary (the self-check table) to stdout.  Ctrl-C ends it with one
line on stderr and exit status 130 (models already in ``--store`` are kept).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from protocol.digests import attribution_digest
from protocol.errors import InvalidArgument
from protocol.scores import save_scores
from prover.attribution import (
    AttributionConfig,
    AttributionResult,
    attribute,
    check_method,
    method_names,
)
from prover.cli._devices import add_device_argument, make_executor
from prover.cli._interrupt import EXIT_INTERRUPTED, Interrupt, bounded
from prover.cli._selfcheck_text import budget_hint, print_self_check
from prover.executors import Executor
from prover.store import ResultStore
from prover.tasks.base import Task
from prover.tasks.device import parse_device
from prover.tasks.registry import load_task

__all__ = ["HELP", "add_arguments", "run"]

HELP = "compute attribution scores (datamodel, empirical influence, influence functions)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``attribute``."""
    parser.epilog = (
        "exit codes: 0 success, 1 failure of the job, 2 usage error (checked before any "
        "training), 130 interrupted (Ctrl-C; models already in --store are kept)"
    )
    parser.add_argument("--task", required=True, type=Path, help="task file (TOML)")
    parser.add_argument("--method", required=True, help=f"one of: {', '.join(method_names())}")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="M",
        help="retrainings on B_p subsets for the fit (datamodel needs M >= N + 2; "
        "unused by influence-function)",
    )
    parser.add_argument("--out", required=True, type=Path, help="scores file to write (.npz)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="result store directory: models already there are not trained again; "
        "'pacda-prover serve --store DIR' reuses it",
    )
    parser.add_argument(
        "--store-weights",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep every trained model's weights in a new --store, which serve needs to "
        "open spot checks from it (default: on; --no-store-weights keeps only their "
        "digests, and serve then refuses the store); an existing store keeps its setting",
    )
    parser.add_argument("--executor", choices=("inprocess", "ray"), default="inprocess")
    parser.add_argument("--ray-address", default=None, help="Ray address (with --executor ray)")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed of every random draw")
    parser.add_argument(
        "--check-samples",
        type=int,
        default=None,
        metavar="K",
        help="held-out retrainings for the self-check (default max(400, M/4); 0 skips it)",
    )
    parser.add_argument("--regularization", choices=("ridge", "lasso"), default="ridge")
    parser.add_argument("--delta", type=float, default=0.05, help="failure probability")
    parser.add_argument("--planning", choices=("practical", "rigorous"), default="practical")
    parser.add_argument("--damping", type=float, default=None, help="influence-function damping")
    parser.add_argument("--chunk-size", type=int, default=512, help="models per training chunk")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="training progress bar (default: only on a terminal)",
    )


def _config(args: argparse.Namespace) -> AttributionConfig:
    method = check_method(args.method)
    samples = args.samples
    if samples is None:
        if method != "influence-function":
            raise InvalidArgument(f"--samples M is required for method {method!r}")
        samples = 0
    check = args.check_samples if args.check_samples is not None else max(400, samples // 4)
    return AttributionConfig(
        method=method,
        samples=samples,
        check_samples=check,
        seed=args.seed,
        regularization=args.regularization,
        delta=args.delta,
        planning=args.planning,
        damping=args.damping,
        chunk_size=args.chunk_size,
    )


def _check_out(out: Path, force: bool) -> Path:
    if out.suffix != ".npz":
        raise InvalidArgument(f"--out must name a .npz file, got {str(out)!r}")
    if out.exists() and not force:
        raise InvalidArgument(f"{out} already exists; refusing to overwrite it (use --force)")
    if not out.parent.is_dir():
        raise InvalidArgument(f"cannot write {out}: directory {out.parent} does not exist")
    return out


def _log(msg: str) -> None:
    print(f"[attribute] {msg}", file=sys.stderr, flush=True)


def _open_store(path: Path, task: Task, store_weights: bool) -> ResultStore:
    """The result store at ``path``: an existing one in its own setting, a new one as asked."""
    if ResultStore.exists(path):
        store_weights = ResultStore.read_config(path).store_weights
    store = ResultStore.open_for_task(path, task, mode="a", store_weights=store_weights)
    kept = "results and weights" if store_weights else "results (weight digests only)"
    _log(f"result store {path}: {len(store)} {kept} already stored")
    if not store_weights:
        _log(f"result store {path} keeps no weights: 'serve --store' cannot reuse it")
    return store


def run(args: argparse.Namespace) -> int:
    """Run the command; see the module docstring.  Ctrl-C: one line, exit 130.

    The exit is bounded (:mod:`prover.cli._interrupt`): if closing the store or
    the executor hangs after Ctrl-C, the process still ends within seconds.
    """
    kept = (
        f"; models trained so far are kept in --store {args.store} (rerun to resume)"
        if args.store is not None
        else "; nothing was written (use --store DIR to keep trained models)"
    )
    interrupt = Interrupt(f"pacda-prover attribute: interrupted{kept}")
    with bounded(interrupt):
        try:
            return _run(args)
        except KeyboardInterrupt:
            interrupt.say()
            return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    out = _check_out(args.out, args.force)
    config = _config(args)
    parse_device(args.device)
    if args.ray_address is not None and args.executor != "ray":
        raise InvalidArgument("--ray-address needs --executor ray")
    task = load_task(args.task)
    config.check_budget(task.n_items)
    _log(f"task {args.task} ({task.digest}): N={task.n_items}, Z={task.n_outputs}")
    executor: Executor | None = None
    store = None
    try:
        executor, device = make_executor(
            args.executor, device=args.device, task=task, ray_address=args.ray_address
        )
        _log(f"training on {device.description} (device class {device.device_class})")
        if args.store is not None:
            store = _open_store(args.store, task, args.store_weights)
        source = task
        if args.executor == "ray":
            source = functools.partial(load_task, args.task.resolve())  # type: ignore[assignment]
        result = attribute(
            task,
            config,
            source=source,
            base_dir=args.task.resolve().parent,
            store=store,
            executor=executor,
            progress=args.progress,
            log=_log,
        )
    finally:
        if store is not None:
            store.close()
        if executor is not None:
            executor.close()
    path = save_scores(out, result.scores, overwrite=args.force)
    _summary(result, path)
    hint = budget_hint(result.check, samples=config.samples, method=result.scores.method)
    if hint:
        print(hint)
    return 0


def _summary(result: AttributionResult, path: Path) -> None:
    s = result.scores
    print(f"method             {s.method}")
    print(f"scores             {path}  (Z={s.n_outputs}, N={s.n_items}, encoding={s.encoding})")
    # The digest the Prover commits to and the audit report records as attribution_digest.
    print(f"attribution digest {attribution_digest(s.theta0, s.theta)}")
    print(f"task digest        {s.task_digest}")
    print(f"models             {result.n_trained} trained, {result.n_from_store} from the store")
    print("seconds            " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print_self_check(result.check)
