"""A strategic liar against the degree-1 U-statistic: alter the values that lower U most.

The Verifier's statistic is ``U = sum_i v_i H_i / (n (n - 1))`` over clipped
residuals ``v = clip(f - g_a, -c, c)`` with ``H_i = sum_{j != i} v_j K_ij``
(:mod:`protocol.ustatistic`).  Changing point i's value to ``v'`` lowers ``n (n
- 1) U`` by ``2 (v_i - v') H_i`` (the kernel has no diagonal), most at ``v' =
-c sign(H_i)``.  :func:`ustat_lies` picks the points of largest gain summed
over the outputs, in rounds (each round recomputes every ``H`` after the
previous round's lies, so the lies' cross terms count), and sets their values
there; :func:`exact_lies` searches every set and every vertex value for tiny
n (the worst case the Verifier's bound must cover).  :class:`UStatLiePolicy`
is the Prover side (``ustrategic:MULT:COUNT:CLIP``): a consistent liar, its
Merkle root matches its lies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol import ustatistic as us
from protocol.errors import InvalidArgument
from protocol.scores import Scores
from prover.adversaries._state import LieAllotment
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy

__all__ = ["UStatLiePolicy", "UStatLies", "exact_lies", "ustat_lies"]

FloatArray = NDArray[np.float64]
#: Rounds of the greedy search (each recomputes every H_i).
ROUNDS = 8


@dataclass(frozen=True)
class UStatLies:
    """The lied residuals ``(n, Z)`` and the points changed."""

    residuals: FloatArray
    points: NDArray[np.int64]


def _u(x: NDArray[np.int8], v: FloatArray, p: float) -> FloatArray:
    phi = us.features(x, p)
    return us.ustatistic(v, us.row_sums(phi, v))


def ustat_lies(
    x: NDArray[np.int8], residuals: FloatArray, p: float, clip: FloatArray, n_lies: int
) -> UStatLies:
    """Greedy: change at most ``n_lies`` points' values (every output) to lower U most.

    Args:
        x: int8 ``(n, N)`` the points.
        residuals: ``(n, Z)`` honest ``f - g_a`` there.
        p: inclusion probability.
        clip: ``(Z,)`` the Verifier's clip levels (the lied values sit at them).
        n_lies: most points changed (>= 0).
    """
    r = np.array(residuals, dtype=np.float64, copy=True)
    c = np.asarray(clip, dtype=np.float64)
    n = r.shape[0]
    if n_lies < 0:
        raise InvalidArgument(f"n_lies must be >= 0, got {n_lies}")
    changed: list[int] = []
    phi = us.features(x, p)
    budget = min(int(n_lies), n)
    per_round = max(1, math.ceil(budget / ROUNDS))
    while len(changed) < budget:
        v = np.clip(r, -c, c)
        h = us.row_sums(phi, v)
        target = -c[None, :] * np.where(h >= 0, 1.0, -1.0)
        gain = np.sum(np.maximum(2.0 * (v - target) * h, 0.0), axis=1)
        gain[changed] = -np.inf
        take = min(per_round, budget - len(changed))
        best = np.argsort(-gain, kind="stable")[:take]
        best = best[gain[best] > 0]
        if best.size == 0:
            break
        lowers = 2.0 * (v[best] - target[best]) * h[best] > 0  # only where it lowers U
        r[best] = np.where(lowers, target[best], r[best])
        changed.extend(int(i) for i in best)
    return UStatLies(r, np.asarray(sorted(changed), dtype=np.int64))


def exact_lies(
    x: NDArray[np.int8], residuals: FloatArray, p: float, clip: float, n_lies: int
) -> tuple[float, FloatArray]:
    """The lowest U over every set of ``n_lies`` points and every vertex value (one output).

    U is affine in each value (no diagonal), so over the box ``[-c, c]`` its
    least value sits at a vertex; tiny n only (``C(n, l) 2^l`` evaluations).
    Returns ``(U, the residuals reaching it)``.
    """
    r = np.asarray(residuals, dtype=np.float64).reshape(-1, 1)
    v = np.clip(r, -clip, clip)
    best, best_r = float(_u(x, v, p)[0]), v
    for subset in itertools.combinations(range(len(v)), n_lies):
        for signs in itertools.product((-clip, clip), repeat=n_lies):
            w = v.copy()
            w[list(subset), 0] = signs
            u = float(_u(x, w, p)[0])
            if u < best:
                best, best_r = u, w
    return best, best_r


class UStatLiePolicy(ResultPolicy):
    """``ustrategic:MULT:COUNT:CLIP``: lie on about ``MULT * max(COUNT, 1)`` points against U.

    The lies are spread over the result chunks the hook sees in proportion to
    the points each holds (rounded up, never more than the total over a
    session); within a chunk, :func:`ustat_lies` on that chunk's points.

    Args:
        multiple: MULT > 0, lies per tolerated alteration.
        tolerated: COUNT >= 0, the alterations the Verifier tolerates unseen.
        clip: the Verifier's clip level in output units, one for every output or ``(Z,)``.
        scores: the committed scores (g_a).
        n_items: N.
        p: the task's inclusion probability.
        bound: the task's b (lied outputs stay within it).
    """

    def __init__(
        self,
        multiple: float,
        *,
        tolerated: int,
        clip: float | Sequence[float],
        scores: Scores,
        n_items: int,
        p: float,
        bound: float,
    ) -> None:
        if not multiple > 0 or not math.isfinite(multiple):
            raise InvalidArgument(f"multiple must be finite and > 0, got {multiple}")
        levels = np.atleast_1d(np.asarray(clip, dtype=np.float64))
        if tolerated < 0 or not np.all(levels > 0):
            raise InvalidArgument(f"need COUNT >= 0 and CLIP > 0, got {tolerated}, {clip}")
        self.total = math.ceil(float(multiple) * max(int(tolerated), 1))
        self.clip = levels
        self.scores, self.n_items, self.p, self.bound = scores, n_items, p, bound
        self._lies = LieAllotment(self.total)

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        idx = np.asarray(indices, dtype=np.int64)
        n_lies = self._lies.allot(session_id, int(idx.size), 2 * plan.n_pairs)
        if n_lies == 0 or idx.size < 2:
            return outputs, weight_digests
        x, _ = plan.points(idx, self.n_items)
        g = self.scores.predict(x)
        z = outputs.shape[1]
        clip = np.broadcast_to(self.clip, (z,)) if self.clip.size == 1 else self.clip
        lies = ustat_lies(x, outputs - g, self.p, clip, n_lies)
        out = np.clip(g + lies.residuals, -self.bound, self.bound)
        return out, weight_digests
