"""``import protocol`` must work with torch and grpc unavailable (docs/design.md §3)."""

from __future__ import annotations

import subprocess
import sys

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
