"""Random designs of an attribution run, all derived from one root seed.

Randomness is an argument (CONVENTIONS): :class:`Streams` spawns independent
child generators from ``numpy.random.SeedSequence(seed)`` in a fixed, documented
order — never seed arithmetic:

====== ===================== ==============================================
child  name                  draws
====== ===================== ==============================================
0      ``fit_subsets``       the M fitting subsets, row by row from B_p
1      ``fit_seeds``         their uint64 training seeds
2      ``check_subsets``     held-out pair points x and rho-partners x'
3      ``check_seeds``       their training seeds
4      ``validation``        the validation split of the datamodel fit
5      ``reference``         the seed of the reference model (influence functions)
6      ``ensemble``          the ``trak`` ensemble: subsets, seeds, projections
====== ===================== ==============================================

Rows are drawn sequentially, so the first M fitting subsets and seeds are the
same for every larger M: a rerun with more samples and the same result store
retrains nothing already trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional
from protocol.hypercube import sample_bp, sample_partner

__all__ = ["CheckDesign", "Streams", "draw_check_pairs", "draw_fit_design", "draw_seeds"]

# Appending a name keeps every earlier child (SeedSequence.spawn numbers them in order).
_NAMES = (
    "fit_subsets",
    "fit_seeds",
    "check_subsets",
    "check_seeds",
    "validation",
    "reference",
    "ensemble",
)


class Streams:
    """Named independent generators spawned from ``SeedSequence(seed)`` (see the module doc)."""

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise InvalidArgument(f"seed must be an integer in [0, 2**63), got {seed!r}")
        children = np.random.SeedSequence(seed).spawn(len(_NAMES))
        self._children = dict(zip(_NAMES, children, strict=True))

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for stream ``name`` (the same draws on every call)."""
        if name not in self._children:
            raise InvalidArgument(f"unknown stream {name!r}; known: {', '.join(_NAMES)}")
        return np.random.default_rng(self._children[name])


def draw_seeds(rng: np.random.Generator, n: int) -> NDArray[np.uint64]:
    """``n`` uniform 64-bit training seeds: uint64 ``(n,)``."""
    return rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)


def draw_fit_design(
    streams: Streams, n_samples: int, n_items: int, p: float
) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    """The fitting subsets (int8 ``(M, N)``, pm) from B_p and their seeds (uint64 ``(M,)``)."""
    x = sample_bp(streams.generator("fit_subsets"), n_samples, n_items, p)
    return x, draw_seeds(streams.generator("fit_seeds"), n_samples)


@dataclass(frozen=True, kw_only=True)
class CheckDesign:
    """Held-out rho-correlated pairs, laid out node by node.

    Attributes:
        node_index: int64 ``(n,)`` node of each pair.
        first, second: int8 ``(n, N)`` pm subsets x ~ B_p and x' (rho_j-partner of x).
        first_seeds, second_seeds: uint64 ``(n,)`` independent training seeds.
    """

    node_index: NDArray[np.int64]
    first: NDArray[np.int8]
    second: NDArray[np.int8]
    first_seeds: NDArray[np.uint64]
    second_seeds: NDArray[np.uint64]

    @property
    def n_pairs(self) -> int:
        return int(self.node_index.shape[0])

    def points(self) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
        """All 2n points (firsts then seconds) and seeds, for one training call."""
        return (
            np.concatenate([self.first, self.second]),
            np.concatenate([self.first_seeds, self.second_seeds]),
        )


def draw_check_pairs(
    streams: Streams, functional: NodeFunctional, n_pairs: int, n_items: int, p: float
) -> CheckDesign:
    """Pairs for the direct gap estimator, ``functional.allocation(n_pairs)`` per node.

    For node rho_j: ``x ~ B_p`` and ``x'`` its rho_j-partner
    (:func:`protocol.hypercube.sample_partner`), so both points are marginally B_p
    and ``E[q(x) q(x')] = sum_k rho_j^k B_k(qbar)`` (docs/design.md §1).
    """
    counts = functional.allocation(n_pairs)
    rng = streams.generator("check_subsets")
    firsts, seconds = [], []
    for rho, count in zip(functional.nodes, counts, strict=True):
        x = sample_bp(rng, count, n_items, p)
        firsts.append(x)
        seconds.append(sample_partner(rng, x, p, rho))
    node_index = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    seeds = draw_seeds(streams.generator("check_seeds"), 2 * len(node_index))
    return CheckDesign(
        node_index=node_index,
        first=np.concatenate(firsts),
        second=np.concatenate(seconds),
        first_seeds=seeds[: len(node_index)],
        second_seeds=seeds[len(node_index) :],
    )
