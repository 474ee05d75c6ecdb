"""Weight and attribution digests: byte layout, agreement with the store, validation."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from protocol.digests import (
    AttributionHasher,
    attribution_digest,
    attribution_matrix_digest,
    weight_digest,
    weights_from_bytes,
)
from protocol.errors import InvalidArgument
from prover.store.keys import weight_digests


def test_weight_digest_is_sha256_of_little_endian_float64() -> None:
    w = np.array([1.0, -2.5, 3e-300])
    assert weight_digest(w) == hashlib.sha256(struct.pack("<3d", 1.0, -2.5, 3e-300)).digest()
    assert weight_digest(np.zeros(0)) == hashlib.sha256(b"").digest()


def test_weight_digest_ignores_byte_order_and_layout_of_the_input() -> None:
    w = np.random.default_rng(0).normal(size=(7, 9))
    col = w[:, 3]  # non-contiguous view
    assert weight_digest(col) == weight_digest(col.copy())
    assert weight_digest(col.astype(">f8")) == weight_digest(col)


@pytest.mark.parametrize("seed", range(5))
def test_weight_digest_agrees_with_the_result_store(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(1, 6)), int(rng.integers(0, 40))
    weights = rng.normal(size=(n, p)) * 10.0 ** rng.integers(-5, 5)
    rows = weight_digests(weights, n)
    for i in range(n):
        assert weight_digest(weights[i]) == bytes(rows[i])
    assert weight_digest(np.zeros(0)) == bytes(weight_digests(None, 1)[0])


def test_weights_from_bytes_round_trips() -> None:
    w = np.random.default_rng(1).normal(size=11)
    raw = np.ascontiguousarray(w, dtype="<f8").tobytes()
    np.testing.assert_array_equal(weights_from_bytes(raw), w)
    assert hashlib.sha256(raw).digest() == weight_digest(weights_from_bytes(raw))
    with pytest.raises(InvalidArgument, match="17 bytes is not a multiple of 8"):
        weights_from_bytes(b"\x00" * 17)


def test_weight_digest_rejects_bad_shapes_and_dtypes() -> None:
    with pytest.raises(InvalidArgument, match=r"one-dimensional \(P,\), got shape \(2, 2\)"):
        weight_digest(np.zeros((2, 2)))
    with pytest.raises(InvalidArgument, match="real numbers, got dtype complex128"):
        weight_digest(np.zeros(3, dtype=np.complex128))


def _reference_attribution_digest(theta0: np.ndarray, theta: np.ndarray) -> str:
    z, n = theta.shape
    body = b"pacda.v1.attributions\x00" + struct.pack(">II", z, n)
    for row in range(z):
        body += struct.pack(">d", float(theta0[row]))
        for j in range(n):
            body += struct.pack(">d", float(theta[row, j]))
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_attribution_digest_matches_the_documented_layout() -> None:
    rng = np.random.default_rng(2)
    theta0, theta = rng.normal(size=3), rng.normal(size=(3, 5))
    expected = _reference_attribution_digest(theta0, theta)
    assert attribution_digest(theta0, theta) == expected
    matrix = np.concatenate([theta0[:, None], theta], axis=1)
    assert attribution_matrix_digest(matrix) == expected
    assert attribution_digest(theta0, np.asfortranarray(theta)) == expected


def test_attribution_digest_is_sensitive_to_every_entry_and_the_shape() -> None:
    theta0, theta = np.zeros(2), np.zeros((2, 3))
    base = attribution_digest(theta0, theta)
    seen = {base}
    for z in range(2):
        t0 = theta0.copy()
        t0[z] = 1e-300
        seen.add(attribution_digest(t0, theta))
        for j in range(3):
            th = theta.copy()
            th[z, j] = -0.0 if (z, j) == (0, 0) else 1.0
            seen.add(attribution_digest(theta0, th))
    # -0.0 has a different bit pattern, so it commits to a different matrix.
    assert len(seen) == 1 + 2 + 6
    # Same bytes, different (Z, N): the header separates them.
    assert attribution_digest(np.zeros(1), np.zeros((1, 7))) != attribution_digest(
        np.zeros(2), np.zeros((2, 3))
    )


def test_attribution_hasher_streams_in_chunks() -> None:
    rng = np.random.default_rng(3)
    theta0, theta = rng.normal(size=4), rng.normal(size=(4, 9))
    flat = np.concatenate([theta0[:, None], theta], axis=1).reshape(-1)
    hasher = AttributionHasher(n_outputs=4, n_items=9)
    for chunk in np.array_split(flat, 7):
        hasher.update(chunk)
    assert hasher.hexdigest() == attribution_digest(theta0, theta)


def test_attribution_hasher_refuses_short_long_and_non_finite_streams() -> None:
    hasher = AttributionHasher(n_outputs=1, n_items=2)
    hasher.update(np.ones(2))
    with pytest.raises(InvalidArgument, match="incomplete: 2 of 3 values"):
        hasher.hexdigest()
    with pytest.raises(InvalidArgument, match=r"too many attribution values: 4 > Z \(N \+ 1\) = 3"):
        hasher.update(np.ones(2))
    with pytest.raises(InvalidArgument, match="flat index 2 is NaN or infinite"):
        hasher.update(np.array([np.inf]))


@pytest.mark.parametrize(
    ("theta0", "theta", "message"),
    [
        (np.zeros((2, 1)), np.zeros((2, 3)), r"theta0 must have shape \(Z,\), got \(2, 1\)"),
        (np.zeros(2), np.zeros((3, 3)), r"theta must have shape \(2, N\), got \(3, 3\)"),
        (np.zeros(2), np.zeros(3), r"theta must have shape \(2, N\), got \(3,\)"),
        (np.zeros(0), np.zeros((0, 3)), r"outputs Z must lie in \[1, 2\^32 - 1\], got 0"),
        (np.zeros(2), np.zeros((2, 0)), r"items N must lie in \[1, 2\^32 - 1\], got 0"),
        (np.array([0.0, np.nan]), np.zeros((2, 3)), "theta0 contains NaN or infinite values"),
        (np.zeros(2), np.array([[0, 0, 0], [0, -np.inf, 0]]), r"theta contains NaN .* 1, 1"),
        (np.zeros(2), np.zeros((2, 3), dtype=complex), "theta must be real numbers"),
    ],
)
def test_attribution_digest_validates(theta0: np.ndarray, theta: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        attribution_digest(theta0, theta)
