"""What an attribution method is to the pipeline: a name, its options, a budget and ``fit``.

A method is a subclass of :class:`Method` registered by name
(:mod:`prover.attribution.registry`).  :func:`prover.attribution.attribute`
looks the configured name up, resolves the method's own options
(:meth:`Method.resolve_options`), checks the budget against
:meth:`Method.min_samples`, calls :meth:`Method.fit` with a :class:`FitContext`
(the task, the random streams, and retraining through the farm and the result
store) and turns the returned :class:`MethodFit` into a scores file.

Every method returns the same type, :class:`MethodFit`: the pm-encoding
intercepts and scores and a JSON-ready ``meta`` mapping (written as
``meta["fit"]`` of the scores file).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from prover.attribution.sampling import Streams, draw_fit_design
from prover.tasks.base import Task

__all__ = ["FitContext", "Method", "MethodFit", "NoOptions", "OptionsSource"]

FloatArray = NDArray[np.float64]
Log = Callable[[str], object]
#: Retrains ``(x (n, N) int8 pm, seeds (n,) uint64)`` and returns the outputs ``(n, Z)``.
Retrain = Callable[[NDArray[np.int8], NDArray[np.uint64]], FloatArray]


@dataclass(frozen=True, kw_only=True)
class MethodFit:
    """What every method's :meth:`Method.fit` returns.

    Attributes:
        theta0: float64 ``(Z,)`` intercepts.
        theta: float64 ``(Z, N)`` scores in the pm encoding.
        meta: JSON-ready details of the fit (``meta["fit"]`` of the scores file).
    """

    theta0: FloatArray
    theta: FloatArray
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    """Options of a method that has none."""


@dataclass(kw_only=True)
class FitContext:
    """Everything a method may use while fitting.

    Attributes:
        task: the task (``n_items``, ``n_outputs``, ``p``, ``train_batch``, hooks).
        samples: M, the retraining budget of the fit (already checked against
            :meth:`Method.min_samples`).
        streams: the run's named random streams (``prover/attribution/sampling.py``).
        base_dir: the task file's directory, or None.
        log: receives one line per stage.
        retrain: trains models through the farm (result store, executor).
        seconds: the run's timings; :meth:`train` adds to ``"train_fit"``.
    """

    task: Task
    samples: int
    streams: Streams
    retrain: Retrain
    base_dir: Path | None = None
    log: Log = print
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def p(self) -> float:
        """Inclusion probability of B_p."""
        return self.task.p

    def train(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> FloatArray:
        """Outputs ``(n, Z)`` of models trained on ``x`` with ``seeds`` (store-aware, timed)."""
        t0 = time.perf_counter()
        try:
            return self.retrain(x, seeds)
        finally:
            self.seconds["train_fit"] = self.seconds.get("train_fit", 0.0) + (
                time.perf_counter() - t0
            )

    def fit_design(self) -> tuple[NDArray[np.int8], FloatArray]:
        """The M fitting subsets from B_p (stream ``fit_subsets``/``fit_seeds``) and their outputs.

        The same rows for the same seed and every larger M, so a rerun with the
        same result store retrains nothing twice.
        """
        x, seeds = draw_fit_design(self.streams, self.samples, self.task.n_items, self.p)
        self.log(f"training {self.samples} models on B_p subsets (p={self.p}) for the fit")
        return x, self.train(x, seeds)


class OptionsSource(Protocol):
    """What :meth:`Method.resolve_options` reads of a run's configuration.

    Its ``options`` and, by name, its shortcut fields (:attr:`Method.config_fields`):
    :class:`~prover.attribution.AttributionConfig` is one (this module does not
    import it: the configuration builds on the methods, not the other way round).
    """

    @property
    def options(self) -> Any: ...


class Method(abc.ABC):
    """An attribution method; subclass it and register it (``docs/architecture.md``).

    Class attributes:
        name: the registry name (``--method``); letters, digits, ``_ . + -``.
        options_class: a frozen dataclass of the method's own options (its
            ``__post_init__`` validates them); :class:`NoOptions` if none.
        config_fields: names of :class:`~prover.attribution.AttributionConfig`
            fields that are shortcuts for fields of the same name of
            ``options_class`` (read when the config gives no ``options``).
        uses_samples: whether ``fit`` retrains on B_p subsets (``--samples``).
    """

    name: ClassVar[str]
    options_class: ClassVar[type[Any]] = NoOptions
    config_fields: ClassVar[tuple[str, ...]] = ()
    uses_samples: ClassVar[bool] = True

    def min_samples(self, n_items: int) -> int:
        """Fewest fitting retrainings M this method accepts for N items (default 0)."""
        return 0

    @abc.abstractmethod
    def fit(self, ctx: FitContext, options: Any) -> MethodFit:
        """Compute the scores.

        Args:
            ctx: task, budget, random streams, retraining.
            options: an instance of :attr:`options_class`.
        """

    def resolve_options(self, config: OptionsSource) -> Any:
        """The options of this run: ``config.options`` or, if None, the config's shortcuts.

        ``config.options`` may be an instance of :attr:`options_class` or a
        mapping of its field names.

        Raises:
            InvalidArgument: options of another type, or unknown or invalid fields.
        """
        given = config.options
        if given is None:
            given = {name: getattr(config, name) for name in self.config_fields}
        if isinstance(given, self.options_class):
            return given
        if not isinstance(given, Mapping):
            raise InvalidArgument(
                f"options of method {self.name!r} must be a {self.options_class.__name__} "
                f"or a mapping of its fields, got {type(given).__name__}"
            )
        known = {f.name for f in dataclasses.fields(self.options_class)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidArgument(
                f"method {self.name!r} has no option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known)) or '(none)'}"
            )
        return self.options_class(**given)

    def describe_options(self, options: Any) -> dict[str, Any]:
        """JSON-ready mapping of ``options`` (recorded in ``meta["config"]["options"]``)."""
        return dataclasses.asdict(options)
