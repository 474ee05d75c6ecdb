"""No import cycles among the modules of ``protocol``, ``prover`` and ``verifier``.

Every ``import`` / ``from ... import`` statement counts, wherever it is: at the top
of a module, inside a function (a function-local import that dodges a cycle at
import time still ties the two modules together) and under ``if TYPE_CHECKING:``.
Each module then has a clear place in the layers: a module may import only modules
below it.

How a statement becomes edges of the module graph:

* ``import a.b.c`` and ``from a.b.c import name``: an edge to ``a.b.c`` — or, where
  ``name`` is itself a submodule (``from a.b import c``), to ``a.b.c``.
* ``from a.b import name`` where ``name`` is not a submodule (a name defined or
  re-exported by ``a/b/__init__.py``): an edge to the package ``a.b`` only.
* Relative imports are resolved against the importing module's package.
* The parent packages that Python initialises implicitly before a submodule
  (``a`` and ``a.b`` for ``import a.b.c``) are *not* edges: a package's
  ``__init__`` re-exporting its submodules would otherwise always close a cycle.
  An *explicit* import of a package by one of its own submodules
  (``from protocol import x`` inside ``protocol/plan.py``) is an edge, and with
  the package's ``__init__`` importing that submodule it is a real cycle (``x``
  may not exist yet while the ``__init__`` is half-run).
* ``importlib.import_module`` (lazy registries, a package's ``__getattr__``) is not
  a statement and not an edge.

A strongly connected component of more than one module, or a module importing
itself, fails the test with its modules and the import statements inside it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "prover", "verifier")

#: ``(importing module, imported module) -> ["path:line", ...]``
Edges = dict[tuple[str, str], list[str]]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under ``root/<package>``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            modules[_module_name(path, root)] = path
    return modules


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the project, if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: Mapping[str, Path]
) -> set[str]:
    """The project modules that one import statement of ``module`` imports."""
    if isinstance(node, ast.Import):
        targets = {_known(alias.name, modules) for alias in node.names}
        return {t for t in targets if t is not None}
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        if node.level > 1:
            package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, node.module] if node.module else package)
    else:
        base = node.module or ""
    found: set[str] = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            found.add(submodule)
        else:
            target = _known(base, modules)
            if target is not None:
                found.add(target)
    return found


def import_edges(modules: Mapping[str, Path], root: Path) -> Edges:
    """Every intra-project import, with where it is written."""
    edges: Edges = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(module, is_package, node, modules):
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    edges.setdefault((module, target), []).append(where)
    return edges


def strongly_connected(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def import_cycles(modules: Mapping[str, Path], edges: Edges) -> list[str]:
    """One description per cycle: its modules and the imports among them."""
    found = []
    for component in strongly_connected(modules, edges):
        members = set(component)
        inside = sorted(
            (a, b, where)
            for (a, b), where in edges.items()
            if a in members and b in members and (len(members) > 1 or a == b)
        )
        if not inside:
            continue
        lines = [f"cycle among {', '.join(component)}:"]
        lines += [f"  {a} -> {b}  ({', '.join(where)})" for a, b, where in inside]
        found.append("\n".join(lines))
    return found


def test_no_import_cycles() -> None:
    modules = find_modules(REPO, PACKAGES)
    assert len(modules) > 100  # the packages are there
    edges = import_edges(modules, REPO)
    assert ("verifier.driver", "verifier.config") in edges  # the scan sees imports
    cycles = import_cycles(modules, edges)
    assert not cycles, "\n\n".join(cycles)


def test_the_cycle_check_finds_planted_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        # a re-exporting __init__ and submodules importing each other: not a cycle
        "__init__.py": "from pkg.low import thing\n",
        "low.py": "thing = 1\n",
        "mid.py": "from . import low\nimport pkg.low\n",
        # a cycle closed by a function-local import
        "a.py": "from pkg.b import f\n",
        "b.py": "def f():\n    from .a import g\n",
        # a cycle through TYPE_CHECKING and a relative import two levels up
        "sub/__init__.py": "",
        "sub/c.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..d import D\n"
        ),
        "d.py": "from pkg.sub import c\n",
        # a submodule importing a name from its own package's __init__
        "e.py": "from pkg import thing\n",
        # a self-import
        "s.py": "import pkg.s\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text, encoding="utf-8")
    modules = find_modules(tmp_path, ["pkg"])
    edges = import_edges(modules, tmp_path)
    assert ("pkg.mid", "pkg.low") in edges
    assert ("pkg.e", "pkg") in edges  # a re-exported name: an edge to the package only
    assert ("pkg.sub.c", "pkg.d") in edges
    assert ("pkg.d", "pkg.sub.c") in edges
    cycles = import_cycles(modules, edges)
    heads = sorted(c.splitlines()[0] for c in cycles)
    assert heads == [
        "cycle among pkg.a, pkg.b:",
        "cycle among pkg.d, pkg.sub.c:",
        "cycle among pkg.s:",
    ], cycles
    # the package importing e (which imports the package) closes a cycle
    (pkg / "__init__.py").write_text("from pkg.low import thing\nfrom pkg import e\n")
    cycles = import_cycles(modules, import_edges(modules, tmp_path))
    assert "cycle among pkg, pkg.e:" in [c.splitlines()[0] for c in cycles]
