"""The implementation against ``tests/vectors/wire_v1.json`` (docs/wire.md, "Bytes on the wire").

Every byte string Prover and Verifier must agree on is checked twice: with
pacda's own functions, and with a few lines of ``hashlib``/``struct`` written
from the spec here (an RFC 6962 Merkle tree by its recursive definition, the
digests by their preimages), so that the vectors describe the spec and not
just the code that produced them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.canonical_json import canonical_json
from protocol.digests import attribution_matrix_digest, weight_digest
from protocol.merkle import MerkleTree, leaf_hash, result_leaf, verify_inclusion
from protocol.report import load_report_unverified, sign_report, verify_report
from protocol.signing import (
    commitment_statement,
    public_key_bytes,
    public_key_from_bytes,
    root_statement,
    sign_json,
    verify_json,
)

PATH = Path(__file__).parents[1] / "vectors" / "wire_v1.json"
V: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"))
KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(V["ed25519_secret_key"]))


def f64(bits: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(bits))[0])


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash, by its recursive definition."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while 2 * k < len(leaves):
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 audit path PATH(m, D[n]), leaf sibling first."""
    if len(leaves) <= 1:
        return []
    k = 1
    while 2 * k < len(leaves):
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def test_vectors_are_the_generators_output() -> None:
    from tests.vectors.generate_wire_vectors import build

    assert json.loads(json.dumps(build())) == V


def test_ed25519_key_is_rfc8032_test_1() -> None:
    assert V["ed25519_public_key"] == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert public_key_bytes(KEY.public_key()).hex() == V["ed25519_public_key"]


@pytest.mark.parametrize("case", V["weight_digest"], ids=lambda c: f"P={len(c['weights_f64'])}")
def test_weight_digest(case: dict[str, Any]) -> None:
    weights = [f64(b) for b in case["weights_f64"]]
    raw = b"".join(struct.pack("<d", w) for w in weights)
    assert raw.hex() == case["bytes"]
    assert sha256(raw).hex() == case["digest"]
    assert weight_digest(np.asarray(weights, dtype=np.float64)).hex() == case["digest"]


@pytest.mark.parametrize("case", V["attribution_digest"], ids=lambda c: f"Z={c['n_outputs']}")
def test_attribution_digest(case: dict[str, Any]) -> None:
    z, n = case["n_outputs"], case["n_items"]
    matrix = [[f64(b) for b in row] for row in case["matrix_f64"]]
    assert len(matrix) == z and all(len(row) == n + 1 for row in matrix)
    preimage = (
        b"pacda.v1.attributions\x00"
        + struct.pack(">II", z, n)
        + b"".join(struct.pack(">d", x) for row in matrix for x in row)
    )
    assert preimage.hex() == case["preimage"]
    assert "sha256:" + sha256(preimage).hex() == case["digest"]
    assert attribution_matrix_digest(np.asarray(matrix)) == case["digest"]


@pytest.mark.parametrize("case", V["result_leaf"], ids=lambda c: f"i={c['point_index']}")
def test_result_leaf(case: dict[str, Any]) -> None:
    outputs = [f64(b) for b in case["outputs_f64"]]
    digest = bytes.fromhex(case["weight_digest"])
    leaf = (
        b"pacda.v1.result\x00"
        + struct.pack(">Q", case["point_index"])
        + b"".join(struct.pack(">d", x) for x in outputs)
        + digest
    )
    assert leaf.hex() == case["leaf"]
    assert sha256(b"\x00" + leaf).hex() == case["leaf_hash"]
    assert result_leaf(case["point_index"], np.asarray(outputs), digest) == leaf
    assert leaf_hash(leaf).hex() == case["leaf_hash"]


@pytest.mark.parametrize("case", V["merkle_trees"], ids=lambda c: f"n={c['n_leaves']}")
def test_merkle_tree_root_and_proofs(case: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(h) for h in case["leaves"]]
    assert len(leaves) == case["n_leaves"]
    root = bytes.fromhex(case["root"])
    assert mth(leaves) == root
    tree = MerkleTree(leaves)
    assert tree.root == root
    for i, proof in enumerate(case["proofs"]):
        hashes = [bytes.fromhex(h) for h in proof]
        assert path(i, leaves) == hashes
        assert tree.proof(i) == hashes
        verify_inclusion(root, len(leaves), i, leaves[i], hashes)


@pytest.mark.parametrize("case", V["canonical_json"]["numbers"], ids=lambda c: c["decimal"])
def test_canonical_json_numbers(case: dict[str, Any]) -> None:
    assert canonical_json(f64(case["f64"])).decode() == case["canonical"]


@pytest.mark.parametrize("case", V["canonical_json"]["objects"])
def test_canonical_json_objects(case: dict[str, Any]) -> None:
    assert canonical_json(case["value"]).hex() == case["canonical_utf8"]


def test_signed_statements() -> None:
    public = public_key_from_bytes(bytes.fromhex(V["ed25519_public_key"]))
    c, r = V["signed_statements"]["commitment"], V["signed_statements"]["root"]
    assert commitment_statement(**c["statement"]) == c["statement"]
    s = r["statement"]
    assert (
        root_statement(
            session_id=s["session_id"],
            task_digest=s["task_digest"],
            attribution_digest=s["attribution_digest"],
            challenge_seed=bytes.fromhex(s["challenge_seed"]),
            merkle_root=bytes.fromhex(s["merkle_root"]),
            n_leaves=s["n_leaves"],
        )
        == s
    )
    for case in (c, r):
        assert canonical_json(case["statement"]).decode() == case["canonical"]
        signature = bytes.fromhex(case["signature"])
        assert sign_json(KEY, case["statement"]) == signature  # Ed25519 is deterministic
        public.verify(signature, case["canonical"].encode())
        verify_json(public, case["statement"], signature)


def test_signed_report_document() -> None:
    document = V["signed_report"]["document"].encode("utf-8")
    public = public_key_from_bytes(bytes.fromhex(V["ed25519_public_key"]))
    report = verify_report(document, public)
    assert canonical_json(json.loads(document)) == document  # the file is its canonical form
    envelope = json.loads(document)
    assert envelope["signature"]["algorithm"] == "ed25519"
    public.verify(bytes.fromhex(envelope["signature"]["value"]), canonical_json(envelope["report"]))
    assert sign_report(load_report_unverified(document), KEY) == document
    assert report.decision == "accept"


def test_task_digest() -> None:
    """Rule 8: sha256 over the canonical JSON of {spec, dataset, pacda_version}."""
    from protocol.taskspec import task_digest
    from prover.tasks.registry import load_task

    case = V["task_digest"]
    preimage = case["preimage_canonical"].encode()
    assert case["digest"] == "sha256:" + hashlib.sha256(preimage).hexdigest()
    parsed = json.loads(preimage)
    assert canonical_json(parsed) == preimage  # the preimage is canonical
    assert set(parsed) == {"spec", "dataset", "pacda_version"}
    task = load_task(Path(__file__).resolve().parents[2] / case["task_file"])
    spec, dataset = task.spec, task.dataset_digest  # type: ignore[attr-defined]
    assert task_digest(spec, dataset, parsed["pacda_version"]) == case["digest"]
