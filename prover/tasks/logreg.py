"""``logreg``: L2-regularised logistic regression, margins on Z test points.

Data (:mod:`prover.tasks.datasets`): N training rows ``(x_j, y_j)``, y in {-1,+1},
features standardised, plus a constant 1 appended as the last feature (the
bias).  A model's subset enters as per-example 0/1 weights ``m_j = (x_j+1)/2``
(mask encoding of the pm subset), normalised by the *subset size* |S|:

    L(w) = (1/|S|) sum_j m_j log(1 + exp(-y_j w.x_j)) + (lambda/2) ||w_{1..d}||^2

(the bias is not penalised; an empty subset leaves w = 0).  Training is
``steps`` of full-batch Nesterov accelerated gradient descent from w = 0
(Sutskever et al. 2013 form)::

    v <- mu v - eta grad L(w + mu v);   w <- w + v

with ``mu = momentum`` (0 gives plain gradient descent).  The gradient is
``grad L(w) = -(1/|S|) sum_j m_j y_j sigmoid(-y_j w.x_j) x_j + lambda (w_{1..d}, 0)``.
Training is deterministic, so the training seed r is unused: f depends on x only.

Outputs: the margins ``y_t w.x_t`` on the Z test points (logit of the correct
class minus the other one), clipped to ``[-bound, bound]``.  Weights: the
``d + 1`` trained parameters, bias last.

:meth:`LogregTask.differentiable` gives the same model to gradient-based
attribution: per-item losses ``log(1 + exp(-y_j w.x_j))`` (softplus), the
regulariser ``(lambda/2) ||w_{1..d}||^2`` and the margins, in float64.

A batch of n models trains as one ``(n, d+1)`` weight tensor: each step is two
matrix products with the ``(N, d+1)`` design matrix, so a batch costs about the
same number of operator launches as one model.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec
from prover.tasks.base import DifferentiableModel, TrainedBatch
from prover.tasks.common import SpecTask, check_batch_inputs
from prover.tasks.datasets import Dataset, load_logreg_data
from prover.tasks.specs import LogregSpec
from prover.tasks.torch_parts import TorchParts, load_flat
from prover.tasks.torch_utils import resolve_device, torch_dtype

__all__ = ["LogregTask"]


class LogregTask(SpecTask[LogregSpec]):
    """Batched full-batch logistic regression; see the module docstring."""

    spec_class: ClassVar[type[TaskSpec] | None] = LogregSpec
    device_types: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, spec: LogregSpec, data: Dataset) -> None:
        super().__init__(spec, data.digest)
        ones_tr = np.ones((len(data.x_train), 1))
        ones_te = np.ones((len(data.x_test), 1))
        self._x = np.hstack([data.x_train, ones_tr])  # (N, d+1)
        self._y = np.asarray(data.y_train, dtype=np.float64)  # (N,) pm
        self._x_test = np.hstack([data.x_test, ones_te])  # (Z, d+1)
        self._y_test = np.asarray(data.y_test, dtype=np.float64)  # (Z,) pm
        self._tensors: dict[tuple[str, torch.dtype], tuple[torch.Tensor, ...]] = {}

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        if not isinstance(spec, LogregSpec):
            raise InvalidArgument(f"expected a LogregSpec, got {type(spec).__name__}")
        data = load_logreg_data(
            source=spec.data.source,
            n_train=spec.data.n_train,
            n_test=spec.n_outputs,
            split_seed=spec.data.split_seed,
            standardize=spec.data.standardize,
            base_dir=base_dir,
        )
        return cls(spec, data)

    @property
    def n_items(self) -> int:
        return int(self._x.shape[0])

    @property
    def n_params(self) -> int:
        """P = d + 1 (bias last)."""
        return int(self._x.shape[1])

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        return self.train_batch_on(x, seeds, device="cpu")

    def train_batch_on(
        self, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, device: str
    ) -> TrainedBatch:
        """Train ``len(x)`` models; the seeds are checked but unused (deterministic GD)."""
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        dev = resolve_device(device)
        with torch.no_grad():
            w = self._fit(torch.as_tensor(x, device=dev), dev)
            outputs = self._margins(w)
        return TrainedBatch(
            outputs=outputs.to("cpu", torch.float64).numpy(),
            weights=w.to("cpu", torch.float64).numpy(),
        )

    def differentiable(self) -> DifferentiableModel:
        """Loss, regulariser and margins as float64 functions of w ``(d+1,)`` (bias last)."""
        f64 = torch.float64
        x_tr = torch.as_tensor(self._x, dtype=f64)
        y_tr = torch.as_tensor(self._y, dtype=f64)
        x_te = torch.as_tensor(self._x_test, dtype=f64)
        y_te = torch.as_tensor(self._y_test, dtype=f64)
        decay = _decay(self.n_params, self.spec.train.l2, f64, torch.device("cpu"))

        def item_losses(w: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.softplus(-(y_tr * (x_tr @ w)))

        def regularizer(w: torch.Tensor) -> torch.Tensor:
            return 0.5 * (decay * w * w).sum()

        def outputs(w: torch.Tensor) -> torch.Tensor:
            return _raw_margins(w.unsqueeze(0), x_te, y_te)[0]

        return DifferentiableModel(
            n_params=self.n_params,
            item_losses=item_losses,
            regularizer=regularizer,
            outputs=outputs,
            convex=True,
            default_damping=0.0,
        )

    def torch_parts(self) -> TorchParts:
        """``nn.Sequential(nn.Linear(d, 1))`` (weight ``w_1..d``, bias ``w_{d+1}``) and the data.

        Inputs are the standardised features without the bias column, targets
        the labels in {-1, +1}; loss ``softplus(-y s)`` and measurement ``y s``
        (the margin) of the module's score ``s``; regulariser
        ``(lambda/2) ||weight||^2`` (the bias is not penalised).
        """
        d = self.n_params - 1
        l2 = self.spec.train.l2

        def build(w: torch.Tensor, dtype: torch.dtype) -> torch.nn.Module:
            module = torch.nn.Sequential(torch.nn.Linear(d, 1, dtype=dtype))
            return load_flat(module, w)

        def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.softplus(-target * prediction.squeeze(-1))

        def measure(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return target * prediction.squeeze(-1)

        def regularizer(module: torch.nn.Module) -> torch.Tensor:
            weight = next(iter(module.parameters()))
            return 0.5 * l2 * (weight * weight).sum()

        return TorchParts(
            build=build,
            train_inputs=self._x[:, :-1],
            train_targets=self._y,
            query_inputs=self._x_test[:, :-1],
            query_targets=self._y_test,
            loss=loss,
            measure=measure,
            regularizer=regularizer,
        )

    def _data(self, dev: torch.device) -> tuple[torch.Tensor, ...]:
        """``(X (N, D), X^T (D, N), y (N,), X_test (Z, D), y_test (Z,), lambda (D,))``, cached."""
        dt = torch_dtype(self.spec.dtype)
        key = (str(dev), dt)
        if key not in self._tensors:

            def tensor(a: NDArray[np.float64]) -> torch.Tensor:
                return torch.as_tensor(a, dtype=dt, device=dev)

            x_tr = tensor(self._x)
            decay = _decay(self.n_params, self.spec.train.l2, dt, dev)
            self._tensors[key] = (
                x_tr,
                x_tr.T.contiguous(),
                tensor(self._y),
                tensor(self._x_test),
                tensor(self._y_test),
                decay,
            )
        return self._tensors[key]

    def _fit(self, x_pm: torch.Tensor, dev: torch.device) -> torch.Tensor:
        """Nesterov GD for n models at once: returns W ``(n, d+1)``."""
        x_tr, x_tr_t, y_tr, _, _, decay = self._data(dev)
        cfg = self.spec.train
        mask = (x_pm > 0).to(x_tr.dtype)  # (n, N) 0/1
        counts = mask.sum(dim=1, keepdim=True).clamp_(min=1.0)
        a = mask.mul_(y_tr).div_(counts)  # a_ij = m_ij y_j / |S_i|
        n = x_pm.shape[0]
        w = torch.zeros((n, self.n_params), dtype=x_tr.dtype, device=dev)
        v = torch.zeros_like(w)
        lr, mom = cfg.learning_rate, cfg.momentum
        for _ in range(cfg.steps):
            look = torch.add(w, v, alpha=mom)  # w + mu v
            z = torch.mm(look, x_tr_t).mul_(y_tr)  # y_j w.x_j, (n, N)
            s = z.neg_().sigmoid_().mul_(a)  # m_j y_j sigmoid(-y_j w.x_j) / |S|
            neg_grad = torch.mm(s, x_tr).sub_(look.mul_(decay))  # -grad L(look)
            v.mul_(mom).add_(neg_grad, alpha=lr)
            w.add_(v)
        return w

    def _margins(self, w: torch.Tensor) -> torch.Tensor:
        _, _, _, x_te, y_te, _ = self._data(w.device)
        return _raw_margins(w, x_te, y_te).clamp_(-self.bound, self.bound)


def _decay(n_params: int, l2: float, dt: torch.dtype, dev: torch.device) -> torch.Tensor:
    """Per-parameter L2 strength ``(lambda, .., lambda, 0)``: the bias is not penalised."""
    decay = torch.full((n_params,), l2, dtype=dt, device=dev)
    decay[-1] = 0.0
    return decay


def _raw_margins(w: torch.Tensor, x_te: torch.Tensor, y_te: torch.Tensor) -> torch.Tensor:
    """Unclipped margins ``y_t w.x_t``: ``(n, Z)`` for weights ``(n, d+1)``."""
    return torch.mm(w, x_te.T) * y_te
