"""Spec classes of the built-in task kinds (pure: no torch).

Each class is a frozen keyword-only dataclass validated on construction; see
:mod:`protocol.taskspec` for the field machinery and ``docs/tasks.md`` for the
TOML format.  Defaults are the tuned recipes whose measured tolerances and
speed are reported in ``docs/tasks.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from protocol.errors import InvalidArgument
from protocol.synthetic import PlantedSpectrum
from protocol.taskspec import (
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    Range,
    Section,
    TaskSpec,
    spec_field,
)

__all__ = [
    "AblationSpec",
    "AblationTrain",
    "CnnData",
    "CnnModel",
    "CnnSpec",
    "CnnTrain",
    "DigitsData",
    "LogregData",
    "LogregSpec",
    "LogregTrain",
    "MlpModel",
    "MlpSpec",
    "MlpTrain",
    "SpectrumSection",
    "SyntheticSpec",
]

DTYPES = ("float64", "float32")
#: Unit interval with 1 excluded: momentum coefficients.
MOMENTUM_RANGE = Range(lo=0, hi=1, hi_open=True)


# --------------------------------------------------------------- synthetic
@dataclass(frozen=True, kw_only=True)
class SpectrumSection(Section):
    """``[task.spectrum]``: the planted spectrum of :class:`protocol.synthetic.PlantedSpectrum`."""

    path: ClassVar[str] = "task.spectrum"

    n_items: int = spec_field(check=POSITIVE, doc="N, coordinates of x")
    degree_weights: tuple[float, ...] = spec_field(
        check=NON_NEGATIVE, doc="(B_0, ..., B_D) of the seed-averaged output"
    )
    terms_per_degree: tuple[int, ...] = spec_field(
        check=NON_NEGATIVE, doc="(m_0, ..., m_D) terms per degree"
    )
    noise: float = spec_field(default=0.0, check=NON_NEGATIVE, doc="seed-noise half-width a")
    structure_seed: int = spec_field(default=0, check=SEED, doc="seeds the terms")


@dataclass(frozen=True, kw_only=True)
class SyntheticSpec(TaskSpec):
    """``kind = "synthetic"``: planted-spectrum functions, evaluation only.

    ``bound`` must be at least the provable bound of the spectrum (checked when
    the task is built), so clipping never changes an output and the exact
    reference quantities of :class:`~protocol.synthetic.SyntheticFunction` hold.
    """

    kind_name: ClassVar[str | None] = "synthetic"

    kind: str = spec_field(default="synthetic")
    output_tolerance: float = spec_field(default=1e-12, check=NON_NEGATIVE)
    weight_tolerance: float = spec_field(default=0.0, check=NON_NEGATIVE)
    n_outputs: int = spec_field(default=1, check=POSITIVE)
    spectrum: SpectrumSection

    def check(self) -> None:
        try:
            self.planted()
        except InvalidArgument as err:
            raise InvalidArgument(f"task.spectrum: {err}") from err

    def planted(self) -> PlantedSpectrum:
        """The :class:`PlantedSpectrum` this spec describes."""
        s = self.spectrum
        return PlantedSpectrum(
            n_items=s.n_items,
            p=self.p,
            degree_weights=s.degree_weights,
            terms_per_degree=s.terms_per_degree,
            noise=s.noise,
            n_outputs=self.n_outputs,
            structure_seed=s.structure_seed,
        )


# ------------------------------------------------------------------ logreg
@dataclass(frozen=True, kw_only=True)
class LogregData(Section):
    """``[task.data]`` of ``logreg``."""

    path: ClassVar[str] = "task.data"

    source: str = spec_field(
        default="breast_cancer",
        doc="'breast_cancer' (scikit-learn) or a .npz path relative to the task file",
    )
    n_train: int = spec_field(default=400, check=POSITIVE, doc="N, training points used")
    split_seed: int = spec_field(
        default=0, check=SEED, doc="train/test split of breast_cancer (unused for .npz)"
    )
    standardize: bool = spec_field(
        default=True, doc="centre and scale features by the N training points' mean and std"
    )

    def check(self) -> None:
        if self.source != "breast_cancer" and not self.source.endswith(".npz"):
            raise InvalidArgument(
                f"task.data.source: expected 'breast_cancer' or a path ending in .npz, "
                f"got {self.source!r}"
            )


@dataclass(frozen=True, kw_only=True)
class LogregTrain(Section):
    """``[task.train]`` of ``logreg``: full-batch Nesterov gradient descent."""

    path: ClassVar[str] = "task.train"

    steps: int = spec_field(default=200, check=POSITIVE, doc="gradient steps")
    learning_rate: float = spec_field(default=0.5, check=POSITIVE, doc="step size eta")
    momentum: float = spec_field(
        default=0.9, check=MOMENTUM_RANGE, doc="Nesterov momentum mu (0 = plain GD)"
    )
    l2: float = spec_field(default=0.01, check=NON_NEGATIVE, doc="L2 penalty lambda")


@dataclass(frozen=True, kw_only=True)
class LogregSpec(TaskSpec):
    """``kind = "logreg"``: L2 logistic regression, margins on Z test points."""

    kind_name: ClassVar[str | None] = "logreg"

    kind: str = spec_field(default="logreg")
    bound: float = spec_field(default=30.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=1e-9, check=NON_NEGATIVE)
    weight_tolerance: float = spec_field(default=1e-9, check=NON_NEGATIVE)
    n_outputs: int = spec_field(default=16, check=POSITIVE)
    dtype: str = spec_field(default="float64", choices=DTYPES, doc="training precision")
    data: LogregData = field(default_factory=LogregData)
    train: LogregTrain = field(default_factory=LogregTrain)


# ---------------------------------------------------------------- digits MLP
#: scikit-learn's digits has 1797 images.
DIGITS_SIZE = 1797


@dataclass(frozen=True, kw_only=True)
class DigitsData(Section):
    """``[task.data]`` of ``mlp`` and ``ablation``: scikit-learn's digits, pixels / 16."""

    path: ClassVar[str] = "task.data"

    n_train: int = spec_field(default=1000, check=POSITIVE, doc="training images")
    split_seed: int = spec_field(default=0, check=SEED, doc="train/test split")

    def check(self) -> None:
        if self.n_train >= DIGITS_SIZE:
            raise InvalidArgument(
                f"task.data.n_train: expected an integer < {DIGITS_SIZE} (digits has "
                f"{DIGITS_SIZE} images and test points come from the rest), got {self.n_train}"
            )


@dataclass(frozen=True, kw_only=True)
class MlpModel(Section):
    """``[task.model]``: a 64 -> hidden -> 10 ReLU network."""

    path: ClassVar[str] = "task.model"

    hidden: int = spec_field(default=32, check=POSITIVE, doc="hidden units")


@dataclass(frozen=True, kw_only=True)
class MlpTrain(Section):
    """``[task.train]``: minibatch SGD with heavy-ball momentum."""

    path: ClassVar[str] = "task.train"

    steps: int = spec_field(default=300, check=POSITIVE, doc="SGD steps")
    batch_size: int = spec_field(default=32, check=POSITIVE, doc="minibatch size")
    learning_rate: float = spec_field(default=0.1, check=POSITIVE, doc="step size")
    momentum: float = spec_field(default=0.9, check=MOMENTUM_RANGE, doc="heavy-ball momentum")
    weight_decay: float = spec_field(default=1e-4, check=NON_NEGATIVE, doc="L2 on weights")


def _check_digits_split(spec: TaskSpec, data: DigitsData) -> None:
    if data.n_train + spec.n_outputs > DIGITS_SIZE:
        raise InvalidArgument(
            f"task.n_outputs: expected an integer <= {DIGITS_SIZE - data.n_train} "
            f"(test points left after {data.n_train} training images), got {spec.n_outputs}"
        )


@dataclass(frozen=True, kw_only=True)
class MlpSpec(TaskSpec):
    """``kind = "mlp"``: an MLP on digits with seeded init and seeded minibatch order."""

    kind_name: ClassVar[str | None] = "mlp"

    kind: str = spec_field(default="mlp")
    bound: float = spec_field(default=30.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=1e-8, check=NON_NEGATIVE)
    weight_tolerance: float = spec_field(default=1e-8, check=NON_NEGATIVE)
    n_outputs: int = spec_field(default=16, check=POSITIVE)
    dtype: str = spec_field(default="float64", choices=DTYPES, doc="training precision")
    data: DigitsData = field(default_factory=DigitsData)
    model: MlpModel = field(default_factory=MlpModel)
    train: MlpTrain = field(default_factory=MlpTrain)

    def check(self) -> None:
        _check_digits_split(self, self.data)


# ----------------------------------------------------------------- ablation
@dataclass(frozen=True, kw_only=True)
class AblationTrain(MlpTrain):
    """``[task.train]`` of ``ablation``: the recipe of the one fixed base MLP."""

    seed: int = spec_field(default=0, check=SEED, doc="training seed of the base MLP")


@dataclass(frozen=True, kw_only=True)
class AblationSpec(TaskSpec):
    """``kind = "ablation"``: component attribution over the hidden units of one MLP.

    N = ``model.hidden``; x_i = +1 keeps hidden unit i, -1 zeroes it.
    """

    kind_name: ClassVar[str | None] = "ablation"

    kind: str = spec_field(default="ablation")
    bound: float = spec_field(default=30.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=1e-10, check=NON_NEGATIVE)
    weight_tolerance: float = spec_field(default=0.0, check=NON_NEGATIVE)
    n_outputs: int = spec_field(default=16, check=POSITIVE)
    data: DigitsData = field(default_factory=DigitsData)
    model: MlpModel = field(default_factory=lambda: MlpModel(hidden=64))
    train: AblationTrain = field(default_factory=AblationTrain)

    def check(self) -> None:
        _check_digits_split(self, self.data)


# ---------------------------------------------------------------------- cnn
#: Outputs of ``cnn``: correct-class margins or cross-entropy losses on the test images.
CNN_OUTPUTS = ("margin", "loss")
#: Unit interval with 1 excluded, 0 included: label smoothing.
SMOOTHING_RANGE = Range(lo=0, hi=1, hi_open=True)


@dataclass(frozen=True, kw_only=True)
class CnnData(Section):
    """``[task.data]`` of ``cnn``: scikit-learn's digits or a CIFAR-layout ``.npz``."""

    path: ClassVar[str] = "task.data"

    source: str = spec_field(
        default="digits",
        doc="'digits' (scikit-learn, 8x8x1) or a CIFAR-layout .npz path relative to the task file",
    )
    n_train: int = spec_field(default=128, check=POSITIVE, doc="N, training images used")
    split_seed: int = spec_field(
        default=0, check=SEED, doc="train/test split of digits (unused for .npz)"
    )
    n_classes: int = spec_field(
        default=10, check=Range(lo=2), doc="classes; labels lie in [0, n_classes)"
    )

    def check(self) -> None:
        if self.source != "digits" and not self.source.endswith(".npz"):
            raise InvalidArgument(
                f"task.data.source: expected 'digits' or a path ending in .npz, got {self.source!r}"
            )
        if self.source == "digits" and self.n_train >= DIGITS_SIZE:
            raise InvalidArgument(
                f"task.data.n_train: expected an integer < {DIGITS_SIZE} (digits has "
                f"{DIGITS_SIZE} images and test points come from the rest), got {self.n_train}"
            )


@dataclass(frozen=True, kw_only=True)
class CnnModel(Section):
    """``[task.model]`` of ``cnn``: a residual CNN of the ResNet-9 family.

    A 3x3 "prep" convolution to ``channels``, then ``blocks`` stages; stage k
    widens to ``channels * 2**k`` with a 3x3 convolution and halves the image
    with a 2x2 max pool (while both sides are >= 2); odd stages and the last
    one add a residual block.  ``channels = 64, blocks = 3`` is ResNet-9's layout.
    """

    path: ClassVar[str] = "task.model"

    channels: int = spec_field(default=4, check=POSITIVE, doc="width of the prep convolution")
    blocks: int = spec_field(default=2, check=POSITIVE, doc="downsampling stages")


@dataclass(frozen=True, kw_only=True)
class CnnTrain(Section):
    """``[task.train]`` of ``cnn``: seeded minibatch SGD with heavy-ball momentum."""

    path: ClassVar[str] = "task.train"

    epochs: float = spec_field(
        default=16.0,
        check=POSITIVE,
        doc="passes over the expected subset: steps = ceil(epochs * p * N / batch_size)",
    )
    batch_size: int = spec_field(default=16, check=POSITIVE, doc="minibatch size")
    learning_rate: float = spec_field(default=0.01, check=POSITIVE, doc="step size")
    momentum: float = spec_field(default=0.9, check=MOMENTUM_RANGE, doc="heavy-ball momentum")
    weight_decay: float = spec_field(
        default=5e-4, check=NON_NEGATIVE, doc="L2 on convolution and linear weights"
    )
    label_smoothing: float = spec_field(
        default=0.0, check=SMOOTHING_RANGE, doc="label smoothing of the training loss"
    )
    augment: bool = spec_field(
        default=False, doc="random shifts (and flips) drawn from the model's own seed"
    )
    max_shift: int = spec_field(
        default=1, check=NON_NEGATIVE, doc="augmentation: shifts of up to this many pixels"
    )
    flip: bool = spec_field(default=False, doc="augmentation: random horizontal flips")


@dataclass(frozen=True, kw_only=True)
class CnnSpec(TaskSpec):
    """``kind = "cnn"``: a small residual CNN, seeded SGD, margins or losses on Z test images."""

    kind_name: ClassVar[str | None] = "cnn"

    kind: str = spec_field(default="cnn")
    bound: float = spec_field(default=30.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=1e-8, check=NON_NEGATIVE)
    weight_tolerance: float = spec_field(default=1e-8, check=NON_NEGATIVE)
    n_outputs: int = spec_field(default=16, check=POSITIVE)
    dtype: str = spec_field(default="float64", choices=DTYPES, doc="training precision")
    output: str = spec_field(
        default="margin", choices=CNN_OUTPUTS, doc="test margins or test cross-entropy losses"
    )
    data: CnnData = field(default_factory=CnnData)
    model: CnnModel = field(default_factory=CnnModel)
    train: CnnTrain = field(default_factory=CnnTrain)

    def check(self) -> None:
        if self.data.source == "digits" and self.data.n_train + self.n_outputs > DIGITS_SIZE:
            raise InvalidArgument(
                f"task.n_outputs: expected an integer <= {DIGITS_SIZE - self.data.n_train} "
                f"(test points left after {self.data.n_train} training images), "
                f"got {self.n_outputs}"
            )
        if self.train.augment and self.train.max_shift == 0 and not self.train.flip:
            raise InvalidArgument(
                "task.train.augment: true, but max_shift = 0 and flip = false leave nothing to draw"
            )

    def steps(self) -> int:
        """SGD steps: ``ceil(epochs * p * n_train / batch_size)``, at least 1."""
        t = self.train
        return max(1, math.ceil(t.epochs * self.p * self.data.n_train / t.batch_size))
