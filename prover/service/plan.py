"""Challenge plans: validation of a challenge request and expansion of its points.

The layout of a challenge (pairs interleaved over the nodes, point ``2k`` the first subset of
pair ``k`` and ``2k + 1`` its partner, subsets and seeds from pacda-prg-v1) is
:mod:`protocol.challenge`'s; a :class:`ChallengePlan` is a
:class:`~protocol.challenge.ChallengeLayout` still waiting for N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.challenge import ChallengeLayout, check_challenge, check_seed
from protocol.errors import InvalidArgument
from protocol.messages import ChallengeRequest

__all__ = ["ChallengePlan", "plan_from_request"]


@dataclass(frozen=True, kw_only=True)
class ChallengePlan:
    """A validated challenge: seed, p and the pairs per node (equality = same challenge).

    Attributes:
        seed: 32 bytes.
        p: inclusion probability of B_p.
        nodes: rho_j, each in ``[-rho_max(p), 1]``.
        pairs_per_node: K_j >= 0, one per node, at least one pair in total.

    Raises:
        InvalidArgument: any of the above does not hold
            (:func:`protocol.challenge.check_challenge`).
    """

    seed: bytes
    p: float
    nodes: tuple[float, ...]
    pairs_per_node: tuple[int, ...]

    def __post_init__(self) -> None:
        seed, nodes, counts, p = check_challenge(self.seed, self.nodes, self.pairs_per_node, self.p)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "pairs_per_node", counts)
        object.__setattr__(self, "p", p)

    @property
    def n_pairs(self) -> int:
        """Number of pairs, ``sum_j K_j``."""
        return sum(self.pairs_per_node)

    @property
    def n_points(self) -> int:
        """Number of challenge points, ``2 n_pairs``."""
        return 2 * self.n_pairs

    def layout(self, n_items: int) -> ChallengeLayout:
        """The challenge layout of this plan for N = ``n_items``."""
        return ChallengeLayout(self.seed, self.nodes, self.pairs_per_node, n_items, self.p)

    def pair_rhos(self, pairs: NDArray[np.int64]) -> NDArray[np.float64]:
        """The node value rho of each pair index in ``pairs``."""
        return self.layout(1).rho_of(pairs)  # N plays no part in the node of a pair

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
        return self.layout(n_items).points(indices)


def plan_from_request(req: ChallengeRequest, *, task_p: float, max_points: int) -> ChallengePlan:
    """Validate a challenge request against the task and the server's cap.

    Raises:
        InvalidArgument: a seed that is not 32 bytes, ``p`` different from the
            task's, no nodes or a node outside ``[-rho_max, 1]``, pair counts that
            do not match the nodes or are negative, an empty plan, more than ``max_points``
            points, or ``start_point`` beyond the last point.
    """
    check_seed(req.seed)
    if not (req.p == task_p):  # also refuses NaN
        raise InvalidArgument(f"p must equal the task's p = {task_p!r}, got {req.p!r}")
    plan = ChallengePlan(seed=req.seed, p=req.p, nodes=req.nodes, pairs_per_node=req.pairs_per_node)
    if plan.n_points > max_points:
        raise InvalidArgument(
            f"plan has {plan.n_points} points; this Prover serves at most {max_points} "
            "per challenge"
        )
    if req.start_point > plan.n_points:
        raise InvalidArgument(f"start_point {req.start_point} is beyond the {plan.n_points} points")
    return plan
