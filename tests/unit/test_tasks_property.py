"""Property: results do not depend on how models are grouped into batches and chunks."""

from __future__ import annotations

from functools import cache

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from protocol.hypercube import sample_bp
from prover.engine import train
from prover.tasks import Task, build_task
from prover.tasks.specs import DigitsData, LogregSpec, LogregTrain, MlpModel, MlpSpec, MlpTrain


@cache
def tiny(kind: str) -> Task:
    if kind == "logreg":
        return build_task(LogregSpec(train=LogregTrain(steps=8)))
    return build_task(
        MlpSpec(
            n_outputs=4,
            data=DigitsData(n_train=100),
            model=MlpModel(hidden=8),
            train=MlpTrain(steps=6, batch_size=8),
        )
    )


@given(
    kind=st.sampled_from(["logreg", "mlp"]),
    n=st.integers(1, 9),
    chunk=st.integers(1, 10),
    p=st.sampled_from([0.1, 0.5, 0.9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_grouping_never_changes_a_result(
    kind: str, n: int, chunk: int, p: float, seed: int
) -> None:
    task = tiny(kind)
    rng = np.random.default_rng(seed)
    x = sample_bp(rng, n, task.n_items, p)
    seeds = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    grouped = train(task, x, seeds, chunk_size=chunk)
    for i in (0, n - 1):
        alone = task.train_batch(x[i : i + 1], seeds[i : i + 1])
        np.testing.assert_allclose(
            alone.outputs[0], grouped.outputs[i], rtol=0, atol=task.output_tolerance
        )
        assert alone.weights is not None and grouped.weights is not None
        np.testing.assert_allclose(
            alone.weights[0], grouped.weights[i], rtol=0, atol=task.weight_tolerance
        )
