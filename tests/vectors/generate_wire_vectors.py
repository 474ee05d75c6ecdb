"""Regenerate ``wire_v1.json``: test vectors of every byte string Prover and Verifier agree on.

Run ``python tests/vectors/generate_wire_vectors.py`` only when the wire
contract changes (``docs/wire.md``, "Bytes on the wire"); the test suite
(``tests/unit/test_wire_vectors.py``) checks the implementation against the
file, and a second implementation in another language can do the same.

Conventions of the file: byte strings are lowercase hex; a float64 is given
by its IEEE 754 bit pattern as 16 hex digits (big-endian, so ``3ff0000000000000``
is 1.0) with its decimal value beside it for reading; signatures use the
RFC 8032 §7.1 TEST 1 Ed25519 key (deterministic signatures).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.canonical_json import canonical_json
from protocol.digests import attribution_digest, weight_digest
from protocol.merkle import MerkleTree, leaf_hash, result_leaf
from protocol.report import AuditReport, sign_report
from protocol.signing import commitment_statement, public_key_bytes, root_statement, sign_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.unit.test_report

VERSION = "pacda-wire-v1"
#: RFC 8032 §7.1 TEST 1 secret key.
SECRET_KEY = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

FLOATS = [0.0, -0.0, 1.0, -2.5, 0.1, 1e-300, 5e-324, 1.7976931348623157e308, 3.0e21, 1e-7]


def f64(x: float) -> str:
    """IEEE 754 bits of ``x``, big-endian hex."""
    return struct.pack(">d", x).hex()


def _weights() -> list[dict[str, Any]]:
    cases = [[], [1.0], [0.5, -2.0, 1e-300], FLOATS]
    out = []
    for w in cases:
        arr = np.asarray(w, dtype=np.float64)
        out.append(
            {
                "weights_f64": [f64(x) for x in w],
                "weights_decimal": [repr(x) for x in w],
                "bytes": arr.astype("<f8").tobytes().hex(),
                "digest": weight_digest(arr).hex(),
            }
        )
    return out


def _attributions() -> list[dict[str, Any]]:
    cases = [
        (np.array([0.5]), np.array([[1.0]])),
        (np.array([1.0, -1.0]), np.array([[0.25, -0.5, 0.0], [1e-3, 2.0, -0.0]])),
        (np.array(FLOATS[:3]), np.arange(12, dtype=np.float64).reshape(3, 4) / 7.0),
    ]
    out = []
    for theta0, theta in cases:
        matrix = np.concatenate([theta0[:, None], theta], axis=1)
        z, n = theta.shape
        preimage = (
            b"pacda.v1.attributions\x00" + struct.pack(">II", z, n) + matrix.astype(">f8").tobytes()
        )
        digest = attribution_digest(theta0, theta)
        assert digest == "sha256:" + hashlib.sha256(preimage).hexdigest()
        out.append(
            {
                "n_outputs": z,
                "n_items": n,
                "matrix_f64": [[f64(x) for x in row] for row in matrix.tolist()],
                "preimage": preimage.hex(),
                "digest": digest,
            }
        )
    return out


def _leaves() -> list[dict[str, Any]]:
    cases = [
        (0, [1.0], hashlib.sha256(b"").digest()),
        (7, [0.5, -2.0], hashlib.sha256(b"weights").digest()),
        (2**40 + 3, FLOATS[:4], bytes(range(32))),
    ]
    out = []
    for index, outputs, digest in cases:
        leaf = result_leaf(index, np.asarray(outputs), digest)
        out.append(
            {
                "point_index": index,
                "outputs_f64": [f64(x) for x in outputs],
                "weight_digest": digest.hex(),
                "leaf": leaf.hex(),
                "leaf_hash": leaf_hash(leaf).hex(),
            }
        )
    return out


def _trees() -> list[dict[str, Any]]:
    out = []
    for n in (0, 1, 2, 3, 4, 5, 7, 8):
        leaves = [bytes([i]) * (i + 1) for i in range(n)]  # leaf i: byte i repeated i + 1 times
        tree = MerkleTree(leaves)
        out.append(
            {
                "n_leaves": n,
                "leaves": [leaf.hex() for leaf in leaves],
                "root": tree.root.hex(),
                "proofs": [[h.hex() for h in tree.proof(i)] for i in range(n)],
            }
        )
    return out


def _canonical_json() -> dict[str, Any]:
    numbers = [*FLOATS, 1e21, 1e20, 123456789.125, -1e-6, 2.0**53, 4.35, 333333333.3333332]
    objects: list[Any] = [
        {"b": 1, "a": [True, False, None], "": "x"},
        {"\u20ac": 1, "\r": 2, "1": 3, "\U0001f600": 4, "\u00e9": 5, "A": 6},
        {"s": 'quote " backslash \\ tab \t newline \n control \u001f del \u007f é €'},
        {"int": 9007199254740991, "neg": -9007199254740991, "nested": {"z": [], "y": {}}},
    ]
    return {
        "numbers": [
            {"f64": f64(x), "decimal": repr(x), "canonical": canonical_json(x).decode()}
            for x in numbers
        ],
        "objects": [{"value": obj, "canonical_utf8": canonical_json(obj).hex()} for obj in objects],
    }


def _statements(key: Ed25519PrivateKey) -> dict[str, Any]:
    commitment = commitment_statement(
        session_id="00112233445566778899aabbccddeeff",
        task_digest="sha256:" + "ab" * 32,
        attribution_digest="sha256:" + "cd" * 32,
        mode="committed",
    )
    root = root_statement(
        session_id="00112233445566778899aabbccddeeff",
        task_digest="sha256:" + "ab" * 32,
        attribution_digest="sha256:" + "cd" * 32,
        challenge_seed=bytes(range(32)),
        merkle_root=hashlib.sha256(b"root").digest(),
        n_leaves=26,
    )
    return {
        name: {
            "statement": obj,
            "canonical": canonical_json(obj).decode(),
            "signature": sign_json(key, obj).hex(),
        }
        for name, obj in (("commitment", commitment), ("root", root))
    }


#: The pacda version written into the task-digest vector (a real digest uses the installed one).
TASK_VECTOR_VERSION = "0.1.0"


def _task_digest() -> dict[str, Any]:
    """The example synthetic task's digest under a fixed version string."""
    from protocol.taskspec import task_digest
    from prover.tasks.registry import load_task

    task = load_task(Path(__file__).resolve().parents[2] / "examples" / "tasks" / "synthetic.toml")
    spec, dataset = task.spec, task.dataset_digest  # type: ignore[attr-defined]
    preimage = {"spec": spec.to_dict(), "dataset": dataset, "pacda_version": TASK_VECTOR_VERSION}
    return {
        "task_file": "examples/tasks/synthetic.toml",
        "preimage_canonical": canonical_json(preimage).decode(),
        "digest": task_digest(spec, dataset, TASK_VECTOR_VERSION),
    }


#: The signed report's plan, written out as literals.  A plan computed here would
#: go through numpy/scipy linear algebra (the LP functional, the radius), whose
#: last bits depend on the BLAS kernel OpenBLAS picks for the processor, so the
#: file would describe one machine's numerics rather than bytes.  These values
#: are one real plan (``make_plan`` at epsilon 0.5, delta 0.1, bound 1, two
#: outputs), frozen; every float below parses to one IEEE 754 double.
REPORT_PLAN: dict[str, Any] = {
    "epsilon": 0.5,
    "delta": 0.1,
    "bound": 1.0,
    "tolerance": 0.0,
    "p": 0.5,
    "threshold": 0.25,
    "n_outputs": 2,
    "prover_evaluations": 396802,
    "spot_checks": 982,
    "local_trainings": 0,
    "pilot_trainings": 0,
    "verifier_retrainings": 982,
    "completeness_radius": 0.06621625822968286,
    "estimator": "chebyshev",
    "nodes": [-0.24248711305964285, 1.7145055188062947e-17, 0.24248711305964285],
    "weights": [-2.061965247105806, 0.9999999999999996, 2.0619652471058063],
    "pairs_per_node": [79840, 38721, 79840],
    "budget": [
        {
            "name": "corruption budget",
            "value": 0.12501625822968288,
            "note": "up to 1,210 corrupted evaluations unseen; more caught w.p. >= 0.95",
        },
        {"name": "bias (downward)", "value": 0.0, "note": "sum_k>2 s_k B_k with B_>2 <= 1"},
        {"name": "tolerance slack", "value": 0.0, "note": "tau=0 on every evaluation"},
        {
            "name": "sampling (Prover)",
            "value": 0.12498374177031712,
            "note": "Hoeffding, range b, delta=0.025 per output",
        },
        {"name": "slack", "value": 0.0, "note": "unused margin"},
    ],
}


def _report(key: Ed25519PrivateKey) -> dict[str, Any]:
    from tests.unit.test_report import _fields  # one valid report of every field

    report = AuditReport(**_fields(plan=REPORT_PLAN))
    return {"document": sign_report(report, key).decode("utf-8")}


def build() -> dict[str, Any]:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(SECRET_KEY))
    return {
        "version": VERSION,
        "ed25519_secret_key": SECRET_KEY,
        "ed25519_public_key": public_key_bytes(key.public_key()).hex(),
        "weight_digest": _weights(),
        "attribution_digest": _attributions(),
        "result_leaf": _leaves(),
        "merkle_trees": _trees(),
        "canonical_json": _canonical_json(),
        "signed_statements": _statements(key),
        "signed_report": _report(key),
        "task_digest": _task_digest(),
    }


if __name__ == "__main__":
    path = Path(__file__).with_name("wire_v1.json")
    path.write_text(json.dumps(build(), indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {path}")
