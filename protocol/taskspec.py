"""Declarative task specs: TOML parsing, validation and the task digest.

A task file is TOML with one ``[task]`` table and optional sub-tables
(``[task.data]``, ``[task.model]``, ``[task.train]``, ...)::

    [task]
    kind = "logreg"
    bound = 30.0
    output_tolerance = 1e-9
    weight_tolerance = 1e-9

    [task.train]
    steps = 200

A spec is a frozen keyword-only dataclass (a :class:`Section`); every field
carries its type and an optional constraint, and ``__post_init__`` checks both,
so a spec built in Python is validated exactly like one read from TOML.  A
failure raises :class:`~protocol.errors.InvalidArgument` whose message starts
with the dotted path of the field, e.g.
``task.model.hidden: expected a positive integer, got -3``.

Fields that are omitted take their declared default; the *resolved* spec (all
defaults filled in, :meth:`Section.to_dict`) is what the task digest covers::

    digest = sha256(canonical_json({"spec": resolved, "dataset": H, "pacda_version": v}))

where ``H`` is the content hash of the dataset arrays (:func:`array_digest`)
and ``v`` the pacda version (docs/design.md §2, step 1).  This module is pure: it never
imports torch.  Kind-specific spec classes live next to their tasks; which
class a ``kind`` resolves to is decided by the caller-supplied resolver (the
Prover's registry, ``prover.tasks.registry``).  The field machinery (:class:`Range`,
:func:`spec_field`, the scalar checks) lives in :mod:`protocol._spec_fields` and is
re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from protocol._spec_fields import (
    NON_NEGATIVE,
    OPEN_UNIT,
    POSITIVE,
    SEED,
    Range,
    check_scalar,
    spec_field,
)
from protocol.canonical_json import canonical_json, sha256_digest
from protocol.errors import InvalidArgument

__all__ = [
    "NON_NEGATIVE",
    "OPEN_UNIT",
    "POSITIVE",
    "SEED",
    "Range",
    "Section",
    "TaskSpec",
    "array_digest",
    "loads_task_toml",
    "pacda_version",
    "parse_task_table",
    "read_task_toml",
    "spec_field",
    "task_digest",
]


def _type_name(tp: Any) -> str:
    names = {int: "integer", float: "number", str: "string", bool: "boolean"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}s"
    if isinstance(tp, type) and issubclass(tp, Section):
        return "table"
    return str(tp)


@dataclass(frozen=True, kw_only=True)
class Section:
    """Base of every spec table: typed, range-checked, frozen fields.

    Subclasses set ``path`` (the dotted TOML path of the table, e.g.
    ``"task.model"``) and declare fields with :func:`spec_field`.  Supported
    field types: ``int``, ``float``, ``str``, ``bool``, ``tuple[int, ...]``,
    ``tuple[float, ...]`` and nested :class:`Section` subclasses.  Override
    :meth:`check` for cross-field conditions (raise with the field's path).
    """

    path: ClassVar[str] = "task"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            where = f"{self.path}.{f.name}"
            tp = hints[f.name]
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, self._check_value(where, tp, value, f.metadata))
        self.check()

    @staticmethod
    def _check_value(where: str, tp: Any, value: Any, meta: Mapping[str, Any]) -> Any:
        if typing.get_origin(tp) is tuple:
            (elem,) = (a for a in typing.get_args(tp) if a is not Ellipsis)
            if not isinstance(value, list | tuple):
                raise InvalidArgument(f"{where}: expected a {_type_name(tp)}, got {value!r}")
            return tuple(check_scalar(f"{where}[{i}]", elem, v, meta) for i, v in enumerate(value))
        if isinstance(tp, type) and issubclass(tp, Section):
            if not isinstance(value, tp):
                raise InvalidArgument(f"{where}: expected a {tp.__name__}, got {value!r}")
            return value
        return check_scalar(where, tp, value, meta)

    def check(self) -> None:
        """Cross-field validation hook; the default accepts everything."""

    # ----------------------------------------------------------------- TOML
    @classmethod
    def from_table(cls, table: Any) -> Self:
        """Build from a parsed TOML table, naming any bad field by its dotted path."""
        if not isinstance(table, Mapping):
            raise InvalidArgument(f"{cls.path}: expected a table, got {table!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for key in table:
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise InvalidArgument(f"{cls.path}.{key}: unknown field (known fields: {known})")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            tp = hints[name]
            nested = isinstance(tp, type) and issubclass(tp, Section)
            if name in table:
                kwargs[name] = tp.from_table(table[name]) if nested else table[name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidArgument(f"{cls.path}.{name}: missing required field")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The resolved table: every field, nested sections as dicts, tuples as lists."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                out[f.name] = value.to_dict()
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class TaskSpec(Section):
    """Fields every task declares (the ``[task]`` table).

    Attributes:
        kind: registry name of the task implementation.
        p: inclusion probability of B_p (docs/design.md §1), ``0 < p < 1``.
        bound: b; every output is clipped to ``[-b, b]``.
        output_tolerance: tau; a model trained alone and inside any batch agree
            on every output within tau (absolute).
        weight_tolerance: the same for the flat trained weights (max abs).
        n_outputs: Z, the number of scalar outputs.
        cuda_output_tolerance: tau when a run is on a GPU: a model trained on a
            CUDA device agrees with the same model trained on any other device
            (the CPU, another GPU) within this; the larger of it and
            ``output_tolerance`` applies (docs/tasks.md, "Tolerance per device class").
        cuda_weight_tolerance: the same for the weights.
    """

    kind_name: ClassVar[str | None] = None  # set by kind-specific subclasses

    kind: str = spec_field(doc="registry name of the task implementation")
    p: float = spec_field(default=0.5, check=OPEN_UNIT, doc="inclusion probability of B_p")
    bound: float = spec_field(check=POSITIVE, doc="outputs are clipped to [-bound, bound]")
    output_tolerance: float = spec_field(
        check=NON_NEGATIVE, doc="batch-vs-single agreement on outputs (absolute)"
    )
    weight_tolerance: float = spec_field(
        check=NON_NEGATIVE, doc="batch-vs-single agreement on weights (max abs)"
    )
    n_outputs: int = spec_field(check=POSITIVE, doc="Z, the number of scalar outputs")
    cuda_output_tolerance: float = spec_field(
        default=1e-6,
        check=NON_NEGATIVE,
        doc="agreement on outputs of a run on a GPU with one on any other device (absolute)",
    )
    cuda_weight_tolerance: float = spec_field(
        default=1e-6,
        check=NON_NEGATIVE,
        doc="the same for the weights (max abs)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind_name is not None and self.kind != self.kind_name:
            raise InvalidArgument(
                f"task.kind: expected {self.kind_name!r} for {type(self).__name__}, "
                f"got {self.kind!r}"
            )


def read_task_toml(path: Path) -> dict[str, Any]:
    """Parse a task file.

    Raises:
        InvalidArgument: the file cannot be read or is not valid TOML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidArgument(f"cannot read task file {path}: {err.strerror}") from err
    return loads_task_toml(text, name=str(path))


def loads_task_toml(text: str, *, name: str = "<task text>") -> dict[str, Any]:
    """Parse task text; ``name`` labels the source in error messages.

    Raises:
        InvalidArgument: the text is not valid TOML.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InvalidArgument(f"{name}: not valid TOML: {err}") from err


def parse_task_table(
    document: Mapping[str, Any], resolve_kind: Callable[[str], type[TaskSpec]]
) -> TaskSpec:
    """Turn a parsed task document into the spec of its kind.

    Args:
        document: the parsed TOML (a mapping with exactly one key, ``task``).
        resolve_kind: maps a kind name to its spec class; raises
            :class:`InvalidArgument` naming ``task.kind`` for an unknown kind.
    """
    extra = sorted(k for k in document if k != "task")
    if extra:
        raise InvalidArgument(
            f"{extra[0]}: unknown top-level key; a task file holds a single [task] table"
        )
    if "task" not in document:
        raise InvalidArgument("task: missing the [task] table")
    table = document["task"]
    if not isinstance(table, Mapping):
        raise InvalidArgument(f"task: expected a table, got {table!r}")
    if "kind" not in table:
        raise InvalidArgument("task.kind: missing required field")
    kind = table["kind"]
    if not isinstance(kind, str):
        raise InvalidArgument(f"task.kind: expected a string, got {kind!r}")
    return resolve_kind(kind).from_table(table)


def array_digest(arrays: Mapping[str, NDArray[Any]]) -> str:
    """Content hash of named arrays: ``sha256:<hex>``.

    The hash covers, per name in sorted order, a canonical-JSON header
    ``{"name", "dtype" (numpy ``str``, little-endian), "shape"}`` and the
    C-order little-endian bytes, so it is independent of memory layout and host
    byte order.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        header = {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)}
        h.update(canonical_json(header))
        h.update(arr.tobytes(order="C"))
    return "sha256:" + h.hexdigest()


def pacda_version() -> str:
    """The installed pacda version (``"0+unknown"`` when pacda is not installed)."""
    try:
        return importlib.metadata.version("pacda")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def task_digest(spec: TaskSpec, dataset_digest: str, version: str | None = None) -> str:
    """The task digest both parties compare at Hello (docs/design.md §2, step 1).

    ``sha256(canonical_json({"spec": spec.to_dict(), "dataset": dataset_digest,
    "pacda_version": version}))`` with ``version`` defaulting to :func:`pacda_version`.
    """
    return sha256_digest(
        {
            "spec": spec.to_dict(),
            "dataset": dataset_digest,
            "pacda_version": pacda_version() if version is None else version,
        }
    )
