"""Configuration of an attribution run: method, budget, self-check, randomness.

An :class:`AttributionConfig` is frozen, validated and written into the
``meta`` of every scores file it produced, so a scores file says exactly how
it was made (and a rerun with the same config and store trains nothing twice).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from protocol.errors import InvalidArgument

__all__ = [
    "METHODS",
    "AttributionConfig",
    "Method",
    "Regularization",
    "check_method",
    "min_samples",
]

Method = Literal["datamodel", "empirical-influence", "influence-function"]
Regularization = Literal["ridge", "lasso"]

#: Every method :func:`prover.attribution.attribute` knows, in the order of ``--help``.
METHODS: tuple[str, ...] = ("datamodel", "empirical-influence", "influence-function")


def check_method(method: str) -> Method:
    """Return ``method`` if known, else raise :class:`InvalidArgument` listing the known ones."""
    if method not in METHODS:
        raise InvalidArgument(f"unknown attribution method {method!r}; known: {', '.join(METHODS)}")
    return method  # type: ignore[return-value]


def min_samples(method: str, n_items: int) -> int:
    """Fewest fitting retrainings ``M`` a method accepts for N items.

    * ``datamodel``: ``N + 2`` — the least-squares problem has N + 1 unknowns,
      and one more equation leaves a residual degree of freedom (with fewer,
      the fit interpolates and its err is of the order of ``Var(f)``);
    * ``empirical-influence``: ``4`` (both classes of every item must also
      occur, checked on the drawn subsets);
    * ``influence-function``: ``0`` (no retraining).
    """
    check_method(method)
    if method == "datamodel":
        return n_items + 2
    if method == "empirical-influence":
        return 4
    return 0


@dataclass(frozen=True, kw_only=True)
class AttributionConfig:
    """How to compute and self-check attribution scores.

    Attributes:
        method: ``datamodel`` (Ilyas et al. 2022), ``empirical-influence``
            (Feldman & Zhang 2020) or ``influence-function`` (Koh & Liang 2017).
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
    """

    method: Method
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

    def __post_init__(self) -> None:
        check_method(self.method)
        for name in ("samples", "check_samples", "seed", "n_lambdas", "cg_iterations"):
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
        if self.regularization not in ("ridge", "lasso"):
            raise InvalidArgument(
                f"regularization must be 'ridge' or 'lasso', got {self.regularization!r}"
            )
        if self.regularization == "lasso" and self.method != "datamodel":
            raise InvalidArgument("regularization 'lasso' applies to the datamodel method only")
        if not 0.0 < self.validation_fraction < 0.5:
            raise InvalidArgument(
                f"validation_fraction must lie in (0, 0.5), got {self.validation_fraction}"
            )
        if self.n_lambdas < 1:
            raise InvalidArgument(f"n_lambdas must be >= 1, got {self.n_lambdas}")
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
        if self.damping is not None and not (self.damping >= 0.0 and math.isfinite(self.damping)):
            raise InvalidArgument(f"damping must be finite and >= 0, got {self.damping}")

    def check_budget(self, n_items: int) -> None:
        """Raise :class:`InvalidArgument` if ``samples`` is below :func:`min_samples` for N."""
        need = min_samples(self.method, n_items)
        if self.samples < need:
            raise InvalidArgument(
                f"--samples M={self.samples} is too small for N={n_items} items with method "
                f"{self.method!r}: need M >= {need}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field."""
        return asdict(self)
