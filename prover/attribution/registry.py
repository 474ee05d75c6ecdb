"""Attribution methods by name: built-ins, in-process registrations and ``pacda.methods``.

A method is a :class:`~prover.attribution.method.Method` subclass whose
``name`` is its registry name.  Lookup order for a name:

1. the built-ins ``datamodel``, ``empirical-influence``, ``influence-function``,
   ``trak``, and those backed by attribution libraries, ``kronfluence-ekfac``,
   ``dattri-if``, ``dattri-trak``, ``trak-library``
   (:mod:`prover.attribution.libraries.methods`); they cannot be shadowed;
2. classes registered in this process with :func:`register_method`;
3. entry points of the group ``pacda.methods`` in installed distributions,
   whose name is the method name and whose value is ``"module:Class"``, e.g. in
   the plugin's ``pyproject.toml``::

       [project.entry-points."pacda.methods"]
       my-method = "my_package.attribution:MyMethod"

Entry points are looked up on demand (never cached), so a plugin installed
while a process runs is seen by its next lookup.  Built-in modules are
imported only when their method is resolved.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Mapping
from typing import Any

from protocol.errors import InvalidArgument
from prover.attribution.method import Method

__all__ = [
    "BUILTIN_METHODS",
    "ENTRY_POINT_GROUP",
    "get_method",
    "method_class",
    "method_names",
    "register_method",
    "unregister_method",
]

ENTRY_POINT_GROUP = "pacda.methods"

_BUILTINS: Mapping[str, str] = {
    "datamodel": "prover.attribution.datamodel:DatamodelMethod",
    "empirical-influence": "prover.attribution.empirical:EmpiricalInfluenceMethod",
    "influence-function": "prover.attribution.influence:InfluenceFunctionMethod",
    "trak": "prover.attribution.trak:TrakMethod",
    # backed by attribution libraries (installed with pacda[libraries]; kronfluence --no-deps)
    "kronfluence-ekfac": "prover.attribution.libraries.methods:KronfluenceEkfacMethod",
    "dattri-if": "prover.attribution.libraries.methods:DattriIfMethod",
    "dattri-trak": "prover.attribution.libraries.methods:DattriTrakMethod",
    "trak-library": "prover.attribution.libraries.methods:TrakLibraryMethod",
}
#: The built-in method names, in the order of ``--help``.
BUILTIN_METHODS: tuple[str, ...] = tuple(_BUILTINS)
_REGISTERED: dict[str, type[Method]] = {}
# What protocol.scores accepts as a method name (letters, digits and '_.+-', at most 64).
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            f"attribution method names are 1 to 64 letters, digits and '_.+-', got {name!r}"
        )


def _check_method_class(name: str, obj: Any, origin: str) -> type[Method]:
    """``obj`` must be a concrete Method subclass whose ``name`` is ``name``."""
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise InvalidArgument(
            f"attribution method {name!r}: {origin} is not a Method subclass: {obj!r}"
        )
    declared = getattr(obj, "name", None)
    if declared != name:
        raise InvalidArgument(
            f"attribution method {name!r}: {origin} registers {obj.__name__}, whose name "
            f"is {declared!r}"
        )
    if getattr(obj, "__abstractmethods__", None):
        raise InvalidArgument(
            f"attribution method {name!r}: {obj.__name__} does not implement "
            f"{', '.join(sorted(obj.__abstractmethods__))}"
        )
    return obj


def register_method(method_cls: type[Method], *, replace: bool = False) -> None:
    """Register ``method_cls`` under its ``name`` in this process.

    Raises:
        InvalidArgument: the name is a built-in, already registered to another
            class (unless ``replace``), malformed, or the class is not a
            concrete :class:`Method`.
    """
    if not (isinstance(method_cls, type) and issubclass(method_cls, Method)):
        raise InvalidArgument(f"register_method: {method_cls!r} is not a Method subclass")
    name = getattr(method_cls, "name", None)
    if not isinstance(name, str):
        raise InvalidArgument(f"register_method: {method_cls.__name__}.name must be a string")
    _check_name(name)
    if name in _BUILTINS:
        raise InvalidArgument(
            f"attribution method {name!r} is a built-in method and cannot be replaced"
        )
    if name in _REGISTERED and not replace and _REGISTERED[name] is not method_cls:
        raise InvalidArgument(
            f"attribution method {name!r} is already registered to {_REGISTERED[name].__qualname__}"
        )
    _REGISTERED[name] = _check_method_class(name, method_cls, "register_method")


def unregister_method(name: str) -> None:
    """Remove an in-process registration (no-op if absent)."""
    _REGISTERED.pop(name, None)


def _entry_points(name: str | None = None) -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in eps if name is None or ep.name == name]


def method_names() -> list[str]:
    """Every method name resolvable now: the built-ins first, then the others sorted."""
    others = (set(_REGISTERED) | {ep.name for ep in _entry_points()}) - set(_BUILTINS)
    return [*BUILTIN_METHODS, *sorted(others)]


def method_class(name: str) -> type[Method]:
    """The Method subclass registered as ``name`` (see the module docstring).

    Raises:
        InvalidArgument: unknown name, ambiguous or broken plugin.
    """
    if name in _BUILTINS:
        module, _, attr = _BUILTINS[name].partition(":")
        return _check_method_class(name, getattr(importlib.import_module(module), attr), "built-in")
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_points(name)
    values = sorted({ep.value for ep in eps})
    if len(values) > 1:
        raise InvalidArgument(
            f"attribution method {name!r} is provided by several '{ENTRY_POINT_GROUP}' entry "
            f"points: {', '.join(values)}"
        )
    if not eps:
        raise InvalidArgument(
            f"unknown attribution method {name!r}; known: {', '.join(method_names())}"
        )
    try:
        obj = eps[0].load()
    except (ImportError, AttributeError) as err:
        raise InvalidArgument(
            f"attribution method {name!r}: the plugin {eps[0].value} failed to load: "
            f"{type(err).__name__}: {err}"
        ) from err
    return _check_method_class(name, obj, f"entry point {eps[0].value}")


def get_method(name: str) -> Method:
    """An instance of the method registered as ``name``."""
    return method_class(name)()
