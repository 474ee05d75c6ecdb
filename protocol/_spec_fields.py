"""Spec field machinery: numeric ranges, :func:`spec_field` and the scalar checks.

Private to :mod:`protocol.taskspec`, which re-exports the public names
(:class:`Range`, :func:`spec_field` and the common ranges); the checks raise
:class:`~protocol.errors.InvalidArgument` naming the field's dotted path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import InvalidArgument

__all__ = [
    "NON_NEGATIVE",
    "OPEN_UNIT",
    "POSITIVE",
    "SEED",
    "Range",
    "check_scalar",
    "spec_field",
]


@dataclass(frozen=True, kw_only=True)
class Range:
    """A numeric constraint ``lo (<|<=) value (<|<=) hi`` with a readable description.

    Attributes:
        lo: lower end, or ``None`` for unbounded.
        hi: upper end, or ``None`` for unbounded.
        lo_open: the lower end is excluded.
        hi_open: the upper end is excluded.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` satisfies the constraint (NaN never does)."""
        if math.isnan(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def describe(self, noun: str) -> str:
        """E.g. ``"a positive integer"``, ``"a number in (0, 1)"``."""
        if self.hi is None and self.lo == 0:
            return _a(f"{'positive' if self.lo_open else 'non-negative'} {noun}")
        if self.hi is None and self.lo is not None:
            return _a(f"{noun} {'>' if self.lo_open else '>='} {_num(self.lo)}")
        if self.lo is None and self.hi is not None:
            return _a(f"{noun} {'<' if self.hi_open else '<='} {_num(self.hi)}")
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return _a(f"{noun} in {left}{_num(self.lo)}, {_num(self.hi)}{right}")


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _num(value: float | None) -> str:
    """Integers exactly (``9007199254740991``), other numbers as ``%g``."""
    if value is not None and float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


POSITIVE = Range(lo=0, lo_open=True)
NON_NEGATIVE = Range(lo=0)
OPEN_UNIT = Range(lo=0, hi=1, lo_open=True, hi_open=True)
#: Seeds and other integers that enter the digest must be exact in I-JSON (< 2^53).
SEED = Range(lo=0, hi=2**53 - 1)


def spec_field(
    *,
    default: Any = dataclasses.MISSING,
    check: Range | None = None,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """Declare a spec field with an optional numeric range or string choices.

    Args:
        default: the value used when the field is omitted; no default makes it required.
        check: numeric constraint for ``int``/``float`` fields (each element of a tuple).
        choices: allowed values of a ``str`` field.
        doc: one-line description (used by ``docs/tasks.md``-style listings).
    """
    meta = {"check": check, "choices": choices, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_scalar(where: str, tp: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    """Type- and range-check one scalar; return it normalised (int -> float for floats)."""
    check: Range | None = meta.get("check")
    choices: tuple[str, ...] | None = meta.get("choices")
    if tp is bool:
        if not isinstance(value, bool):
            raise InvalidArgument(f"{where}: expected a boolean, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: expected a string, got {value!r}")
        if choices is not None and value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise InvalidArgument(f"{where}: expected one of {allowed}, got {value!r}")
        return value
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or (check is not None and not check.contains(value)):
            expected = check.describe("integer") if check else "an integer"
            raise InvalidArgument(f"{where}: expected {expected}, got {value!r}")
        return value
    if tp is float:
        ok = _is_number(value) and math.isfinite(value)
        if not ok or (check is not None and not check.contains(float(value))):
            expected = check.describe("number") if check else "a finite number"
            raise InvalidArgument(f"{where}: expected {expected}, got {value!r}")
        return float(value)
    raise TypeError(f"unsupported spec field type {tp!r} at {where}")  # a bug in a spec class
