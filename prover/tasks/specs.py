"""Spec classes of the built-in task kinds (pure: no torch).

Each class is a frozen keyword-only dataclass validated on construction; see
:mod:`protocol.taskspec` for the field machinery and ``docs/tasks.md`` for the
TOML format.  Defaults are the tuned recipes whose measured tolerances and
speed are reported in ``docs/tasks.md``.
"""

from __future__ import annotations

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
