"""The audit's statistics: one interface (:class:`Statistic`), one registry.

Built in: ``clipped-gap`` (the default: :mod:`protocol.stats.clipped_gap`),
``gap`` (the direct gap, :mod:`protocol.stats.gap`) and ``residual`` (paper
mode's Algorithm 1, :mod:`protocol.stats.residual`).  See
:mod:`protocol.stats.base` for what a statistic provides and
:mod:`protocol.stats.registry` for how one is chosen.
"""

from protocol.stats.base import AuditData, ChallengeLayout, Statistic
from protocol.stats.registry import (
    DEFAULT,
    check_named,
    default_estimator,
    default_statistic,
    get,
    make_plan,
    names,
    register,
    resolve,
    statistic_of,
    unregister,
)

__all__ = [
    "DEFAULT",
    "AuditData",
    "ChallengeLayout",
    "Statistic",
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
