"""One attribution run: look the method up, fit, self-check, package.

:func:`attribute` is what ``pacda-prover attribute`` calls.  The method comes
from the registry (:mod:`prover.attribution.registry`) by the config's name;
it fits through a :class:`~prover.attribution.method.FitContext` and returns a
:class:`~prover.attribution.method.MethodFit`, which this module turns into
:class:`~protocol.scores.Scores`.  Training goes through
:func:`prover.executors.run`, so it is resumable through a result store and
runs in-process or on Ray; subsets and seeds come from
:class:`~prover.attribution.sampling.Streams` of the config's root seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional, chebyshev_functional
from protocol.hypercube import rho_max
from protocol.scores import Scores
from protocol.taskspec import pacda_version
from prover.attribution.config import AttributionConfig
from prover.attribution.method import FitContext
from prover.attribution.registry import get_method
from prover.attribution.sampling import Streams, draw_check_pairs
from prover.attribution.selfcheck import SelfCheck, run_self_check
from prover.executors import Executor, TaskSource, run
from prover.store import ResultStore
from prover.tasks.base import Task

__all__ = ["AttributionResult", "attribute", "check_functional"]

Log = Callable[[str], object]


@dataclass(frozen=True, kw_only=True)
class AttributionResult:
    """Scores, their self-check and what the run cost.

    Attributes:
        scores: the scores (with ``meta`` holding config, fit details, self-check).
        check: the self-check, or None when ``check_samples == 0``.
        n_trained: models trained by this run; n_from_store: models read back.
        seconds: wall time per stage.
    """

    scores: Scores
    check: SelfCheck | None
    n_trained: int
    n_from_store: int
    seconds: dict[str, float] = field(default_factory=dict)


def check_functional(config: AttributionConfig, p: float) -> NodeFunctional:
    """The self-check's Chebyshev functional: degree D on ``[-min(r, rho_max(p)), r]``."""
    r = config.check_radius
    return chebyshev_functional(r, config.check_degree, lower=-min(r, rho_max(p)))


def _train(
    source: TaskSource,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    config: AttributionConfig,
    store: ResultStore | None,
    executor: Executor | None,
    progress: bool | None,
    counts: list[int],
) -> NDArray[np.float64]:
    res = run(
        source,
        x,
        seeds,
        store=store,
        executor=executor,
        chunk_size=config.chunk_size,
        progress=progress,
    )
    counts[0] += res.n_trained
    counts[1] += res.n_from_store
    return res.outputs


def attribute(
    task: Task,
    config: AttributionConfig,
    *,
    source: TaskSource | None = None,
    base_dir: Path | None = None,
    store: ResultStore | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    log: Log | None = None,
) -> AttributionResult:
    """Compute scores with ``config.method`` and self-check them on held-out retrainings.

    Args:
        task: the task.
        config: method, budget, seed, self-check settings.
        source: what executors ship to workers (default ``task``; give a
            picklable factory such as ``functools.partial(load_task, path)`` for Ray).
        base_dir: the task file's directory (given to the method in its FitContext).
        store: result store of this task (resumable training), or None.
        executor: where to train (default in-process).
        progress: training progress bars (None: only on a terminal).
        log: receives one line per stage (e.g. ``print``).

    Raises:
        InvalidArgument: unknown method, bad method options, M too small for N, a task
            the method does not support, scores of the wrong shape.
    """
    say: Log = log if log is not None else (lambda _msg: None)
    method = get_method(config.method)
    options = config.method_options()
    config.check_budget(task.n_items)
    src: TaskSource = task if source is None else source
    p = task.p
    streams = Streams(config.seed)
    counts = [0, 0]
    seconds: dict[str, float] = {}
    n_items, n_out = task.n_items, task.n_outputs

    def retrain(x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> NDArray[np.float64]:
        return _train(src, x, seeds, config, store, executor, progress, counts)

    ctx = FitContext(
        task=task,
        samples=config.samples,
        streams=streams,
        retrain=retrain,
        base_dir=base_dir,
        log=say,
        seconds=seconds,
    )
    t0 = time.perf_counter()
    fitted = method.fit(ctx, options)
    seconds["fit"] = time.perf_counter() - t0 - seconds.get("train_fit", 0.0)
    theta0, theta = fitted.theta0, fitted.theta
    expected = (n_out,), (n_out, n_items)
    if (np.shape(theta0), np.shape(theta)) != expected:
        raise InvalidArgument(
            f"method {config.method!r} returned scores of shapes {np.shape(theta0)} and "
            f"{np.shape(theta)}, expected {expected[0]} and {expected[1]}"
        )
    if not (np.all(np.isfinite(theta0)) and np.all(np.isfinite(theta))):
        raise InvalidArgument(f"method {config.method!r} produced non-finite scores")
    fit_meta: dict[str, Any] = dict(fitted.meta)

    check = None
    if config.check_samples:
        t0 = time.perf_counter()
        functional = check_functional(config, p)
        design = draw_check_pairs(streams, functional, config.check_samples // 2, n_items, p)
        xs, ss = design.points()
        say(f"self-check: training {len(xs)} held-out models ({design.n_pairs} correlated pairs)")
        outs = _train(src, xs, ss, config, store, executor, progress, counts)
        seconds["train_check"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = design.n_pairs
        check = run_self_check(
            theta0,
            theta,
            design,
            outs[:n],
            outs[n:],
            functional,
            bound=task.bound,
            tolerance=task.output_tolerance,
            p=p,
            delta=config.delta,
            planning=config.planning,
        )
        seconds["self_check"] = time.perf_counter() - t0
    meta: dict[str, Any] = {
        "config": config.to_dict(),
        "task": {
            "digest": task.digest,
            "n_items": n_items,
            "n_outputs": n_out,
            "p": p,
            "bound": task.bound,
            "output_tolerance": task.output_tolerance,
        },
        "fit": fit_meta,
        "self_check": check.to_dict() if check is not None else None,
        "pacda_version": pacda_version(),
    }
    scores = Scores(
        theta0=np.asarray(theta0, dtype=np.float64),
        theta=np.asarray(theta, dtype=np.float64),
        task_digest=task.digest,
        method=config.method,
        meta=meta,
    )
    return AttributionResult(
        scores=scores, check=check, n_trained=counts[0], n_from_store=counts[1], seconds=seconds
    )
