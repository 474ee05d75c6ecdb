"""Drive a training run: consult the store, train what is missing, write as it goes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover.executors.base import Chunk, Executor, TaskSource, resolve_task
from prover.executors.inprocess import InProcessExecutor
from prover.progress import Progress
from prover.store.keys import DIGEST_BYTES, check_seeds, check_subsets, result_keys
from prover.store.result_store import ResultStore
from prover.tasks.base import TrainedBatch

__all__ = ["RunResult", "run"]


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """Results of :func:`run` for ``n`` requested runs, in input order.

    Attributes:
        outputs: float64 ``(n, Z)``.
        weight_digests: uint8 ``(n, 32)``.
        weights: float64 ``(n, P)`` when requested (``with_weights=True``) and the
            task has weights; else None.
        n_trained: distinct models trained by this call.
        n_from_store: distinct models found in the store.
    """

    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]
    weights: NDArray[np.float64] | None
    n_trained: int
    n_from_store: int

    def to_batch(self) -> TrainedBatch:
        """The results as a :class:`TrainedBatch`."""
        return TrainedBatch(outputs=self.outputs, weights=self.weights)


def run(
    source: TaskSource,
    x: NDArray[np.integer],
    seeds: NDArray[np.integer],
    *,
    store: ResultStore | None = None,
    executor: Executor | None = None,
    chunk_size: int = 256,
    progress: bool | None = None,
    with_weights: bool = False,
) -> RunResult:
    """Outputs of ``f(x_j; r_j)`` for every row, training only what is missing.

    Each distinct (subset, seed) is trained at most once: runs found in
    ``store`` are read back, repeats within the request are trained once, and
    every finished chunk is committed to ``store`` before it counts as done, so
    an interrupted call loses at most the chunks in flight.

    Args:
        source: the task, or a picklable factory of it (see ``TaskSource``).
        x: pm-encoded subsets, ``(n, N)``.
        seeds: training seeds, uint64 ``(n,)``.
        store: a writable result store of this task, or None.
        executor: where to train (default: in this process).
        chunk_size: models per training chunk (and per store segment).
        progress: progress bar on (True), off (False) or only on a terminal (None).
        with_weights: also return full weights (read back from the store for
            stored runs, which requires a store that keeps weights).

    Raises:
        InvalidArgument: bad shapes, chunk size, or a store of another task.
        ProverError: a read-only store, or stored runs without stored weights
            when ``with_weights`` is set.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgument(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    task = resolve_task(source)
    xs = check_subsets(x, task.n_items)
    ss = check_seeds(seeds, xs.shape[0])
    if store is not None:
        _check_store(store, task.digest, task.n_items, task.n_outputs)
    keys = result_keys(xs, ss)
    first, inverse = _distinct(keys)
    found = store.contains_keys(keys[first]) if store is not None else np.zeros(len(first), bool)
    n_distinct = len(first)
    outputs = np.full((n_distinct, task.n_outputs), np.nan)
    digests = np.zeros((n_distinct, DIGEST_BYTES), dtype=np.uint8)
    weights: NDArray[np.float64] | None = None
    have_weights = True  # False once a chunk shows the task has no weights
    if store is not None and found.any():
        rows = first[found]
        hit = store.lookup(xs[rows], ss[rows], keys=keys[rows])
        outputs[found] = hit.outputs
        digests[found] = hit.weight_digests
        if with_weights:
            stored = store.weights(xs[rows], ss[rows], keys=keys[rows])
            if stored is None:
                have_weights = False
            else:
                weights = np.full((n_distinct, stored.shape[1]), np.nan)
                weights[found] = stored
    todo = np.flatnonzero(~found)
    parts = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    keep = with_weights or (store is not None and store.config.store_weights)
    exe = executor if executor is not None else InProcessExecutor()

    def chunks() -> Iterator[Chunk]:
        for part in parts:
            rows = first[part]
            yield xs[rows], ss[rows]

    with Progress(total=n_distinct, initial=int(found.sum()), enabled=progress) as bar:
        for ci, res in exe.map_chunks(source, task, chunks(), keep_weights=keep):
            part = parts[ci]
            rows = first[part]
            if store is not None:
                batch = TrainedBatch(outputs=res.outputs, weights=res.weights)
                store.write(xs[rows], ss[rows], batch, keys=keys[rows], digests=res.weight_digests)
            outputs[part] = res.outputs
            digests[part] = res.weight_digests
            if with_weights:
                if res.weights is None:
                    have_weights = False
                else:
                    if weights is None:
                        weights = np.full((n_distinct, res.weights.shape[1]), np.nan)
                    weights[part] = res.weights
            bar.update(len(part))
    return RunResult(
        outputs=outputs[inverse],
        weight_digests=digests[inverse],
        weights=weights[inverse]
        if (with_weights and have_weights and weights is not None)
        else None,
        n_trained=len(todo),
        n_from_store=int(found.sum()),
    )


def _check_store(store: ResultStore, digest: str, n_items: int, n_outputs: int) -> None:
    cfg = store.config
    if (cfg.task_digest, cfg.n_items, cfg.n_outputs) != (digest, n_items, n_outputs):
        raise InvalidArgument(
            f"result store {store.path} holds task {cfg.task_digest} "
            f"(N={cfg.n_items}, Z={cfg.n_outputs}), not {digest} (N={n_items}, Z={n_outputs})"
        )
    if not store.writable:
        raise ProverError(f"result store {store.path} is open read-only; open it with mode='a'")


def _distinct(keys: NDArray[np.uint8]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """First row of each distinct key, and each row's distinct index (input order)."""
    index: dict[bytes, int] = {}
    inverse = np.empty(len(keys), dtype=np.intp)
    first: list[int] = []
    for i, k in enumerate(keys):
        b = k.tobytes()
        j = index.get(b)
        if j is None:
            j = index[b] = len(first)
            first.append(i)
        inverse[i] = j
    return np.array(first, dtype=np.intp), inverse
