"""``ablation``: component attribution over the hidden units of one trained MLP.

One base network (the ``mlp`` recipe of :mod:`prover.tasks.mlp`, float64, CPU)
is trained once on all N_train digits with training seed ``task.train.seed``
and cached per process, keyed by the spec and data.  The "items" are its H
hidden units: for a pm vector x in {-1,+1}^H, unit i stays active iff
x_i = +1, and

    f(x)_z = margin_z( (relu(u_z W1 + b1) * m) W2 + b2 ),   m = (x + 1)/2,

the correct-class margin on test image z with the other units zeroed.  Only
forward passes: a batch of n masks costs one ``(n, Z, H) x (H, C)`` product.
The training seed r is unused (the base network is fixed), and nothing is
trained per evaluation, so ``weights`` is ``None``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.canonical_json import sha256_digest
from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec
from prover.tasks.base import TrainedBatch
from prover.tasks.common import SpecTask, check_batch_inputs
from prover.tasks.datasets import Dataset, load_digits_split
from prover.tasks.mlp import MlpParams, train_mlp
from prover.tasks.specs import AblationSpec
from prover.tasks.torch_utils import classifier_margins, resolve_device

__all__ = ["AblationTask", "base_network"]

_BASE_CACHE: dict[str, MlpParams] = {}


def base_network(spec: AblationSpec, data: Dataset) -> MlpParams:
    """The fixed base network of an ablation spec (trained once per process)."""
    key = sha256_digest({"spec": spec.to_dict(), "dataset": data.digest})
    if key not in _BASE_CACHE:
        n = len(data.x_train)
        x_all = np.ones((1, n), dtype=np.int8)
        seed = np.array([spec.train.seed], dtype=np.uint64)
        cpu = torch.device("cpu")
        with torch.no_grad():
            _BASE_CACHE[key] = train_mlp(
                x_all, seed, data, spec.model.hidden, spec.train, torch.float64, cpu
            )
    return _BASE_CACHE[key]


class AblationTask(SpecTask[AblationSpec]):
    """Hidden-unit ablations of a fixed digits MLP; see the module docstring."""

    spec_class: ClassVar[type[TaskSpec] | None] = AblationSpec
    device_types: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, spec: AblationSpec, data: Dataset) -> None:
        params = base_network(spec, data)
        # The digest covers the spec (which pins the base network's recipe and seed)
        # and the raw data, not the trained base weights: those are reproducible
        # only within tolerance across hardware, and a digest must be exact.
        super().__init__(spec, data.digest)
        u_test = torch.as_tensor(data.x_test, dtype=torch.float64)
        hidden = torch.matmul(u_test, params.w1[0]).add_(params.b1[0]).clamp_min_(0.0)
        self._hidden = hidden  # (Z, H) activations of the test images
        self._w2 = params.w2[0]  # (H, C)
        self._b2 = params.b2[0]  # (C,)
        self._labels = torch.as_tensor(data.y_test, dtype=torch.int64)

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        if not isinstance(spec, AblationSpec):
            raise InvalidArgument(f"expected an AblationSpec, got {type(spec).__name__}")
        data = load_digits_split(
            n_train=spec.data.n_train, n_test=spec.n_outputs, split_seed=spec.data.split_seed
        )
        return cls(spec, data)

    @property
    def n_items(self) -> int:
        return self.spec.model.hidden

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        return self.train_batch_on(x, seeds, device="cpu")

    def train_batch_on(
        self, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, device: str
    ) -> TrainedBatch:
        """Margins with the masked-out hidden units zeroed; seeds checked but unused."""
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        dev = resolve_device(device)
        mask = torch.as_tensor(x > 0, device=dev).to(torch.float64)  # (n, H)
        hidden = self._hidden.to(dev)
        kept = hidden.unsqueeze(0) * mask.unsqueeze(1)  # (n, Z, H)
        logits = torch.matmul(kept, self._w2.to(dev)).add_(self._b2.to(dev))  # (n, Z, C)
        margins = classifier_margins(logits, self._labels.to(dev))
        margins = margins.clamp_(-self.bound, self.bound)
        return TrainedBatch(outputs=margins.to("cpu").numpy(), weights=None)
