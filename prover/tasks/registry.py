"""Task kinds: built-ins, in-process registrations and ``pacda.tasks`` entry points.

A *kind* names a :class:`~prover.tasks.base.Task` subclass that sets
``spec_class`` (its :class:`~protocol.taskspec.TaskSpec` subclass) and
implements ``from_spec``.  Lookup order for a kind name:

1. the built-ins ``synthetic``, ``logreg``, ``mlp``, ``ablation``, ``cnn`` (they
   cannot be shadowed);
2. classes registered in this process with :func:`register_task`;
3. entry points of the group ``pacda.tasks`` in installed distributions, whose
   name is the kind and whose value is ``"module:Class"``, e.g. in the plugin's
   ``pyproject.toml``::

       [project.entry-points."pacda.tasks"]
       my_kind = "my_package.tasks:MyTask"

Entry points are looked up on demand (never cached), so a plugin installed
while a process runs is seen by its next lookup.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument
from protocol.taskspec import TaskSpec, loads_task_toml, parse_task_table, read_task_toml
from prover.tasks.base import Task
from prover.tasks.specs import AblationSpec, CnnSpec, LogregSpec, MlpSpec, SyntheticSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "build_task",
    "known_kinds",
    "load_task",
    "load_task_text",
    "parse_task",
    "register_task",
    "task_class",
    "unregister_task",
]

ENTRY_POINT_GROUP = "pacda.tasks"

_BUILTINS: Mapping[str, str] = {
    "synthetic": "prover.tasks.synthetic:SyntheticTask",
    "logreg": "prover.tasks.logreg:LogregTask",
    "mlp": "prover.tasks.mlp:MlpTask",
    "ablation": "prover.tasks.ablation:AblationTask",
    "cnn": "prover.tasks.cnn:CnnTask",
}
_BUILTIN_SPECS: Mapping[str, type[TaskSpec]] = {
    "synthetic": SyntheticSpec,
    "logreg": LogregSpec,
    "mlp": MlpSpec,
    "ablation": AblationSpec,
    "cnn": CnnSpec,
}
_REGISTERED: dict[str, type[Task]] = {}


def _check_task_class(kind: str, obj: Any, origin: str) -> type[Task]:
    """``obj`` must be a Task subclass with a spec class for ``kind``."""
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise InvalidArgument(f"task.kind: {origin} for {kind!r} is not a Task subclass: {obj!r}")
    spec_class = obj.spec_class
    if not (isinstance(spec_class, type) and issubclass(spec_class, TaskSpec)):
        raise InvalidArgument(
            f"task.kind: {origin} for {kind!r}: {obj.__name__}.spec_class must be a "
            f"TaskSpec subclass, got {spec_class!r}"
        )
    if spec_class.kind_name not in (None, kind):
        raise InvalidArgument(
            f"task.kind: {origin} registers {obj.__name__} as {kind!r} but its spec class "
            f"declares kind {spec_class.kind_name!r}"
        )
    return obj


def _check_kind_name(kind: str) -> None:
    if not kind or not kind.replace("_", "a").replace("-", "a").isalnum() or not kind.isascii():
        raise InvalidArgument(
            f"task.kind: expected a name of letters, digits, '_' and '-', got {kind!r}"
        )


def register_task(kind: str, task_cls: type[Task], *, replace: bool = False) -> None:
    """Register ``task_cls`` under ``kind`` in this process.

    Raises:
        InvalidArgument: the name is a built-in, already registered (unless
            ``replace``), malformed, or the class lacks a valid ``spec_class``.
    """
    _check_kind_name(kind)
    if kind in _BUILTINS:
        raise InvalidArgument(f"task.kind: {kind!r} is a built-in kind and cannot be replaced")
    if kind in _REGISTERED and not replace and _REGISTERED[kind] is not task_cls:
        raise InvalidArgument(
            f"task.kind: {kind!r} is already registered to {_REGISTERED[kind].__qualname__}"
        )
    _REGISTERED[kind] = _check_task_class(kind, task_cls, "register_task")


def unregister_task(kind: str) -> None:
    """Remove an in-process registration (no-op if absent)."""
    _REGISTERED.pop(kind, None)


def _entry_points(kind: str | None = None) -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in eps if kind is None or ep.name == kind]


def known_kinds() -> list[str]:
    """Every kind name resolvable now, sorted."""
    names = set(_BUILTINS) | set(_REGISTERED) | {ep.name for ep in _entry_points()}
    return sorted(names)


def task_class(kind: str) -> type[Task]:
    """The Task subclass of ``kind`` (see the module docstring for the lookup order).

    Raises:
        InvalidArgument: unknown kind, ambiguous or broken plugin.
    """
    if kind in _BUILTINS:
        module, _, name = _BUILTINS[kind].partition(":")
        return _check_task_class(kind, getattr(importlib.import_module(module), name), "built-in")
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    eps = _entry_points(kind)
    values = sorted({ep.value for ep in eps})
    if len(values) > 1:
        raise InvalidArgument(
            f"task.kind: {kind!r} is provided by several '{ENTRY_POINT_GROUP}' entry points: "
            f"{', '.join(values)}"
        )
    if not eps:
        raise InvalidArgument(
            f"task.kind: unknown task kind {kind!r}; known kinds: {', '.join(known_kinds())} "
            f"(plugins register under the '{ENTRY_POINT_GROUP}' entry-point group)"
        )
    try:
        obj = eps[0].load()
    except (ImportError, AttributeError) as err:
        raise InvalidArgument(
            f"task.kind: the plugin for {kind!r} ({eps[0].value}) failed to load: "
            f"{type(err).__name__}: {err}"
        ) from err
    return _check_task_class(kind, obj, f"entry point {eps[0].value}")


def _spec_class(kind: str) -> type[TaskSpec]:
    if kind in _BUILTIN_SPECS:  # parse built-in kinds without importing torch
        return _BUILTIN_SPECS[kind]
    spec_class = task_class(kind).spec_class
    if spec_class is None:  # excluded by _check_task_class; keeps mypy informed
        raise InvalidArgument(f"task.kind: {kind!r} has no spec class")
    return spec_class


def parse_task(document: Mapping[str, Any]) -> TaskSpec:
    """The validated spec of a parsed task document (``{"task": {...}}``)."""
    return parse_task_table(document, _spec_class)


def build_task(spec: TaskSpec, *, base_dir: Path | None = None) -> Task:
    """Build the task of a validated spec (relative paths resolve against ``base_dir``)."""
    return task_class(spec.kind).from_spec(spec, base_dir=base_dir)


def load_task(path: str | Path) -> Task:
    """Read, validate and build a task file; relative data paths resolve next to it.

    ``functools.partial(load_task, path)`` is a picklable task factory for
    remote executors.
    """
    path = Path(path)
    return build_task(parse_task(read_task_toml(path)), base_dir=path.parent)


def load_task_text(text: str, *, base_dir: Path | None = None) -> Task:
    """Validate and build a task from TOML text."""
    return build_task(parse_task(loads_task_toml(text)), base_dir=base_dir)
