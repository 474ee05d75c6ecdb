"""A base for torch tasks: a new task is its model, its loss and its measurement.

:class:`TorchTask` does the rest of what :class:`~prover.tasks.base.Task` asks:

* **validation** of every batch (:func:`~prover.tasks.common.check_batch_inputs`);
* **device placement**: the task's named data arrays are moved to the device
  once per (device, dtype) and cached; floating arrays take the task's dtype;
* **seeded, batch-independent training** of n models at once: model k is
  initialised from the stream ``"<stream_label>.init"`` of its seed
  (:meth:`TorchTask.init_params`, drawn on the CPU in float64, one generator per
  model) and visits its subset in the order of the stream
  ``"<stream_label>.order"`` (:func:`~prover.tasks.torch_utils.seeded_minibatch_order`);
  each of ``steps`` steps evaluates every model's objective
  ``mean_{j in minibatch} item_loss + regularizer`` with ``torch.func.vmap``
  over ``torch.func.functional_call(module, params, inputs)``, differentiates
  their sum (model k's objective depends on model k's parameters only, so
  that is every model's own gradient), and takes a heavy-ball momentum step in PyTorch's convention
  (``buf <- mu buf + g; theta <- theta - eta buf``).  An empty subset
  contributes no data gradient (the regulariser still applies).  No operation
  reduces across the model axis, so a model's result does not depend on its
  batch-mates beyond the floating-point behaviour of batched kernels (measure
  it and declare the tolerances, as ``tests/unit/test_tasks_torch.py`` does);
* **measurement and clipping**: ``vmap`` of :meth:`TorchTask.measure` gives the
  ``(n, Z)`` outputs, clipped to ``[-bound, bound]``; the weights are the
  parameters flattened in ``module.named_parameters()`` order, row-major;
* the **differentiable hooks** (:meth:`TorchTask.differentiable`) for
  influence functions, from the same model, loss and measurement.

A subclass supplies :meth:`~TorchTask.build_module` (the architecture; its own
parameter values are never used), :meth:`~TorchTask.item_loss`,
:meth:`~TorchTask.measure`, the :attr:`~TorchTask.recipe` and, optionally,
:meth:`~TorchTask.regularizer`, :meth:`~TorchTask.init_params` and data
augmentation (:meth:`~TorchTask.augmentation_draws` with
:meth:`~TorchTask.augment`, drawn from each model's own seed), and passes its
data to ``__init__`` as named numpy arrays, at least ``"train_inputs"`` (N
leading) and ``"train_targets"``.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch.func import functional_call, vmap

from protocol.errors import InvalidArgument
from prover.tasks.base import DifferentiableModel, TrainedBatch
from prover.tasks.common import SpecT, SpecTask, check_batch_inputs
from prover.tasks.torch_parts import TorchParts, load_flat
from prover.tasks.torch_utils import (
    resolve_device,
    seeded_generator,
    seeded_minibatch_order,
    torch_dtype,
)

__all__ = ["Params", "SgdRecipe", "TorchTask"]

#: One model's parameters by name (``module.named_parameters()`` names).
Params = dict[str, torch.Tensor]
Data = Mapping[str, torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class SgdRecipe:
    """Minibatch SGD with heavy-ball momentum (PyTorch convention).

    Attributes:
        steps: SGD steps; batch_size: minibatch size B.
        learning_rate: eta; momentum: mu in [0, 1).
    """

    steps: int
    batch_size: int
    learning_rate: float
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise InvalidArgument(
                f"recipe: steps must be >= 0 and batch_size >= 1, got {self.steps}, "
                f"{self.batch_size}"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise InvalidArgument(f"recipe: momentum must lie in [0, 1), got {self.momentum}")


class TorchTask(SpecTask[SpecT]):
    """Seeded SGD over a ``torch.nn.Module``; see the module docstring.

    Args:
        spec: the validated spec (its ``dtype`` field, if any, sets the training
            precision; float64 otherwise).
        dataset_digest: content hash of the data (:func:`protocol.taskspec.array_digest`).
        data: named numpy arrays, with ``"train_inputs"`` ``(N, ...)`` and
            ``"train_targets"`` ``(N, ...)``; anything else (test points) is
            for :meth:`measure`.
    """

    device_types: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: Prefix of the seed streams (``"<label>.init"``, ``"<label>.order"``).
    stream_label: ClassVar[str]
    #: Whether the training objective is convex in the parameters.
    convex: ClassVar[bool] = False
    #: Hessian damping of influence functions when the caller gives none.
    default_damping: ClassVar[float] = 0.05

    def __init__(
        self, spec: SpecT, dataset_digest: str, data: Mapping[str, NDArray[np.generic]]
    ) -> None:
        super().__init__(spec, dataset_digest)
        for key in ("train_inputs", "train_targets"):
            if key not in data:
                raise InvalidArgument(f"{type(self).__name__}: data needs {key!r}")
        n = len(data["train_inputs"])
        if len(data["train_targets"]) != n:
            raise InvalidArgument(
                f"{type(self).__name__}: {n} train_inputs but "
                f"{len(data['train_targets'])} train_targets"
            )
        self._arrays = {k: np.asarray(v) for k, v in data.items()}
        self._cache: dict[tuple[str, torch.dtype], Data] = {}
        self.module = self.build_module()
        self._shapes = [(name, tuple(p.shape)) for name, p in self.module.named_parameters()]
        if not self._shapes:
            raise InvalidArgument(f"{type(self).__name__}: the module has no parameters")
        if any(True for _ in self.module.buffers()):
            raise InvalidArgument(
                f"{type(self).__name__}: modules with buffers (e.g. batch norm) are not "
                "supported: a model's state must be its parameters"
            )

    # ------------------------------------------------------------ subclass API
    @abc.abstractmethod
    def build_module(self) -> torch.nn.Module:
        """The architecture (called once; its parameter values are never used)."""

    @abc.abstractmethod
    def item_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-item training losses ``(B,)`` of one model's predictions on B items."""

    @abc.abstractmethod
    def measure(self, params: Params, data: Data) -> torch.Tensor:
        """One model's Z outputs ``(Z,)``, unclipped; ``self.forward(params, data[...])`` helps."""

    #: Data arrays of the Z measured points, (inputs, targets): what
    #: :meth:`measure_items` is applied to by the torch adapter.
    query_arrays: ClassVar[tuple[str, str]] = ("test_inputs", "test_targets")

    def measure_items(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """Outputs ``(B,)`` of one model's predictions on B of the measured points, or None.

        Optional (default None): the torch adapter
        (:func:`prover.tasks.torch_adapter.torch_adapter`) needs it, with the
        arrays named by :attr:`query_arrays`, so that row z of those arrays
        measured this way equals output z of :meth:`measure`.
        """
        return None

    @property
    @abc.abstractmethod
    def recipe(self) -> SgdRecipe:
        """The training recipe."""

    def augmentation_draws(
        self, seeds: NDArray[np.uint64], steps: int, batch_size: int
    ) -> torch.Tensor | None:
        """Random draws of data augmentation, ``(n, steps, batch_size, ...)``, or None.

        Default None: no augmentation.  Model k's draws must come from its own
        seed only (``seeded_generator(seed, "<stream_label>.<name>")``), so that
        they do not depend on batch-mates; :meth:`augment` consumes them.
        """
        return None

    def augment(self, inputs: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """One step's augmented training inputs ``(n, B, ...)``.

        ``inputs`` are the minibatch inputs of the n models, ``draws`` the
        step's slice ``(n, B, ...)`` of :meth:`augmentation_draws`; row k of the
        result must depend on row k of both only.  Default: unchanged.
        """
        return inputs

    def regularizer(self, params: Params) -> torch.Tensor:
        """The objective's part not tied to items (default 0), e.g. weight decay."""
        return torch.zeros((), dtype=next(iter(params.values())).dtype)

    def init_params(self, gen: torch.Generator) -> Params:
        """One model's initial parameters, float64 on the CPU, drawn from ``gen`` only.

        Default: every ``torch.nn.Linear`` of the module as PyTorch initialises
        it, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight then bias, in module
        order.  Override it for other layers.
        """
        out: Params = {}
        for prefix, layer in self.module.named_modules():
            own = dict(layer.named_parameters(recurse=False))
            if not own:
                continue
            if not isinstance(layer, torch.nn.Linear):
                raise InvalidArgument(
                    f"{type(self).__name__}: default init_params handles nn.Linear only, "
                    f"not {type(layer).__name__} ({prefix}); override init_params"
                )
            bound = 1.0 / math.sqrt(layer.in_features)
            for name, p in own.items():
                u = torch.rand(p.shape, generator=gen, dtype=torch.float64)
                out[f"{prefix}.{name}" if prefix else name] = (2.0 * u - 1.0) * bound
        return out

    # ------------------------------------------------------------ provided
    @property
    def n_items(self) -> int:
        return len(self._arrays["train_inputs"])

    @property
    def n_params(self) -> int:
        """P, the length of a weight row."""
        return sum(math.prod(shape) for _, shape in self._shapes)

    @property
    def dtype(self) -> torch.dtype:
        """Training precision: the spec's ``dtype`` field, else float64."""
        return torch_dtype(str(getattr(self.spec, "dtype", "float64")))

    def forward(self, params: Params, inputs: torch.Tensor) -> torch.Tensor:
        """The module's output with ``params`` (``torch.func.functional_call``)."""
        out: torch.Tensor = functional_call(self.module, params, (inputs,))
        return out

    def data_on(self, device: torch.device, dtype: torch.dtype) -> Data:
        """The named data arrays as tensors on ``device`` (floating ones in ``dtype``), cached."""
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache[key] = {
                k: torch.as_tensor(
                    v, dtype=dtype if np.issubdtype(v.dtype, np.floating) else None, device=device
                )
                for k, v in self._arrays.items()
            }
        return self._cache[key]

    def flatten(self, params: Params) -> torch.Tensor:
        """``(n, P)`` from parameters with a leading model axis, in named-parameter order."""
        n = next(iter(params.values())).shape[0]
        return torch.cat([params[name].reshape(n, -1) for name, _ in self._shapes], dim=1)

    def unflatten(self, w: torch.Tensor) -> Params:
        """One model's parameters from its flat weights ``(P,)``."""
        sizes = [math.prod(shape) for _, shape in self._shapes]
        parts = torch.split(w, sizes)
        return {
            name: part.reshape(shape)
            for (name, shape), part in zip(self._shapes, parts, strict=True)
        }

    def initial_params(
        self, seeds: NDArray[np.uint64], device: torch.device, dtype: torch.dtype
    ) -> Params:
        """Initial parameters of ``len(seeds)`` models (leading model axis)."""
        per_model = []
        for seed in seeds:
            drawn = self.init_params(seeded_generator(int(seed), f"{self.stream_label}.init"))
            if [(k, tuple(v.shape)) for k, v in drawn.items()] != self._shapes:
                raise InvalidArgument(
                    f"{type(self).__name__}.init_params must return {self._shapes}, got "
                    f"{[(k, tuple(v.shape)) for k, v in drawn.items()]}"
                )
            per_model.append(drawn)
        return {
            name: torch.stack([p[name] for p in per_model]).to(device, dtype)
            for name, _ in self._shapes
        }

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        return self.train_batch_on(x, seeds, device="cpu")

    def train_batch_on(
        self, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, device: str
    ) -> TrainedBatch:
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        dev = resolve_device(device)
        dt = self.dtype
        data = self.data_on(dev, dt)
        params = self._sgd(x > 0, seeds, data, dev, dt)
        with torch.no_grad():
            outputs = vmap(self.measure, in_dims=(0, None))(params, data)
            outputs = outputs.clamp(-self.bound, self.bound)
            return TrainedBatch(
                outputs=outputs.to("cpu", torch.float64).numpy(),
                weights=self.flatten(params).to("cpu", torch.float64).numpy(),
            )

    def _sgd(
        self,
        mask: NDArray[np.bool_],
        seeds: NDArray[np.uint64],
        data: Data,
        dev: torch.device,
        dt: torch.dtype,
    ) -> Params:
        recipe = self.recipe
        params = self.initial_params(seeds, dev, dt)
        if recipe.steps == 0 or not len(seeds):
            return params
        order = seeded_minibatch_order(
            mask, seeds, recipe.steps, recipe.batch_size, f"{self.stream_label}.order"
        )
        order_t = torch.as_tensor(order, device=dev)
        draws = self.augmentation_draws(seeds, recipe.steps, recipe.batch_size)
        draws = None if draws is None else draws.to(dev)
        active = torch.as_tensor(mask.any(axis=1), dtype=dt, device=dev)
        inputs, targets = data["train_inputs"], data["train_targets"]

        def objective(
            p: Params, xb: torch.Tensor, yb: torch.Tensor, on: torch.Tensor
        ) -> torch.Tensor:
            losses = self.item_loss(self.forward(p, xb), yb)
            return on * losses.mean() + self.regularizer(p)

        objectives = vmap(objective)  # (n,): one objective per model
        bufs = {k: torch.zeros_like(v) for k, v in params.items()}
        lr, mom = recipe.learning_rate, recipe.momentum
        for t in range(recipe.steps):
            idx = order_t[:, t]  # (n, B)
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            # Model k's objective depends on model k's parameters only, so the
            # gradient of the sum is every model's own gradient.
            xb = inputs[idx] if draws is None else self.augment(inputs[idx], draws[:, t])
            total = objectives(leaves, xb, targets[idx], active).sum()
            grads = torch.autograd.grad(total, list(leaves.values()))
            with torch.no_grad():
                for (k, v), g in zip(leaves.items(), grads, strict=True):
                    bufs[k] = bufs[k] * mom + g
                    params[k] = v.detach() - lr * bufs[k]
        return params

    def torch_parts(self) -> TorchParts | None:
        """A copy of :attr:`module` per weight vector, the data arrays, loss and measurement.

        None when the subclass defines no :meth:`measure_items` or lacks the
        arrays of :attr:`query_arrays`.  Data augmentation is not applied.
        """
        inputs_key, targets_key = self.query_arrays
        if inputs_key not in self._arrays or targets_key not in self._arrays:
            return None
        if type(self).measure_items is TorchTask.measure_items:  # not defined by the subclass
            return None
        task = self

        def build(w: torch.Tensor, dtype: torch.dtype) -> torch.nn.Module:
            return load_flat(copy.deepcopy(task.module).to(dtype), w)

        def measure(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            out = task.measure_items(prediction, target)
            if out is None:
                raise InvalidArgument(f"{type(task).__name__}.measure_items returned None")
            return out

        def regularizer(module: torch.nn.Module) -> torch.Tensor:
            return task.regularizer(dict(module.named_parameters()))

        return TorchParts(
            build=build,
            train_inputs=self._arrays["train_inputs"],
            train_targets=self._arrays["train_targets"],
            query_inputs=self._arrays[inputs_key],
            query_targets=self._arrays[targets_key],
            loss=self.item_loss,
            measure=measure,
            regularizer=regularizer,
        )

    def differentiable(self) -> DifferentiableModel:
        """Item losses, regulariser and outputs of the same module, in float64."""
        data = self.data_on(torch.device("cpu"), torch.float64)
        inputs, targets = data["train_inputs"], data["train_targets"]

        def item_losses(w: torch.Tensor) -> torch.Tensor:
            return self.item_loss(self.forward(self.unflatten(w), inputs), targets)

        def regularizer(w: torch.Tensor) -> torch.Tensor:
            return self.regularizer(self.unflatten(w))

        def outputs(w: torch.Tensor) -> torch.Tensor:
            return self.measure(self.unflatten(w), data)

        return DifferentiableModel(
            n_params=self.n_params,
            item_losses=item_losses,
            regularizer=regularizer,
            outputs=outputs,
            convex=self.convex,
            default_damping=self.default_damping,
        )
