"""Challenge plans: validation of a challenge request and expansion of its points.

A plan of ``J`` nodes with ``K_j`` pairs each has ``n_pairs = sum_j K_j`` pairs
laid out node by node: pair ``k`` belongs to the node ``j`` with
``sum_{i<j} K_i <= k < sum_{i<=j} K_i``.  Pair ``k`` has the challenge points
``2k`` (its first subset x) and ``2k + 1`` (the rho_j-correlated partner x');
subsets and training seeds come from ``protocol.prg.expand_pairs`` (pacda-prg-v1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import check_rho
from protocol.prg import SEED_BYTES, expand_pairs
from prover.service.types import ChallengeRequest

__all__ = ["ChallengePlan", "plan_from_request"]


@dataclass(frozen=True, kw_only=True)
class ChallengePlan:
    """A validated challenge: seed, p and the pairs per node (equality = same challenge).

    Attributes:
        seed: 32 bytes.
        p: inclusion probability of B_p.
        nodes: rho_j, each in ``[-rho_max(p), 1]``.
        pairs_per_node: K_j >= 0, one per node, at least one pair in total.
    """

    seed: bytes
    p: float
    nodes: tuple[float, ...]
    pairs_per_node: tuple[int, ...]

    @property
    def n_pairs(self) -> int:
        """Number of pairs, ``sum_j K_j``."""
        return sum(self.pairs_per_node)

    @property
    def n_points(self) -> int:
        """Number of challenge points, ``2 n_pairs``."""
        return 2 * self.n_pairs

    def pair_rhos(self, pairs: NDArray[np.int64]) -> NDArray[np.float64]:
        """The node value rho of each pair index in ``pairs``."""
        ends = np.cumsum(np.asarray(self.pairs_per_node, dtype=np.int64))
        node_of = np.searchsorted(ends, pairs, side="right")
        return np.asarray(self.nodes, dtype=np.float64)[node_of]

    def points(
        self, indices: NDArray[np.int64], n_items: int
    ) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
        """Subsets and training seeds of the given point indices.

        Args:
            indices: point indices, each in ``[0, n_points)``.
            n_items: N.

        Returns:
            ``x`` int8 ``(n, N)`` (pm encoding) and ``seeds`` uint64 ``(n,)``, in
            the order of ``indices``.
        """
        idx = np.asarray(indices, dtype=np.int64)
        pairs, where = np.unique(idx // 2, return_inverse=True)
        expanded = expand_pairs(self.seed, pairs, n_items, self.p, self.pair_rhos(pairs))
        second = (idx % 2).astype(bool)
        x = np.where(second[:, None], expanded.second[where], expanded.first[where])
        seeds = np.where(second, expanded.second_seeds[where], expanded.first_seeds[where])
        return x.astype(np.int8), seeds.astype(np.uint64)


def plan_from_request(req: ChallengeRequest, *, task_p: float, max_points: int) -> ChallengePlan:
    """Validate a challenge request against the task and the server's cap.

    Raises:
        InvalidArgument: a seed that is not 32 bytes, ``p`` different from the
            task's, no nodes or a node outside ``[-rho_max, 1]``, pair counts that
            do not match the nodes, an empty plan, more than ``max_points``
            points, or ``start_point`` beyond the last point.
    """
    if len(req.seed) != SEED_BYTES:
        raise InvalidArgument(f"challenge seed must be {SEED_BYTES} bytes, got {len(req.seed)}")
    if not (req.p == task_p):  # also refuses NaN
        raise InvalidArgument(f"p must equal the task's p = {task_p!r}, got {req.p!r}")
    if not req.nodes:
        raise InvalidArgument("plan has no nodes")
    if len(req.pairs_per_node) != len(req.nodes):
        raise InvalidArgument(
            f"plan has {len(req.nodes)} nodes but {len(req.pairs_per_node)} pair counts"
        )
    for j, rho in enumerate(req.nodes):
        if not math.isfinite(rho):
            raise InvalidArgument(f"nodes[{j}]: rho must be finite, got {rho!r}")
        try:
            check_rho(rho, task_p)
        except InvalidArgument as err:
            raise InvalidArgument(f"nodes[{j}]: {err}") from None
    n_points = 2 * sum(req.pairs_per_node)
    if n_points == 0:
        raise InvalidArgument("plan has no pairs")
    if n_points > max_points:
        raise InvalidArgument(
            f"plan has {n_points} points; this Prover serves at most {max_points} per challenge"
        )
    if req.start_point > n_points:
        raise InvalidArgument(f"start_point {req.start_point} is beyond the {n_points} points")
    return ChallengePlan(
        seed=bytes(req.seed),
        p=float(req.p),
        nodes=tuple(float(r) for r in req.nodes),
        pairs_per_node=tuple(int(k) for k in req.pairs_per_node),
    )
