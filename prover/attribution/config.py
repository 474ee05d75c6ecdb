"""Configuration of an attribution run: method, budget, self-check, randomness.

An :class:`AttributionConfig` is frozen, validated and written into the
``meta`` of every scores file it produced, so a scores file says exactly how
it was made (and a rerun with the same config and store trains nothing twice).

The method's own options belong to the method (its ``options_class``, see
:mod:`prover.attribution.method`): pass them as ``options``.  The flat fields
``regularization``, ``validation_fraction``, ``n_lambdas`` (``datamodel``) and
``damping``, ``cg_iterations`` (``influence-function``) are shortcuts for the
built-in methods' options of the same names, read when ``options`` is None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from protocol.errors import InvalidArgument
from prover.attribution.datamodel import DatamodelOptions
from prover.attribution.influence import InfluenceOptions
from prover.attribution.registry import BUILTIN_METHODS, get_method, method_class

__all__ = [
    "METHODS",
    "AttributionConfig",
    "Regularization",
    "check_method",
    "min_samples",
]

Regularization = Literal["ridge", "lasso"]

#: The built-in methods, in the order of ``--help`` (every name: :func:`method_names`).
METHODS: tuple[str, ...] = BUILTIN_METHODS


def check_method(method: str) -> str:
    """Return ``method`` if registered, else raise :class:`InvalidArgument` listing the known ones.

    Registered means a built-in, a :func:`~prover.attribution.registry.register_method`
    registration or a ``pacda.methods`` entry point.
    """
    method_class(method)
    return method


def min_samples(method: str, n_items: int) -> int:
    """Fewest fitting retrainings ``M`` a method accepts for N items (its ``min_samples``).

    * ``datamodel``: ``N + 2`` — the least-squares problem has N + 1 unknowns,
      and one more equation leaves a residual degree of freedom (with fewer,
      the fit interpolates and its err is of the order of ``Var(f)``);
    * ``empirical-influence``: ``4`` (both classes of every item must also
      occur, checked on the drawn subsets);
    * ``influence-function``: ``0`` (no retraining);
    * ``trak``: ``3`` (calibration of intercept and scale per output, plus its
      ``ensemble`` models, trained apart).
    """
    return get_method(method).min_samples(n_items)


@dataclass(frozen=True, kw_only=True)
class AttributionConfig:
    """How to compute and self-check attribution scores.

    Attributes:
        method: a registered method name: ``datamodel`` (Ilyas et al. 2022),
            ``empirical-influence`` (Feldman & Zhang 2020), ``influence-function``
            (Koh & Liang 2017), ``trak`` (Park et al. 2023) or a plugin's.
        samples: M, retrainings on B_p subsets used to fit the scores.
        check_samples: held-out retrainings (2 per correlated pair) for the
            self-check; 0 skips it.
        seed: root of every random stream (``numpy.random.SeedSequence(seed)``).
        regularization: ``ridge`` or ``lasso`` (``datamodel`` only).
        validation_fraction: share of the M retrainings held out to choose the
            regularisation strength; the final fit uses all M.
        n_lambdas: size of the log-spaced regularisation grid (plus 0 for ridge).
        check_degree: degree D of the self-check's Chebyshev node functional.
        check_radius: its largest node rho (nodes span ``[-min(r, rho_max), r]``).
            The default D = 2, r = 0.5 has ``||w||_1 = 3.3`` and bias
            ``sum_{k>=3} s_k B_k`` with ``0 <= s_k <= 0.19``: it can only
            overstate err (at p = 1/2), by at most 0.19 B_{>=3}.
        delta: failure probability of the intervals and of the epsilon search.
        planning: planner mode used for the smallest acceptable epsilon.
        damping: influence functions: Tikhonov damping added to the Hessian
            (Koh & Liang 2017 §4.2); None means the task's default (0 for
            ``logreg``, 0.05 for the non-convex ``mlp``).
        cg_iterations: influence functions on ``mlp``: conjugate-gradient cap.
        chunk_size: models per training chunk.
        options: the method's own options: an instance of its ``options_class``
            or a mapping of its fields; None builds them from the shortcut
            fields above (``regularization`` .. ``cg_iterations``).
    """

    method: str
    samples: int
    check_samples: int = 2000
    seed: int = 0
    regularization: Regularization = "ridge"
    validation_fraction: float = 0.1
    n_lambdas: int = 24
    check_degree: int = 2
    check_radius: float = 0.5
    delta: float = 0.05
    planning: Literal["practical", "rigorous"] = "practical"
    damping: float | None = None
    cg_iterations: int = 200
    chunk_size: int = 512
    options: Any = None

    def __post_init__(self) -> None:
        check_method(self.method)
        for name in ("samples", "check_samples", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
        if self.seed >= 2**63:
            raise InvalidArgument(f"seed must be < 2**63, got {self.seed}")
        if self.chunk_size < 1:
            raise InvalidArgument(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.check_samples and self.check_samples < 8:
            raise InvalidArgument(
                f"check_samples must be 0 (no self-check) or >= 8, got {self.check_samples}"
            )
        _check_shortcuts(self)
        if self.regularization == "lasso" and self.method != "datamodel":
            raise InvalidArgument("regularization 'lasso' applies to the datamodel method only")
        if not 2 <= self.check_degree <= 14:
            raise InvalidArgument(f"check_degree must lie in [2, 14], got {self.check_degree}")
        if not 0.0 < self.check_radius <= 1.0:
            raise InvalidArgument(f"check_radius must lie in (0, 1], got {self.check_radius}")
        if not 0.0 < self.delta < 1.0:
            raise InvalidArgument(f"delta must lie in (0, 1), got {self.delta}")
        if self.planning not in ("practical", "rigorous"):
            raise InvalidArgument(
                f"planning must be 'practical' or 'rigorous', got {self.planning!r}"
            )
        if self.options is not None:
            changed = [
                f.name
                for f in fields(self)
                if f.name in SHORTCUTS and getattr(self, f.name) != f.default
            ]
            if changed:
                raise InvalidArgument(
                    f"give the method's options either as options or as the shortcut fields, "
                    f"not both (shortcuts set: {', '.join(changed)})"
                )
        self.method_options()  # the method validates its own options

    def method_options(self) -> Any:
        """The method's options of this run (see ``options``), validated by the method."""
        return get_method(self.method).resolve_options(self)

    def check_budget(self, n_items: int) -> None:
        """Raise :class:`InvalidArgument` if ``samples`` is below :func:`min_samples` for N."""
        need = min_samples(self.method, n_items)
        if self.samples < need:
            raise InvalidArgument(
                f"--samples M={self.samples} is too small for N={n_items} items with method "
                f"{self.method!r}: need M >= {need}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field; ``options`` holds the resolved method options."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        method = get_method(self.method)
        out["options"] = method.describe_options(method.resolve_options(self))
        plain: dict[str, Any] = asdict(_Plain(out))["value"]
        return plain


#: The flat shortcut fields of the built-in methods' options.
SHORTCUTS: tuple[str, ...] = (
    "regularization",
    "validation_fraction",
    "n_lambdas",
    "damping",
    "cg_iterations",
)


def _check_shortcuts(config: AttributionConfig) -> None:
    """Validate the shortcut fields by the options classes that own their rules."""
    DatamodelOptions(
        regularization=config.regularization,
        validation_fraction=config.validation_fraction,
        n_lambdas=config.n_lambdas,
    )
    InfluenceOptions(damping=config.damping, cg_iterations=config.cg_iterations)


@dataclass(frozen=True)
class _Plain:
    """Wraps a mapping so that :func:`dataclasses.asdict` deep-copies it."""

    value: dict[str, Any]
