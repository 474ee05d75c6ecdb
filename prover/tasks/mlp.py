"""``mlp``: a one-hidden-layer ReLU network on scikit-learn's digits, seeded SGD.

Model: ``logits = relu(u W1 + b1) W2 + b2`` with ``u`` in [0, 1]^64 (pixels / 16),
``W1 (64, H)``, ``W2 (H, 10)``.  The training seed r (uint64) drives two
independent streams (:func:`~prover.tasks.torch_utils.derive_seed`):

* ``"pacda.mlp.init"``: initialisation, PyTorch's ``nn.Linear`` default
  distribution ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases,
  drawn in float64 in the order W1, b1, W2, b2 (row-major);
* ``"pacda.mlp.order"``: the minibatch order — the subset's items (ascending
  index order) are shuffled by ``torch.randperm`` once per epoch and the epochs
  concatenated; minibatch t is positions ``[tB, (t+1)B)`` of that stream (a
  minibatch may straddle two epochs).

Each of ``steps`` SGD steps minimises the mean cross-entropy over the minibatch
plus ``(weight_decay/2)(||W1||^2 + ||W2||^2)`` (biases not decayed), with
heavy-ball momentum in PyTorch's convention: ``buf <- mu buf + g;
theta <- theta - eta buf``.  An empty subset contributes no data gradient.
Gradients are written out by hand (softmax cross-entropy and ReLU backward) as
batched matrix products over an extra leading model axis, so n models train
as one computation and every model's arithmetic is independent of the others.

Outputs: correct-class margins (logit of the true class minus the largest
other logit) on Z test images, clipped to ``[-bound, bound]``.  Weights: the
flat concatenation ``W1, b1, W2, b2`` (row-major), P = 64H + H + 10H + 10.

:meth:`MlpTask.differentiable` gives the same network to gradient-based
attribution: per-image cross-entropy of :func:`forward_logits`, the weight
decay, and the margins of :func:`~prover.tasks.torch_utils.classifier_margins`,
as float64 functions of the flat weights (:meth:`MlpParams.from_flat`).  The
full-data objective is the expectation of the minibatch SGD objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec
from prover.tasks.base import DifferentiableModel, TrainedBatch
from prover.tasks.common import SpecTask, check_batch_inputs
from prover.tasks.datasets import Dataset, load_digits_split
from prover.tasks.specs import MlpSpec, MlpTrain
from prover.tasks.torch_parts import TorchParts
from prover.tasks.torch_utils import (
    classifier_margins,
    resolve_device,
    seeded_generator,
    seeded_minibatch_order,
    torch_dtype,
)

__all__ = ["MlpParams", "MlpTask", "forward_logits", "init_params", "minibatch_order", "sgd"]

N_CLASSES = 10


@dataclass(frozen=True)
class MlpParams:
    """Parameters of n networks (leading model axis).

    Attributes:
        w1: ``(n, D, H)``; b1: ``(n, H)``; w2: ``(n, H, C)``; b2: ``(n, C)``.
    """

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    def flat(self) -> torch.Tensor:
        """``(n, P)``: W1, b1, W2, b2 flattened row-major and concatenated."""
        n = self.w1.shape[0]
        return torch.cat([t.reshape(n, -1) for t in (self.w1, self.b1, self.w2, self.b2)], dim=1)

    @classmethod
    def from_flat(cls, w: torch.Tensor, n_in: int, hidden: int) -> MlpParams:
        """The inverse of :meth:`flat`: ``w (n, P)`` -> parameters of n networks."""
        shapes = [(n_in, hidden), (hidden,), (hidden, N_CLASSES), (N_CLASSES,)]
        sizes = [math.prod(shape) for shape in shapes]
        if w.ndim != 2 or w.shape[1] != sum(sizes):
            raise InvalidArgument(f"mlp weights must be (n, {sum(sizes)}), got {tuple(w.shape)}")
        parts = torch.split(w, sizes, dim=1)
        n = w.shape[0]
        return cls(*(part.reshape(n, *shape) for part, shape in zip(parts, shapes, strict=True)))


def init_params(
    seeds: NDArray[np.uint64], n_in: int, hidden: int, dtype: torch.dtype, device: torch.device
) -> MlpParams:
    """Seeded ``nn.Linear``-style initialisation of ``len(seeds)`` networks."""
    rows: list[list[torch.Tensor]] = []
    shapes = [((n_in, hidden), n_in), ((hidden,), n_in), ((hidden, N_CLASSES), hidden)]
    shapes.append(((N_CLASSES,), hidden))
    for seed in seeds:
        gen = seeded_generator(int(seed), "pacda.mlp.init")
        row = []
        for shape, fan_in in shapes:
            u = torch.rand(shape, generator=gen, dtype=torch.float64)
            row.append((2.0 * u - 1.0) / math.sqrt(fan_in))
        rows.append(row)
    stacked = [torch.stack([r[k] for r in rows]).to(device, dtype) for k in range(4)]
    return MlpParams(*stacked)


def minibatch_order(
    mask: NDArray[np.bool_], seeds: NDArray[np.uint64], steps: int, batch: int
) -> NDArray[np.int64]:
    """Training-item indices of every minibatch: int64 ``(n, steps, batch)``.

    Args:
        mask: bool ``(n, N)`` subsets in the mask encoding.
        seeds: uint64 ``(n,)`` training seeds.
    Returns:
        indices into the N training items; rows of an empty subset are all 0
        (and carry no gradient, see :func:`sgd`).
    """
    return seeded_minibatch_order(mask, seeds, steps, batch, "pacda.mlp.order")


def forward_logits(params: MlpParams, u: torch.Tensor) -> torch.Tensor:
    """Logits ``(n, Z, C)`` of n networks on shared inputs ``u (Z, D)``."""
    h = torch.matmul(u, params.w1).add_(params.b1.unsqueeze(1)).clamp_min_(0.0)
    return torch.bmm(h, params.w2).add_(params.b2.unsqueeze(1))


def sgd(
    params: MlpParams,
    u: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    active: torch.Tensor,
    cfg: MlpTrain,
) -> MlpParams:
    """Minibatch SGD with heavy-ball momentum for n networks at once.

    Args:
        params: initial parameters (not modified).
        u: training inputs ``(N, D)``.
        labels: int64 ``(N,)`` classes.
        order: int64 ``(n, steps, B)`` from :func:`minibatch_order`.
        active: ``(n,)`` 1.0 for a non-empty subset, 0.0 for an empty one.
        cfg: the ``[task.train]`` recipe.
    """
    w = [params.w1.clone(), params.b1.clone(), params.w2.clone(), params.b2.clone()]
    bufs = [torch.zeros_like(t) for t in w]
    decayed = (True, False, True, False)
    lr, mom, wd = cfg.learning_rate, cfg.momentum, cfg.weight_decay
    scale = (active / order.shape[2]).view(-1, 1, 1)  # mean over the minibatch
    for t in range(order.shape[1]):
        idx = order[:, t]  # (n, B)
        ub, yb = u[idx], labels[idx]  # (n, B, D), (n, B)
        pre = torch.baddbmm(w[1].unsqueeze(1), ub, w[0])  # (n, B, H)
        h = pre.clamp_min(0.0)
        logits = torch.baddbmm(w[3].unsqueeze(1), h, w[2])  # (n, B, C)
        d = torch.softmax(logits, dim=-1)
        d.scatter_add_(-1, yb.unsqueeze(-1), torch.full_like(d[..., :1], -1.0))
        d.mul_(scale)  # d(loss)/d(logits)
        dh = torch.bmm(d, w[2].transpose(1, 2)).mul_(pre > 0)
        grads = [
            torch.bmm(ub.transpose(1, 2), dh),
            dh.sum(dim=1),
            torch.bmm(h.transpose(1, 2), d),
            d.sum(dim=1),
        ]
        for k in range(4):
            g = grads[k].add_(w[k], alpha=wd) if decayed[k] and wd else grads[k]
            bufs[k].mul_(mom).add_(g)
            w[k].sub_(bufs[k], alpha=lr)
    return MlpParams(*w)


def train_mlp(
    x_pm: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    data: Dataset,
    hidden: int,
    cfg: MlpTrain,
    dtype: torch.dtype,
    device: torch.device,
) -> MlpParams:
    """Train one network per row of ``x_pm`` (pm subsets of the training items)."""
    mask = x_pm > 0
    order = torch.as_tensor(minibatch_order(mask, seeds, cfg.steps, cfg.batch_size), device=device)
    active = torch.as_tensor(mask.any(axis=1), dtype=dtype, device=device)
    u = torch.as_tensor(data.x_train, dtype=dtype, device=device)
    labels = torch.as_tensor(data.y_train, dtype=torch.int64, device=device)
    init = init_params(seeds, u.shape[1], hidden, dtype, device)
    return sgd(init, u, labels, order, active, cfg)


class MlpTask(SpecTask[MlpSpec]):
    """Batched seeded-SGD MLP on digits; see the module docstring."""

    spec_class: ClassVar[type[TaskSpec] | None] = MlpSpec
    device_types: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, spec: MlpSpec, data: Dataset) -> None:
        super().__init__(spec, data.digest)
        self._data = data

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        if not isinstance(spec, MlpSpec):
            raise InvalidArgument(f"expected an MlpSpec, got {type(spec).__name__}")
        data = load_digits_split(
            n_train=spec.data.n_train, n_test=spec.n_outputs, split_seed=spec.data.split_seed
        )
        return cls(spec, data)

    @property
    def n_items(self) -> int:
        return len(self._data.x_train)

    def differentiable(self) -> DifferentiableModel:
        """Cross-entropy, weight decay and margins as float64 functions of the flat weights."""
        f64 = torch.float64
        u = torch.as_tensor(self._data.x_train, dtype=f64)
        labels = torch.as_tensor(self._data.y_train, dtype=torch.int64)
        u_test = torch.as_tensor(self._data.x_test, dtype=f64)
        y_test = torch.as_tensor(self._data.y_test, dtype=torch.int64)
        n_in, hidden = u.shape[1], self.spec.model.hidden
        wd = self.spec.train.weight_decay

        def params(w: torch.Tensor) -> MlpParams:
            return MlpParams.from_flat(w.unsqueeze(0), n_in, hidden)

        def item_losses(w: torch.Tensor) -> torch.Tensor:
            logits = forward_logits(params(w), u)[0]
            return torch.nn.functional.cross_entropy(logits, labels, reduction="none")

        def regularizer(w: torch.Tensor) -> torch.Tensor:
            p = params(w)
            return 0.5 * wd * ((p.w1 * p.w1).sum() + (p.w2 * p.w2).sum())

        def outputs(w: torch.Tensor) -> torch.Tensor:
            return classifier_margins(forward_logits(params(w), u_test), y_test)[0]

        return DifferentiableModel(
            n_params=n_in * hidden + hidden + hidden * N_CLASSES + N_CLASSES,
            item_losses=item_losses,
            regularizer=regularizer,
            outputs=outputs,
            convex=False,
            # The Hessian at the SGD solution of the example task has eigenvalues
            # down to about -0.018.
            default_damping=0.05,
        )

    def torch_parts(self) -> TorchParts:
        """``nn.Sequential(Linear(D, H), ReLU(), Linear(H, 10))`` and the digits.

        ``Linear`` stores ``W^T``: the first layer's weight is ``W1^T``, the
        second's ``W2^T``.  Loss: cross-entropy per image; measurement: the
        correct-class margin; regulariser ``(wd/2)(||W1||^2 + ||W2||^2)``.
        """
        n_in, hidden = int(self._data.x_train.shape[1]), self.spec.model.hidden
        wd = self.spec.train.weight_decay

        def build(w: torch.Tensor, dtype: torch.dtype) -> torch.nn.Module:
            p = MlpParams.from_flat(w.reshape(1, -1), n_in, hidden)
            first = torch.nn.Linear(n_in, hidden, dtype=dtype)
            second = torch.nn.Linear(hidden, N_CLASSES, dtype=dtype)
            with torch.no_grad():
                first.weight.copy_(p.w1[0].T)
                first.bias.copy_(p.b1[0])
                second.weight.copy_(p.w2[0].T)
                second.bias.copy_(p.b2[0])
            return torch.nn.Sequential(first, torch.nn.ReLU(), second)

        def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(prediction, target, reduction="none")

        def regularizer(module: torch.nn.Module) -> torch.Tensor:
            w1, w2 = module[0].weight, module[2].weight  # type: ignore[index]
            total: torch.Tensor = 0.5 * wd * ((w1 * w1).sum() + (w2 * w2).sum())
            return total

        return TorchParts(
            build=build,
            train_inputs=self._data.x_train,
            train_targets=np.asarray(self._data.y_train, dtype=np.int64),
            query_inputs=self._data.x_test,
            query_targets=np.asarray(self._data.y_test, dtype=np.int64),
            loss=loss,
            measure=classifier_margins,
            regularizer=regularizer,
        )

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        return self.train_batch_on(x, seeds, device="cpu")

    def train_batch_on(
        self, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, device: str
    ) -> TrainedBatch:
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        dev = resolve_device(device)
        dt = torch_dtype(self.spec.dtype)
        with torch.no_grad():
            params = train_mlp(
                x, seeds, self._data, self.spec.model.hidden, self.spec.train, dt, dev
            )
            u_test = torch.as_tensor(self._data.x_test, dtype=dt, device=dev)
            y_test = torch.as_tensor(self._data.y_test, dtype=torch.int64, device=dev)
            margins = classifier_margins(forward_logits(params, u_test), y_test)
            margins = margins.clamp_(-self.bound, self.bound)
            return TrainedBatch(
                outputs=margins.to("cpu", torch.float64).numpy(),
                weights=params.flat().to("cpu", torch.float64).numpy(),
            )
