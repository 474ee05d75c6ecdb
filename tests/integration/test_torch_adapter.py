"""The torch adapter: every task with a torch model hands it to libraries, index-aligned.

For ``logreg``, ``mlp``, ``cnn`` and a ``TorchTask`` plugin (with and without
``measure_items``): the adapter's module measures exactly the outputs the
task's own training reports for the same model (before clipping), its
per-item losses and regulariser are the task's differentiable objective's,
item j of the training set is item j, and a model built from other weights
measures that model's outputs.  Tasks without a model are refused by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from prover.tasks.torch_adapter import torch_adapter
from prover.tasks.torch_utils import classifier_margins
from tests.unit.test_tasks_torch import TinySpec, TinyTask

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tasks"


class TinyMeasured(TinyTask):
    """The plugin of ``test_tasks_torch`` with per-item measurement (the adapter's hook)."""

    spec_class: ClassVar[type[TaskSpec] | None] = TinySpec

    def measure_items(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classifier_margins(prediction, target)


def _tasks() -> dict[str, Task]:
    return {
        "logreg": load_task(EXAMPLES / "logreg.toml"),
        "mlp": load_task(EXAMPLES / "mlp.toml"),
        "cnn": load_task(EXAMPLES / "cnn.toml"),
        "torch-task plugin": TinyMeasured(TinySpec()),
    }


TASKS = _tasks()


@pytest.mark.parametrize("name", list(TASKS))
def test_the_module_measures_what_the_task_trains(name: str) -> None:
    task = TASKS[name]
    rng = np.random.default_rng(5)
    x = np.where(rng.random((3, task.n_items)) < task.p, 1, -1).astype(np.int8)
    x[0] = 1  # the full-data model among them
    batch = task.train_batch(x, np.arange(3, dtype=np.uint64))
    assert batch.weights is not None
    adapter = torch_adapter(task, weights=batch.weights[0])
    assert len(adapter.train_set) == task.n_items and len(adapter.query_set) == task.n_outputs
    clip = task.bound
    for row in range(3):
        model = adapter.model_with(batch.weights[row])
        out = np.clip(adapter.outputs(model), -clip, clip)
        np.testing.assert_allclose(out, batch.outputs[row], rtol=1e-9, atol=1e-9)
    # default: trains the full-data model itself (seed 0)
    np.testing.assert_allclose(
        torch_adapter(task, seed=0).weights, batch.weights[0], rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("name", list(TASKS))
def test_losses_and_regularizer_are_the_training_objective(name: str) -> None:
    task = TASKS[name]
    adapter = torch_adapter(task)
    model = task.differentiable()
    assert model is not None
    w = torch.as_tensor(adapter.weights)
    with torch.no_grad():
        own = model.item_losses(w).numpy()
        reg = float(model.regularizer(w))
        losses = adapter.item_loss(adapter.model, adapter.train_set.tensors).numpy()  # type: ignore[arg-type]
        np.testing.assert_allclose(losses, own, rtol=1e-9, atol=1e-12)
        assert float(adapter.regularizer(adapter.model)) == pytest.approx(reg, rel=1e-9, abs=1e-15)
        # item j is item j: each item's loss alone
        j = task.n_items // 2
        alone = adapter.item_loss(adapter.model, adapter.train_set[j : j + 1])
        assert float(alone[0]) == pytest.approx(own[j], rel=1e-9, abs=1e-15)


def test_float32_adapter_is_the_same_model_in_single_precision() -> None:
    task = TASKS["mlp"]
    a64, a32 = torch_adapter(task), torch_adapter(task, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in a32.model.parameters())
    assert a32.train_set.tensors[0].dtype == torch.float32
    np.testing.assert_allclose(a32.outputs(), a64.outputs(), rtol=1e-4, atol=1e-4)


def test_tasks_without_a_torch_model_are_refused() -> None:
    synthetic = load_task(EXAMPLES / "synthetic.toml")
    with pytest.raises(InvalidArgument, match="no torch model"):
        torch_adapter(synthetic)
    with pytest.raises(InvalidArgument, match="no torch model"):
        torch_adapter(TinyTask(TinySpec()))  # a TorchTask without measure_items
    with pytest.raises(InvalidArgument, match="weights must have"):
        torch_adapter(TASKS["logreg"], weights=np.zeros(5))
    with pytest.raises(InvalidArgument, match="dtype"):
        torch_adapter(TASKS["logreg"], dtype=torch.float16)
