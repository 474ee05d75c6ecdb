"""``cnn``: a small residual CNN (ResNet-9 family) on images, seeded SGD on the TorchTask base.

Data (:func:`~prover.tasks.datasets.load_image_data`): scikit-learn's digits as
8x8x1 images (default, no download) or a CIFAR-10-layout ``.npz`` of uint8
``(n, H, W, C)`` images; inside the task images are channel-first
``(n, C, H, W)`` floats in [0, 1], labels int64 in ``[0, n_classes)``.

Network (:class:`ResidualCnn`), for ``channels = c`` and ``blocks = K``, with
``unit(a -> b) = relu(GroupNorm_1(conv3x3(a -> b, no bias)))``::

    prep    unit(C -> c)
    stage k unit(c 2^(k-1) -> c 2^k), maxpool 2x2 (while both sides >= 2),
            and, for odd k and k = K, a residual block x + unit(unit(x))
    head    global max pool over H x W, linear(c 2^K -> n_classes)

``c = 64, K = 3`` is ResNet-9's layout (prep 64, stages 128/256/512, residual
blocks after stages 1 and 3).  The normalisation is GroupNorm with one group
(:class:`GroupNorm1`: per image, over channels and pixels), not batch norm: it has no running
statistics and mixes no images, so a model is a function of its parameters
alone and ``torch.func.vmap`` trains many at once (TorchTask refuses buffers).

Training (:class:`~prover.tasks.torch_task.TorchTask`): ``steps = ceil(epochs
p N / batch_size)`` steps of heavy-ball momentum SGD on

    mean_{j in minibatch} CE_ls(logits(x_j), y_j) + (wd/2) sum ||W||^2

(``CE_ls`` cross-entropy with label smoothing ``ls``; W the convolution and
linear weights, GroupNorm affine parameters not decayed), initialised from the
stream ``"pacda.cnn.init"`` of the model's seed (convolution and linear weights
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as PyTorch's defaults, linear bias the
same, GroupNorm scale 1 and shift 0) and visiting the subset in the order of
``"pacda.cnn.order"``.  With ``augment``, every training image of every step is
shifted by ``(dy, dx)`` uniform in ``[-max_shift, max_shift]^2`` (zero fill)
and, with ``flip``, mirrored left-right with probability 1/2; the draws come
from the stream ``"pacda.cnn.augment"`` of the model's own seed, so a model's
training never depends on its batch-mates.

Outputs (``output``): ``"margin"``, the correct-class margin (true logit minus
the largest other logit) on each of the Z test images; or ``"loss"``, the
test cross-entropy (no smoothing).  Clipped to ``[-bound, bound]``.  Weights:
the parameters flattened in ``named_parameters()`` order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec
from prover.tasks.datasets import Dataset, load_image_data
from prover.tasks.specs import CnnSpec
from prover.tasks.torch_task import Data, Params, SgdRecipe, TorchTask
from prover.tasks.torch_utils import classifier_margins, seeded_generator

__all__ = ["CnnTask", "GroupNorm1", "ResidualCnn", "shift_and_flip"]


class GroupNorm1(torch.nn.Module):
    """GroupNorm with one group: each image normalised over its channels and pixels.

    ``y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]`` with mean and
    (biased) variance over ``(C, H, W)``; equal to ``torch.nn.GroupNorm(1, C)``
    within rounding (8.9e-16 in float64), but written with plain tensor
    operations, whose second derivatives also work under batched gradients
    (``torch.autograd.grad(..., is_grads_batched=True)``, the Hessian blocks of
    influence functions), which ``torch.nn.functional.group_norm``'s do not.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(channels))
        self.bias = torch.nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> the same shape."""
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(-3, -2, -1), keepdim=True)
        scale = self.weight[:, None, None] / torch.sqrt(var + self.eps)
        out: torch.Tensor = (x - mean) * scale + self.bias[:, None, None]
        return out


def _unit(c_in: int, c_out: int) -> torch.nn.Sequential:
    """conv3x3 (no bias) -> GroupNorm1 -> ReLU."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        GroupNorm1(c_out),
        torch.nn.ReLU(),
    )


class _Residual(torch.nn.Module):
    """``x + unit(unit(x))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = _unit(channels, channels)
        self.b = _unit(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.b(self.a(x))
        return out


class ResidualCnn(torch.nn.Module):
    """The ResNet-9-family network of the module docstring, for ``(B, C, H, W)`` inputs.

    Args:
        image_shape: ``(C, H, W)`` of the inputs.
        channels: c, the prep width; stage k has ``c * 2**k`` channels.
        blocks: K, the number of stages.
        n_classes: logits per image.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], channels: int, blocks: int, n_classes: int
    ) -> None:
        super().__init__()
        c_in, h, w = image_shape
        layers: list[torch.nn.Module] = [_unit(c_in, channels)]
        width = channels
        for k in range(1, blocks + 1):
            layers.append(_unit(width, 2 * width))
            width *= 2
            if min(h, w) >= 2:
                layers.append(torch.nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            if k % 2 == 1 or k == blocks:
                layers.append(_Residual(width))
        self.body = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` of images ``(B, C, H, W)``."""
        out: torch.Tensor = self.head(self.body(x).amax(dim=(-2, -1)))
        return out


def shift_and_flip(images: torch.Tensor, draws: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift (zero fill) and optionally mirror images; a pure gather, exact in any batch.

    Args:
        images: ``(..., C, H, W)``.
        draws: int64 ``(..., 3)``: ``(flip in {0, 1}, dy, dx)`` with ``|dy|, |dx| <=
            max_shift``; output pixel ``(i, j)`` is input pixel ``(i + dy, j' + dx)``
            with ``j' = W - 1 - j`` if flipped else ``j``, zero outside the image.
        max_shift: s, the padding.
    Returns:
        ``(..., C, H, W)``, the same dtype.
    """
    *lead, c, h, w = images.shape
    s = max_shift
    flat = images.reshape(-1, c, h, w)
    d = draws.reshape(-1, 3)
    padded = torch.nn.functional.pad(flat, (s, s, s, s))  # (M, C, H + 2s, W + 2s)
    rows = s + d[:, 1:2] + torch.arange(h, device=images.device)  # (M, H)
    j = torch.arange(w, device=images.device)
    cols = s + d[:, 2:3] + torch.where(d[:, 0:1] == 1, w - 1 - j, j)  # (M, W)
    m = torch.arange(len(flat), device=images.device)
    # advanced indices around a slice: the result is (M, H, W, C)
    out = padded.permute(0, 2, 3, 1)[m[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).reshape(*lead, c, h, w)


class CnnTask(TorchTask[CnnSpec]):
    """The ``cnn`` kind; see the module docstring.

    Args:
        spec: the validated spec.
        data: the images (:func:`~prover.tasks.datasets.load_image_data`).
    """

    spec_class: ClassVar[type[TaskSpec] | None] = CnnSpec
    stream_label: ClassVar[str] = "pacda.cnn"
    #: Influence functions' Hessian damping: on ``examples/tasks/cnn.toml`` the
    #: Hessian of a model after 16 steps has curvature below -1 (conjugate
    #: gradients fail with damping 0.05 and 1); 10 works (mean LDS 0.53).
    default_damping: ClassVar[float] = 10.0

    def __init__(self, spec: CnnSpec, data: Dataset) -> None:
        c, h, w = data.x_train.shape[1:]
        #: ``(C, H, W)`` of the images.
        self.image_shape = (int(c), int(h), int(w))
        super().__init__(
            spec,
            data.digest,
            {
                "train_inputs": data.x_train,
                "train_targets": data.y_train,
                "test_inputs": data.x_test,
                "test_targets": data.y_test,
            },
        )

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        if not isinstance(spec, CnnSpec):
            raise InvalidArgument(f"expected a CnnSpec, got {type(spec).__name__}")
        d = spec.data
        data = load_image_data(
            source=d.source,
            n_train=d.n_train,
            n_test=spec.n_outputs,
            split_seed=d.split_seed,
            n_classes=d.n_classes,
            base_dir=base_dir,
        )
        return cls(spec, data)

    def build_module(self) -> torch.nn.Module:
        m = self.spec.model
        return ResidualCnn(self.image_shape, m.channels, m.blocks, self.spec.data.n_classes)

    def init_params(self, gen: torch.Generator) -> Params:
        """PyTorch's default initialisation, drawn from ``gen`` in module order (float64)."""
        out: Params = {}
        for prefix, layer in self.module.named_modules():
            for name, p in layer.named_parameters(recurse=False):
                key = f"{prefix}.{name}" if prefix else name
                if isinstance(layer, GroupNorm1):
                    out[key] = torch.full(p.shape, 1.0 if name == "weight" else 0.0).double()
                    continue
                if isinstance(layer, torch.nn.Conv2d):
                    fan_in = layer.in_channels * math.prod(layer.kernel_size)
                elif isinstance(layer, torch.nn.Linear):
                    fan_in = layer.in_features
                else:  # pragma: no cover - the network has no other parametrised layers
                    raise InvalidArgument(f"cnn: no initialisation for {type(layer).__name__}")
                u = torch.rand(p.shape, generator=gen, dtype=torch.float64)
                out[key] = (2.0 * u - 1.0) / math.sqrt(fan_in)
        return out

    @property
    def recipe(self) -> SgdRecipe:
        t = self.spec.train
        return SgdRecipe(
            steps=self.spec.steps(),
            batch_size=t.batch_size,
            learning_rate=t.learning_rate,
            momentum=t.momentum,
        )

    def item_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the spec's label smoothing, per image ``(B,)``."""
        return torch.nn.functional.cross_entropy(
            prediction, target, reduction="none", label_smoothing=self.spec.train.label_smoothing
        )

    def regularizer(self, params: Params) -> torch.Tensor:
        """``(wd/2) sum ||W||^2`` over convolution and linear weights (4-D and 2-D tensors)."""
        total = torch.zeros((), dtype=next(iter(params.values())).dtype)
        for k, v in params.items():
            if k.endswith("weight") and v.dim() in (2, 4):
                total = total + (v**2).sum()
        return 0.5 * self.spec.train.weight_decay * total

    def measure(self, params: Params, data: Data) -> torch.Tensor:
        logits = self.forward(params, data["test_inputs"])
        if self.spec.output == "loss":
            return torch.nn.functional.cross_entropy(logits, data["test_targets"], reduction="none")
        return classifier_margins(logits, data["test_targets"])

    def measure_items(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """What :meth:`measure` gives, for a batch of test images' logits."""
        if self.spec.output == "loss":
            return torch.nn.functional.cross_entropy(prediction, target, reduction="none")
        return classifier_margins(prediction, target)

    def augmentation_draws(
        self, seeds: NDArray[np.uint64], steps: int, batch_size: int
    ) -> torch.Tensor | None:
        """``(n, steps, B, 3)`` int64 ``(flip, dy, dx)`` from each model's ``pacda.cnn.augment``."""
        t = self.spec.train
        if not t.augment:
            return None
        per_model = []
        for seed in seeds:
            gen = seeded_generator(int(seed), f"{self.stream_label}.augment")
            flip = torch.randint(0, 2, (steps, batch_size, 1), generator=gen)
            shift = torch.randint(
                -t.max_shift, t.max_shift + 1, (steps, batch_size, 2), generator=gen
            )
            per_model.append(torch.cat([flip * int(t.flip), shift], dim=-1))
        return torch.stack(per_model)

    def augment(self, inputs: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        return shift_and_flip(inputs, draws, self.spec.train.max_shift)
