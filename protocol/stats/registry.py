"""The statistics by name: the one place that chooses a statistic.

Every caller — the Verifier (committed, local and paper audits), the Prover's
self-check and budget line, the benches and the sweeps — reaches a statistic
through :func:`get` (by name) or :func:`resolve` (by the request's mode,
planning and estimator when no name is given), and plans with
:func:`make_plan`.  :data:`DEFAULT` is the statistic an audit uses unless
told otherwise; a mode or planning it does not serve falls back to the first
registered statistic that does.

Adding a statistic: implement :class:`protocol.stats.base.Statistic` in one
module and :func:`register` it (built-ins are registered at the bottom).
"""

from __future__ import annotations

import dataclasses

from protocol.errors import InvalidArgument
from protocol.plan_types import Estimator, Plan, PlanRequest
from protocol.stats.base import Statistic
from protocol.stats.clipped_gap import ClippedGap
from protocol.stats.gap import DirectGap
from protocol.stats.residual import PaperResidual
from protocol.stats.ustat import UStatistic

__all__ = [
    "DEFAULT",
    "check_named",
    "default_estimator",
    "default_statistic",
    "get",
    "make_plan",
    "names",
    "register",
    "resolve",
    "statistic_of",
    "unregister",
]

_REGISTRY: dict[str, Statistic] = {}

#: The statistic an audit uses unless told otherwise.
DEFAULT = "u-statistic"


def register(statistic: Statistic) -> Statistic:
    """Add ``statistic`` under its name; :class:`InvalidArgument` if the name is taken."""
    name = statistic.name
    if not name or name in _REGISTRY:
        raise InvalidArgument(f"statistic name {name!r} is empty or already registered")
    if not statistic.estimators or not statistic.plannings:
        raise InvalidArgument(f"statistic {name!r} must serve an estimator and a planning")
    _REGISTRY[name] = statistic
    return statistic


def unregister(name: str) -> None:
    """Remove a statistic (tests register their own); the built-ins stay."""
    if name in _BUILT_IN_NAMES:
        raise InvalidArgument(f"the built-in statistic {name!r} cannot be removed")
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Registered names, in registration order (the CLI's choices)."""
    return tuple(_REGISTRY)


def get(name: str) -> Statistic:
    """The statistic called ``name``; :class:`InvalidArgument` listing the names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown statistic {name!r}; registered: {', '.join(_REGISTRY)}"
        ) from None


def _serves(s: Statistic, mode: str, planning: str) -> bool:
    return s.layout.mode == mode and planning in s.plannings


def default_statistic(mode: str, planning: str) -> Statistic:
    """:data:`DEFAULT` if it serves ``(mode, planning)``, else the first statistic that does."""
    default = _REGISTRY[DEFAULT]
    if _serves(default, mode, planning):
        return default
    for s in _REGISTRY.values():
        if _serves(s, mode, planning):
            return s
    raise InvalidArgument(f"no registered statistic serves mode {mode!r} with {planning!r}")


def default_estimator(mode: str, planning: str) -> Estimator:
    """The estimator ``auto`` resolves to: the default statistic's first estimator."""
    return default_statistic(mode, planning).estimators[0]


def resolve(mode: str, planning: str, estimator: str, name: str | None = None) -> Statistic:
    """The statistic of an audit: by ``name``, else the one serving mode, planning, estimator.

    Raises:
        InvalidArgument: no registered statistic serves that combination (the
            message is that of a statistic which takes the estimator), or the
            named one does not serve the mode.
    """
    if name is not None:
        return check_named(name, mode, planning, estimator)
    for s in _REGISTRY.values():
        if _serves(s, mode, planning) and estimator in s.estimators:
            return s
    for s in _REGISTRY.values():
        if estimator in s.estimators:
            raise InvalidArgument(
                f"the {estimator} estimator belongs to the {s.name} statistic, which serves "
                f"{s.layout.mode} mode only, with {' or '.join(s.plannings)} planning"
            )
    return default_statistic(mode, planning)  # its check() says what is wrong


def check_named(name: str, mode: str, planning: str, estimator: str = "auto") -> Statistic:
    """The statistic ``name`` if it serves ``mode``, ``planning`` and ``estimator``.

    ``estimator`` ``auto``: its own default (the first of its estimators).

    Raises:
        InvalidArgument: unknown name, or a mode, planning or estimator it does not serve.
    """
    s = get(name)
    if s.layout.mode != mode or planning not in s.plannings:
        raise InvalidArgument(
            f"the {name} statistic runs in {s.layout.mode} mode with "
            f"{' or '.join(s.plannings)} planning, not {mode} mode with {planning} planning"
        )
    if estimator != "auto" and estimator not in s.estimators:
        raise InvalidArgument(
            f"the {name} statistic takes the estimator {' or '.join(s.estimators)}, "
            f"not {estimator!r}"
        )
    return s


def statistic_of(plan: Plan) -> Statistic:
    """The statistic that made ``plan``."""
    return get(plan.statistic)


def make_plan(request: PlanRequest) -> Plan:
    """Plan an audit with the request's statistic; :class:`InvalidArgument` if none fits.

    The plan records the statistic's name, its split of delta and its assumptions.
    """
    s = resolve(request.mode, request.planning, request.estimator, request.statistic)
    s.check(request)
    plan = s.plan(request)
    plan = dataclasses.replace(plan, statistic_name=s.name)
    return dataclasses.replace(
        plan, delta_split=s.delta_split(plan), assumptions=s.assumptions(plan)
    )


_BUILT_IN = (ClippedGap(), DirectGap(), PaperResidual(), UStatistic())
for _statistic in _BUILT_IN:
    register(_statistic)
_BUILT_IN_NAMES = frozenset(s.name for s in _BUILT_IN)
