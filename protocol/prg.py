"""Language-neutral expansion of a 32-byte challenge seed into subsets and seeds.

Specification ``pacda-prg-v1`` (also in ``docs/prg.md``; test vectors in
``tests/vectors/prg_v1.json``).  All integers are unsigned big-endian.

Pair k (0-based) of a challenge with seed S (32 bytes), N items, inclusion
probability p and node rho:

1. ``stream = SHAKE-256(b"pacda.v1.pair" || 0x00 || S || u64(k))``; read
   ``16 + 16 N`` bytes.
2. bytes ``[0, 8)``: training seed r of the first point; ``[8, 16)``: seed r'
   of the partner.
3. the next ``8 N`` bytes are N words ``w_i``; ``u_i = w_i >> 11`` (53 bits);
   ``x_i = +1`` iff ``u_i < floor(p * 2^53)``.
4. the next ``8 N`` bytes give ``u'_i`` the same way; ``x'_i = +1`` iff
   ``u'_i < floor(q * 2^53)`` with, in IEEE-754 binary64 (round to nearest, no
   fused multiply-add), ``q = p + rho * (1 - p)`` if ``x_i = +1`` and
   ``q = p - rho * p`` otherwise, clamped to ``[0, 1]``.

Single point k (used where no partner is needed) reads
``SHAKE-256(b"pacda.v1.point" || 0x00 || S || u64(k))``: bytes ``[0, 8)`` the
seed, then ``8 N`` bytes for x as in step 3.

``p * 2^53`` is exact in binary64, so thresholds are the same in every
language; each coordinate is +1 with probability ``floor(p 2^53)/2^53``,
within ``2^-53`` of p.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import check_p, partner_probabilities

__all__ = [
    "PRG_VERSION",
    "SEED_BYTES",
    "ExpandedPairs",
    "ExpandedPoints",
    "expand_pairs",
    "expand_points",
]

PRG_VERSION = "pacda-prg-v1"
SEED_BYTES = 32
_PAIR_DOMAIN = b"pacda.v1.pair\x00"
_POINT_DOMAIN = b"pacda.v1.point\x00"
_TWO53 = float(2**53)


@dataclass(frozen=True)
class ExpandedPairs:
    """Pairs expanded from a challenge seed.

    Attributes:
        first, second: int8 ``(n, N)`` pm encoding; ``second`` is the partner.
        first_seeds, second_seeds: uint64 ``(n,)`` training seeds.
    """

    first: NDArray[np.int8]
    second: NDArray[np.int8]
    first_seeds: NDArray[np.uint64]
    second_seeds: NDArray[np.uint64]


@dataclass(frozen=True)
class ExpandedPoints:
    """Single points: ``x`` int8 ``(n, N)`` pm encoding and ``seeds`` uint64 ``(n,)``."""

    x: NDArray[np.int8]
    seeds: NDArray[np.uint64]


def _check_seed(seed: bytes) -> None:
    if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
        raise InvalidArgument(f"challenge seed must be {SEED_BYTES} bytes")


def _threshold(q: float) -> int:
    return int(np.floor(min(max(q, 0.0), 1.0) * _TWO53))


def _check_indices(indices: NDArray[np.integer] | list[int]) -> NDArray[np.int64]:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0):
        raise InvalidArgument("indices must be non-negative")
    return idx


def expand_pairs(
    seed: bytes,
    indices: NDArray[np.integer] | list[int],
    n_items: int,
    p: float,
    rhos: NDArray[np.floating] | list[float],
) -> ExpandedPairs:
    """Expand pairs ``indices`` with node values ``rhos`` (one per index)."""
    _check_seed(seed)
    p = check_p(p)
    idx = _check_indices(indices)
    rho_arr = np.asarray(rhos, dtype=np.float64).reshape(-1)
    if rho_arr.shape != idx.shape:
        raise InvalidArgument(f"need one rho per index: {rho_arr.shape} vs {idx.shape}")
    if n_items < 1:
        raise InvalidArgument(f"n_items must be >= 1, got {n_items}")
    shake = hashlib.shake_256
    length = 16 + 16 * n_items
    prefix = _PAIR_DOMAIN + bytes(seed)
    buf = b"".join(shake(prefix + k.to_bytes(8, "big")).digest(length) for k in idx.tolist())
    words = np.frombuffer(buf, dtype=">u8").reshape(idx.size, 2 + 2 * n_items)
    u = words[:, 2 : 2 + n_items] >> np.uint64(11)
    v = words[:, 2 + n_items :] >> np.uint64(11)
    x = u < np.uint64(_threshold(p))
    t_minus = np.empty(idx.size, dtype=np.uint64)
    t_plus = np.empty(idx.size, dtype=np.uint64)
    for rho in np.unique(rho_arr).tolist():
        q_minus, q_plus = partner_probabilities(p, rho)
        sel = rho_arr == rho
        t_minus[sel], t_plus[sel] = _threshold(q_minus), _threshold(q_plus)
    partner = v < np.where(x, t_plus[:, None], t_minus[:, None])
    first = np.where(x, np.int8(1), np.int8(-1)).astype(np.int8)
    second = np.where(partner, np.int8(1), np.int8(-1)).astype(np.int8)
    s1 = words[:, 0].astype(np.uint64)
    s2 = words[:, 1].astype(np.uint64)
    return ExpandedPairs(first, second, s1, s2)


def expand_points(
    seed: bytes, indices: NDArray[np.integer] | list[int], n_items: int, p: float
) -> ExpandedPoints:
    """Expand single points ``indices`` (domain ``pacda.v1.point``)."""
    _check_seed(seed)
    p = check_p(p)
    idx = _check_indices(indices)
    if n_items < 1:
        raise InvalidArgument(f"n_items must be >= 1, got {n_items}")
    prefix = _POINT_DOMAIN + bytes(seed)
    length = 8 + 8 * n_items
    buf = b"".join(
        hashlib.shake_256(prefix + k.to_bytes(8, "big")).digest(length) for k in idx.tolist()
    )
    words = np.frombuffer(buf, dtype=">u8").reshape(idx.size, 1 + n_items)
    seeds = words[:, 0].astype(np.uint64)
    included = (words[:, 1:] >> np.uint64(11)) < np.uint64(_threshold(p))
    x = np.where(included, np.int8(1), np.int8(-1)).astype(np.int8)
    return ExpandedPoints(x, seeds)
