"""SIGKILL a real Prover process mid-run, restart it: nothing committed is lost or retrained.

The module doubles as the Prover script: ``python test_store_kill.py STORE LOG N CHUNK DELAY``
trains N planted-spectrum runs into STORE in chunks of CHUNK, appending the
result key of every run it trains to LOG *before* training it (so LOG is a
superset of what the process trained), sleeping DELAY seconds per chunk, and
prints ``{"n_trained": ..., "n_from_store": ...}`` when done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.canonical_json import sha256_digest
from protocol.synthetic import PlantedSpectrum, SyntheticFunction
from prover.executors import run
from prover.store import ResultStore, result_keys
from prover.tasks.base import Task, TrainedBatch

N_ITEMS = 24
TOTAL = 600
CHUNK = 20
DEADLINE_S = 60.0


class LoggedPlanted(Task):
    """Planted-spectrum task that logs every run it is asked to train."""

    def __init__(self, log: Path | None = None, delay: float = 0.0) -> None:
        self.fn = SyntheticFunction.from_spec(
            PlantedSpectrum(
                n_items=N_ITEMS,
                p=0.5,
                degree_weights=(0.0, 1.0, 0.5),
                terms_per_degree=(0, 6, 4),
                noise=0.2,
                n_outputs=2,
                structure_seed=11,
            )
        )
        self.log, self.delay = log, delay

    digest = property(lambda self: sha256_digest({"kind": "test-kill", "n": N_ITEMS}))
    n_items = property(lambda self: N_ITEMS)
    n_outputs = property(lambda self: 2)
    bound = property(lambda self: self.fn.bound)
    output_tolerance = property(lambda self: 0.0)
    weight_tolerance = property(lambda self: 0.0)

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        if self.log is not None:
            lines = "".join(bytes(k).hex() + "\n" for k in result_keys(x, seeds))
            with open(self.log, "a", encoding="ascii") as fh:
                fh.write(lines)
        time.sleep(self.delay)
        return TrainedBatch(outputs=self.fn.evaluate(x, seeds), weights=None)


def _inputs() -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    rng = np.random.default_rng(np.random.SeedSequence(2024))
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(TOTAL, N_ITEMS))
    return x, rng.integers(0, 2**64, size=TOTAL, dtype=np.uint64)


def _prover_main(store: str, log: str, n: str, chunk: str, delay: str) -> None:
    task = LoggedPlanted(Path(log), float(delay))
    x, seeds = _inputs()
    with ResultStore.open_for_task(store, task) as st:
        res = run(task, x[: int(n)], seeds[: int(n)], store=st, chunk_size=int(chunk))
    print(json.dumps({"n_trained": res.n_trained, "n_from_store": res.n_from_store}))


# ------------------------------------------------------------------ the test
def _start(store: Path, log: Path, delay: float) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, str(store), str(log), str(TOTAL), str(CHUNK), str(delay)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored_keys(store: Path) -> set[str]:
    task = LoggedPlanted()
    with ResultStore.open_for_task(store, task, mode="r") as st:
        x, seeds = _inputs()
        found = st.contains_keys(result_keys(x, seeds))
        keys = {bytes(k).hex() for k in result_keys(x[found], seeds[found])}
        if len(keys) != len(st):
            raise AssertionError(f"store holds {len(st)} results, {len(keys)} of them ours")
        return keys


def _logged(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _wait_then_kill(proc: subprocess.Popen[str], store: Path, at_least: int) -> None:
    """Poll the store on disk until it holds ``at_least`` results, then SIGKILL."""
    deadline = time.monotonic() + DEADLINE_S
    reader: ResultStore | None = None
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"prover exited early ({proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"store never reached {at_least} results")
        if reader is None and (store / "store.json").exists():
            reader = ResultStore.open_for_task(store, LoggedPlanted(), mode="r")
        if reader is not None:
            reader.refresh()
            if len(reader) >= at_least:
                break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"prover was not killed mid-run (exit {proc.returncode})")


def test_sigkill_then_restart_loses_nothing_and_trains_nothing_twice(tmp_path: Path) -> None:
    store = tmp_path / "store"
    committed: set[str] = set()
    # Round 1 is killed while training (slow chunks); rounds 2-3 run flat out, so
    # the kill often lands inside a segment write; each must resume cleanly.
    for round_, (delay, grow) in enumerate([(0.05, 100), (0.0, 60), (0.0, 60)]):
        log = tmp_path / f"trained-{round_}.log"
        proc = _start(store, log, delay)
        _wait_then_kill(proc, store, len(committed) + grow)
        now = _stored_keys(store)
        trained = _logged(log)
        assert len(trained) == len(set(trained)), "a run was trained twice within one process"
        assert committed <= now, "a committed result was lost"
        assert not committed & set(trained), "a committed result was trained again"
        assert now - committed <= set(trained), "the store holds a result nobody trained"
        # at most the chunk in flight at the kill was trained but not committed
        assert len(set(trained) - now) <= CHUNK
        assert len(now) < TOTAL, "the run finished before it was killed; slow it down"
        committed = now

    log = tmp_path / "trained-final.log"
    proc = _start(store, log, 0.0)
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report == {"n_trained": TOTAL - len(committed), "n_from_store": len(committed)}
    trained = set(_logged(log))
    assert len(trained) == TOTAL - len(committed) and not trained & committed
    final = _stored_keys(store)
    assert len(final) == TOTAL
    task = LoggedPlanted()
    x, seeds = _inputs()
    with ResultStore.open_for_task(store, task, mode="r") as st:
        # The stored outputs were computed in the killed subprocesses, the reference here:
        # the planted mean is a BLAS product of at most 10 characters (each +-1) with
        # coefficients of total weight 1.5, so any reduction order rounds it within
        # 10 * 2**-53 * 1.5 ~ 2e-15 (the noise is integer hashing, exact); 1e-12 is that
        # bound with ample margin, and a wrong or shuffled result is off by O(0.1).
        np.testing.assert_allclose(
            st.lookup(x, seeds).outputs, task.fn.evaluate(x, seeds), rtol=0, atol=1e-12
        )


if __name__ == "__main__":
    _prover_main(*sys.argv[1:])
