"""``wine-mlp``: a 13 -> hidden -> 3 tanh MLP on scikit-learn's wine data, margins on Z wines."""

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import torch
from sklearn.datasets import load_wine

from protocol.taskspec import POSITIVE, TaskSpec, array_digest, spec_field
from prover.tasks.torch_task import Data, Params, SgdRecipe, TorchTask
from prover.tasks.torch_utils import classifier_margins


@dataclass(frozen=True, kw_only=True)
class WineSpec(TaskSpec):
    kind_name: ClassVar[str | None] = "wine-mlp"
    kind: str = spec_field(default="wine-mlp")
    bound: float = spec_field(default=20.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=1e-9)
    weight_tolerance: float = spec_field(default=1e-9)
    n_outputs: int = spec_field(default=4, check=POSITIVE)
    n_train: int = spec_field(default=80, check=POSITIVE)  # n_train + n_outputs <= 178
    hidden: int = spec_field(default=8, check=POSITIVE)
    steps: int = spec_field(default=40, check=POSITIVE)
    lr: float = spec_field(default=0.1, check=POSITIVE)


class WineTask(TorchTask[WineSpec]):
    spec_class: ClassVar[type[TaskSpec] | None] = WineSpec
    stream_label: ClassVar[str] = "byom.wine"

    def __init__(self, spec: WineSpec) -> None:
        x, y = load_wine(return_X_y=True)  # 178 x 13, shipped with scikit-learn
        perm = np.random.default_rng(0).permutation(len(x))
        tr, te = perm[: spec.n_train], perm[spec.n_train : spec.n_train + spec.n_outputs]
        mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
        data = {"train_inputs": (x[tr] - mean) / std, "train_targets": y[tr]}
        data |= {"test_inputs": (x[te] - mean) / std, "test_targets": y[te]}
        super().__init__(spec, array_digest({"x": x[perm], "y": y[perm]}), data)

    @classmethod
    def from_spec(cls, spec: Any, *, base_dir: Any = None) -> Self:
        return cls(spec)

    def build_module(self) -> torch.nn.Module:
        h = self.spec.hidden
        return torch.nn.Sequential(torch.nn.Linear(13, h), torch.nn.Tanh(), torch.nn.Linear(h, 3))

    def item_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(prediction, target, reduction="none")

    def measure(self, params: Params, data: Data) -> torch.Tensor:
        return classifier_margins(self.forward(params, data["test_inputs"]), data["test_targets"])

    @property
    def recipe(self) -> SgdRecipe:
        return SgdRecipe(steps=self.spec.steps, batch_size=16, learning_rate=self.spec.lr)
