"""The layout of a challenge: seed -> pair -> point -> rho, in one place.

A challenge has a 32-byte seed, the inclusion probability ``p`` of B_p, N items
and ``J`` nodes ``rho_0 .. rho_{J-1}`` (each in ``[-rho_max(p), 1]``) with
``K_j >= 0`` pairs at node ``j`` (at least one pair in all).  Its
``n_pairs = sum_j K_j`` pairs are *interleaved*: the ``k``-th pair of node ``j``
(``0 <= k < K_j``) has the position ``(2k + 1) / (2 K_j)`` in ``(0, 1)``, and
pairs are numbered in increasing position, ties by node index::

    key = [(2k + 1) / (2 K_j) for j in range(J) for k in range(K_j)]
    node_of_pair = np.repeat(np.arange(J), K)[np.lexsort((node, key))]

so that every prefix of ``m`` pairs holds ``m K_j / n_pairs`` pairs of each node
to within ``(1 + J K_j / n_pairs) / 2`` (the positions taken so far lie below
some ``t`` with ``K_j t - 1/2 <= seen_j <= K_j t + 1/2``, and these sum to
``m``): the stream's first points are a proportional sample of the whole
challenge, and the Verifier can screen out bad scores before the Prover has
evaluated everything (:class:`verifier.core.Screen`).  Pair ``i`` has
``rho = nodes[node_of_pair[i]]``.
Pair ``i`` has two challenge points: ``2i``, its first subset ``x``, and
``2i + 1``, the rho-correlated partner ``x'``.  Subsets and training seeds of
pair ``i`` are ``protocol.prg.expand_pairs(seed, [i], N, p, [rho])``
(``pacda-prg-v1``, ``docs/prg.md``).

The Prover's :class:`prover.service.plan.ChallengePlan`, the Verifier's
:func:`verifier.retrain.challenge_points` and ``Plan.node_of_pair`` /
``Plan.rho_of_pair`` all follow this module.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import check_p, check_rho
from protocol.prg import SEED_BYTES, ExpandedPairs, expand_pairs

__all__ = [
    "ChallengeLayout",
    "challenge_points",
    "check_challenge",
    "check_seed",
    "node_of_pair",
    "rho_of_pair",
]

PointArrays = tuple[NDArray[np.int8], NDArray[np.uint64]]


def check_seed(seed: object) -> bytes:
    """Return ``seed`` as bytes if it is 32 bytes long, else raise :class:`InvalidArgument`."""
    if not isinstance(seed, bytes | bytearray | memoryview):
        raise InvalidArgument(
            f"challenge seed must be {SEED_BYTES} bytes, got {type(seed).__name__}"
        )
    data = bytes(seed)
    if len(data) != SEED_BYTES:
        raise InvalidArgument(f"challenge seed must be {SEED_BYTES} bytes, got {len(data)}")
    return data


def _counts(pairs_per_node: Sequence[int]) -> tuple[int, ...]:
    """Pair counts as Python ints, each a non-negative integer."""
    out: list[int] = []
    for j, k in enumerate(pairs_per_node):
        if isinstance(k, bool | np.bool_):
            raise InvalidArgument(f"pairs_per_node[{j}] must be an integer, got {k!r}")
        try:
            count = operator.index(k)
        except TypeError:
            raise InvalidArgument(f"pairs_per_node[{j}] must be an integer, got {k!r}") from None
        if count < 0:
            raise InvalidArgument(f"pairs_per_node[{j}] must be >= 0, got {count}")
        out.append(count)
    return tuple(out)


def check_challenge(
    seed: object, nodes: Sequence[float], pairs_per_node: Sequence[int], p: float
) -> tuple[bytes, tuple[float, ...], tuple[int, ...], float]:
    """Validate the parts of a challenge; return them normalised.

    Checks, in this order: the seed, ``p``, that there are nodes, one pair count
    per node, every node finite and in ``[-rho_max(p), 1]``, every count a
    non-negative integer, and at least one pair.  Nodes are returned as given
    (not clamped: :func:`protocol.prg.expand_pairs` clamps within the slack of
    :func:`protocol.hypercube.check_rho` itself).

    Returns:
        ``(seed, nodes, pairs_per_node, p)`` as bytes, floats, ints and a float.

    Raises:
        InvalidArgument: naming the first part that is wrong.
    """
    seed_bytes = check_seed(seed)
    p = check_p(p)
    if len(nodes) == 0:
        raise InvalidArgument("plan has no nodes")
    if len(pairs_per_node) != len(nodes):
        raise InvalidArgument(f"plan has {len(nodes)} nodes but {len(pairs_per_node)} pair counts")
    rhos: list[float] = []
    for j, value in enumerate(nodes):
        rho = float(value)
        if not math.isfinite(rho):
            raise InvalidArgument(f"nodes[{j}]: rho must be finite, got {rho!r}")
        try:
            check_rho(rho, p)
        except InvalidArgument as err:
            raise InvalidArgument(f"nodes[{j}]: {err}") from None
        rhos.append(rho)
    counts = _counts(pairs_per_node)
    if sum(counts) == 0:
        raise InvalidArgument("plan has no pairs")
    return seed_bytes, tuple(rhos), counts, p


def node_of_pair(pairs_per_node: Sequence[int]) -> NDArray[np.int64]:
    """Node index of every pair, interleaved (module docstring): int64 ``(n_pairs,)``.

    The positions ``(2k + 1) / (2 K_j)`` are correctly rounded quotients of
    exact integers, so equal fractions compare equal and distinct ones (at
    least ``1 / (4 K_j K_l)`` apart) keep their order in float64.
    """
    counts = _counts(pairs_per_node)
    return _interleaved(counts).copy()


@functools.lru_cache(maxsize=8)
def _interleaved(counts: tuple[int, ...]) -> NDArray[np.int64]:
    node = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    rank = np.concatenate([np.arange(k, dtype=np.float64) for k in counts] or [np.zeros(0)])
    key = (2.0 * rank + 1.0) / (2.0 * np.repeat(np.asarray(counts, dtype=np.float64), counts))
    out = node[np.lexsort((node, key))]
    out.flags.writeable = False
    return out


def rho_of_pair(nodes: Sequence[float], pairs_per_node: Sequence[int]) -> NDArray[np.float64]:
    """Node value rho of every pair: float64 ``(n_pairs,)``."""
    counts = _counts(pairs_per_node)
    if len(nodes) != len(counts):
        raise InvalidArgument(f"plan has {len(nodes)} nodes but {len(counts)} pair counts")
    return np.asarray(nodes, dtype=np.float64).reshape(-1)[_interleaved(counts)]


def _indices(indices: ArrayLike, bound: int, what: str) -> NDArray[np.int64]:
    """``indices`` as int64 ``(m,)``, each in ``[0, bound)``."""
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise InvalidArgument(
            f"{what} indices must be a 1-D integer array, got {idx.dtype} {idx.shape}"
        )
    idx = idx.astype(np.int64)
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= bound:
        bad = lo if lo < 0 else hi
        raise InvalidArgument(f"{what} index {bad} is out of range [0, {bound})")
    return idx


def _points(
    point_indices: ArrayLike, n_points: int, expand: Callable[[NDArray[np.int64]], ExpandedPairs]
) -> PointArrays:
    """Point ``2i`` is the first subset of pair ``i``, ``2i + 1`` its partner."""
    idx = _indices(point_indices, n_points, "point")
    pairs, where = np.unique(idx // 2, return_inverse=True)
    where = where.reshape(-1)
    expanded = expand(pairs.astype(np.int64))
    second = idx % 2 == 1
    x = np.where(second[:, None], expanded.second[where], expanded.first[where])
    seeds = np.where(second, expanded.second_seeds[where], expanded.first_seeds[where])
    return x.astype(np.int8), seeds.astype(np.uint64)


def challenge_points(
    seed: bytes,
    point_indices: ArrayLike,
    *,
    n_items: int,
    p: float,
    rho_of_pair: ArrayLike,
) -> PointArrays:
    """Subsets and seeds of challenge points, given the node of every pair.

    Args:
        seed: the 32-byte challenge seed.
        point_indices: int ``(m,)`` point indices, each in ``[0, 2 n_pairs)``.
        n_items: N.
        p: inclusion probability.
        rho_of_pair: float ``(n_pairs,)``, the node value of every pair
            (:func:`rho_of_pair`).

    Returns:
        ``x`` int8 ``(m, N)`` (pm encoding) and training seeds uint64 ``(m,)``,
        in the order of ``point_indices``.
    """
    rhos = np.asarray(rho_of_pair, dtype=np.float64).reshape(-1)

    def expand(pairs: NDArray[np.int64]) -> ExpandedPairs:
        return expand_pairs(seed, pairs, n_items, p, rhos[pairs])

    return _points(point_indices, 2 * rhos.size, expand)


@dataclass(frozen=True)
class ChallengeLayout:
    """A validated challenge layout (equality = same challenge points).

    Attributes:
        seed: 32 bytes.
        nodes: rho_j, each finite and in ``[-rho_max(p), 1]``.
        pairs_per_node: ``K_j >= 0``, one per node, at least one pair in all.
        n_items: N >= 1.
        p: inclusion probability of B_p, ``0 < p < 1``.

    Raises:
        InvalidArgument: any of the above does not hold (:func:`check_challenge`).
    """

    seed: bytes
    nodes: tuple[float, ...]
    pairs_per_node: tuple[int, ...]
    n_items: int
    p: float

    def __post_init__(self) -> None:
        seed, nodes, counts, p = check_challenge(self.seed, self.nodes, self.pairs_per_node, self.p)
        if isinstance(self.n_items, bool | np.bool_):
            raise InvalidArgument(f"n_items must be an integer, got {self.n_items!r}")
        try:
            n_items = operator.index(self.n_items)
        except TypeError:
            raise InvalidArgument(f"n_items must be an integer, got {self.n_items!r}") from None
        if n_items < 1:
            raise InvalidArgument(f"n_items must be >= 1, got {n_items}")
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "pairs_per_node", counts)
        object.__setattr__(self, "n_items", n_items)
        object.__setattr__(self, "p", p)

    @property
    def n_pairs(self) -> int:
        """Number of pairs, ``sum_j K_j``."""
        return sum(self.pairs_per_node)

    @property
    def n_points(self) -> int:
        """Number of challenge points, ``2 n_pairs``."""
        return 2 * self.n_pairs

    def node_of_pair(self) -> NDArray[np.int64]:
        """Node index of every pair: int64 ``(n_pairs,)``."""
        return node_of_pair(self.pairs_per_node)

    def rho_of_pair(self) -> NDArray[np.float64]:
        """Node value rho of every pair: float64 ``(n_pairs,)``."""
        return rho_of_pair(self.nodes, self.pairs_per_node)

    def node_of(self, pair_indices: ArrayLike) -> NDArray[np.int64]:
        """Node index of the given pairs: int64 ``(m,)``."""
        idx = _indices(pair_indices, self.n_pairs, "pair")
        return _interleaved(self.pairs_per_node)[idx]

    def rho_of(self, pair_indices: ArrayLike) -> NDArray[np.float64]:
        """Node value rho of the given pairs: float64 ``(m,)``."""
        return np.asarray(self.nodes, dtype=np.float64)[self.node_of(pair_indices)]

    def pairs(self, pair_indices: ArrayLike) -> ExpandedPairs:
        """Both subsets and seeds of the given pairs (``expand_pairs`` at their nodes)."""
        idx = _indices(pair_indices, self.n_pairs, "pair")
        return expand_pairs(self.seed, idx, self.n_items, self.p, self.rho_of(idx))

    def points(self, point_indices: ArrayLike) -> PointArrays:
        """Subsets and seeds of the given points.

        Returns:
            ``x`` int8 ``(m, N)`` (pm encoding) and training seeds uint64 ``(m,)``,
            in the order of ``point_indices``.
        """
        return _points(point_indices, self.n_points, self.pairs)
