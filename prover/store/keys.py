"""Result keys and weight digests: how a training run is named in the store.

A training run is identified by its subset ``x`` (pm encoding, int8 ``(N,)``)
and its 64-bit training seed ``r``.  On disk the subset is kept as packed mask
bits (``m_i = (x_i + 1) / 2``, item ``i`` at byte ``i // 8``, bit ``i % 8``,
least significant bit first) and the seed as a little-endian uint64.  Lookups use
the *result key*

    key(x, r) = SHA-256("pacda/result-key/v1" || u64le(N) || packbits(m) || u64le(r)),

32 bytes, so equal keys mean equal (N, x, r) up to a SHA-256 collision.

The *weight digest* of a trained model is SHA-256 over the little-endian
float64 bytes of its flat parameter vector (shape ``(P,)``); a task with
nothing trained (``weights is None``) has ``P = 0`` and digest SHA-256("").
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from numpy.typing import NDArray

from protocol.digests import weight_digest
from protocol.errors import InvalidArgument

__all__ = [
    "DIGEST_BYTES",
    "check_seeds",
    "check_subsets",
    "digest_hex",
    "pack_subsets",
    "result_keys",
    "unpack_subsets",
    "weight_digests",
]

DIGEST_BYTES = 32
_KEY_DOMAIN = b"pacda/result-key/v1"


def check_subsets(x: NDArray[np.integer], n_items: int) -> NDArray[np.int8]:
    """Validate pm-encoded subsets.

    Args:
        x: subsets, shape ``(n, N)``, every entry -1 or +1.
        n_items: the expected N.

    Returns:
        ``x`` as a C-contiguous int8 array.

    Raises:
        InvalidArgument: wrong shape or an entry outside {-1, +1}.
    """
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != n_items:
        raise InvalidArgument(f"x must have shape (n, {n_items}), got {arr.shape}")
    if arr.size and not np.all((arr == 1) | (arr == -1)):
        raise InvalidArgument("x must be pm-encoded: every entry -1 or +1")
    return np.ascontiguousarray(arr, dtype=np.int8)


def check_seeds(seeds: NDArray[np.integer], n: int) -> NDArray[np.uint64]:
    """Validate 64-bit training seeds.

    Args:
        seeds: shape ``(n,)``, unsigned integers (or non-negative signed ones).
        n: the expected count.

    Returns:
        ``seeds`` as a C-contiguous uint64 array.

    Raises:
        InvalidArgument: wrong shape, non-integer dtype or a negative seed.
    """
    arr = np.asarray(seeds)
    if arr.shape != (n,):
        raise InvalidArgument(f"seeds must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind not in "ui":
        raise InvalidArgument(f"seeds must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise InvalidArgument("seeds must be non-negative 64-bit integers")
    return np.ascontiguousarray(arr, dtype=np.uint64)


def pack_subsets(x: NDArray[np.int8]) -> NDArray[np.uint8]:
    """Packed mask bits of pm subsets ``(n, N)``: uint8 ``(n, ceil(N / 8))``, LSB first."""
    return np.packbits(np.asarray(x) > 0, axis=1, bitorder="little")


def unpack_subsets(packed: NDArray[np.uint8], n_items: int) -> NDArray[np.int8]:
    """Inverse of :func:`pack_subsets`: pm-encoded int8 ``(n, N)``."""
    bits = np.unpackbits(packed, axis=1, count=n_items, bitorder="little")
    return (bits.astype(np.int8) * 2 - 1).astype(np.int8)


def result_keys(x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> NDArray[np.uint8]:
    """Result keys of ``n`` runs (see the module docstring).

    Args:
        x: pm-encoded subsets, int8 ``(n, N)`` (validated by the caller).
        seeds: uint64 ``(n,)``.

    Returns:
        uint8 ``(n, 32)``, one SHA-256 per run.
    """
    packed = pack_subsets(x)
    prefix = _KEY_DOMAIN + struct.pack("<Q", x.shape[1])
    seed_bytes = np.asarray(seeds, dtype="<u8")
    out = np.empty((len(seed_bytes), DIGEST_BYTES), dtype=np.uint8)
    for i in range(len(seed_bytes)):
        h = hashlib.sha256(prefix)
        h.update(packed[i].tobytes())
        h.update(seed_bytes[i].tobytes())
        out[i] = np.frombuffer(h.digest(), dtype=np.uint8)
    return out


def weight_digests(weights: NDArray[np.float64] | None, n: int) -> NDArray[np.uint8]:
    """SHA-256 of each model's weights, by :func:`protocol.digests.weight_digest`.

    Args:
        weights: float64 ``(n, P)`` or ``None`` (no trained parameters, P = 0).
        n: number of models.

    Returns:
        uint8 ``(n, 32)``.
    """
    if weights is None:
        empty = np.frombuffer(weight_digest(np.zeros(0)), dtype=np.uint8)
        return np.tile(empty, (n, 1))
    if weights.ndim != 2 or weights.shape[0] != n:
        raise InvalidArgument(f"weights must have shape ({n}, P), got {weights.shape}")
    out = np.empty((n, DIGEST_BYTES), dtype=np.uint8)
    for i in range(n):
        out[i] = np.frombuffer(weight_digest(weights[i]), dtype=np.uint8)
    return out


def digest_hex(digest: NDArray[np.uint8]) -> str:
    """``sha256:<hex>`` text form of one 32-byte digest row."""
    return "sha256:" + bytes(np.asarray(digest, dtype=np.uint8)).hex()
