"""``import protocol`` must work with torch and grpc unavailable (docs/design.md §3), and
``verifier/`` imports only the protocol, the tasks and the training engine of this repository."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'grpc'):
            raise ImportError('blocked for the purity test: ' + name)
        return None
sys.meta_path.insert(0, Block())
import protocol
for mod in pkgutil.iter_modules(protocol.__path__):
    importlib.import_module('protocol.' + mod.name)
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'grpc'))
print('LOADED', loaded)
"""


def test_protocol_imports_without_torch_or_grpc() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_the_blocker_really_blocks() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("import protocol\n", "import torch\n")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "blocked for the purity test: torch" in result.stderr


#: What ``verifier/`` may import from this repository: the protocol, tasks and the training
#: engine (a Verifier retrains models), never the Prover's service, attribution or store.
VERIFIER_MAY_IMPORT = ("protocol", "prover.tasks", "prover.engine", "verifier", "pacda")


def _repo_imports(path: Path) -> set[str]:
    """Every module a file imports whose top-level package is this repository's."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in ("protocol", "prover", "verifier", "pacda")}


def test_verifier_imports_only_protocol_tasks_and_engine() -> None:
    root = Path(__file__).resolve().parents[2] / "verifier"
    files = sorted(root.rglob("*.py"))
    assert len(files) > 10  # the package is there
    bad = {
        f"{path.relative_to(root.parent)}: {name}"
        for path in files
        for name in _repo_imports(path)
        if not any(
            name == allowed or name.startswith(allowed + ".") for allowed in VERIFIER_MAY_IMPORT
        )
    }
    assert not bad, sorted(bad)


def test_the_import_scan_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from prover.service.server import start_server\nimport protocol.plan\n")
    found = _repo_imports(module)
    assert found == {"prover.service.server", "protocol.plan"}
