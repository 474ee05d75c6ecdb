"""The checked-in stubs under protos/gen are exactly what protos/generate.py produces now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "protos" / "gen"


def _generate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_protos_generate", ROOT / "protos" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_checked_in_stubs_are_fresh(tmp_path: Path) -> None:
    written = _generate_module().generate(tmp_path / "gen")
    fresh = _tree(tmp_path / "gen")
    current = _tree(GEN)
    assert sorted(fresh) == sorted(str(w) for w in written)
    assert sorted(current) == sorted(fresh), "run: python protos/generate.py"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert stale == [], f"stale stubs {stale}; run: python protos/generate.py"


def test_stubs_import_as_package_pacda_v1() -> None:
    from pacda.v1 import prover_pb2, prover_pb2_grpc

    assert Path(prover_pb2.__file__).resolve().parent == GEN / "pacda" / "v1"
    assert prover_pb2.DESCRIPTOR.services_by_name["Prover"].full_name == "pacda.v1.Prover"
    assert hasattr(prover_pb2_grpc, "ProverStub")
