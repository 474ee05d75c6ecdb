"""Result manipulations: consistent liars, whose Merkle root matches their lies.

These Provers commit to honest attributions (or to manipulated ones, when
combined with a score manipulation) and then alter challenge *results* before
committing to them, through the :meth:`~prover.service.policy.ResultPolicy.results`
hook; openings carry the committed values and weights consistent with the
committed weight digests, so every commitment check passes.  What catches
them is the spot check (docs/design.md §2 step 7): the Verifier retrains the opened
points with the challenge's own subsets and seeds and compares within tau.
With m corrupted of n results and k spot checks drawn uniformly, all are
missed with probability ``<= (1 - m/n)^k <= exp(-k m / n)``; the planner
tolerates ``m* = plan.tolerated_corruptions`` corruptions unseen (they move
the statistic by at most the corruption budget).
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from protocol.messages import Opening
from protocol.scores import Scores
from prover.adversaries._state import SessionWeights, Trained, train_digests
from prover.service.plan import ChallengePlan
from prover.service.policy import ResultPolicy
from prover.tasks.base import Task

__all__ = [
    "FORGE_NOISE",
    "ForgePolicy",
    "IgnoreSeedsPolicy",
    "LiePolicy",
    "ReusePolicy",
    "WrongSubsetPolicy",
]

#: Standard deviation of the noise a forger adds to g_a(x) (output units).
FORGE_NOISE = 0.01


class _RandomPolicy(ResultPolicy):
    """A policy with a private generator, drawn from under a lock (hooks run on RPC threads)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._lock = threading.Lock()

    def _mask(self, n: int, fraction: float) -> NDArray[np.bool_]:
        with self._lock:
            return np.asarray(self._rng.random(n) < fraction)


class LiePolicy(_RandomPolicy):
    """``lie:FRACTION``: with probability FRACTION a result becomes uniform values in [-b, b].

    Args:
        fraction: probability that a result is a lie.
        bound: the task's b.
        rng: the liar's randomness.
    """

    def __init__(self, fraction: float, *, bound: float, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.fraction = fraction
        self.bound = bound

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        lie = self._mask(len(indices), self.fraction)
        out = np.array(outputs, copy=True)
        with self._lock:
            shape = (int(lie.sum()), out.shape[1])
            out[lie] = self._rng.uniform(-self.bound, self.bound, size=shape)
        return out, weight_digests


class ForgePolicy(_RandomPolicy):
    """``forge:FRACTION``: replace a FRACTION of results by ``g_a(x) + N(0, FORGE_NOISE^2)``.

    On forged points the residual ``q = f - g_a`` is pure noise, so they pull
    the direct gap estimate towards 0: the committed scores look optimal
    there.  Combined with a score manipulation, a large enough FRACTION hides
    any err(a) from the statistic — only spot checks stand in the way.

    Args:
        fraction: probability that a result is forged.
        scores: the committed scores (a).
        n_items: N.
        bound: the task's b (forged values are clipped to [-b, b]).
        rng: the forger's randomness.
    """

    def __init__(
        self,
        fraction: float,
        *,
        scores: Scores,
        n_items: int,
        bound: float,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(rng)
        self.fraction = fraction
        self.scores = scores
        self.n_items = n_items
        self.bound = bound

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        forged = self._mask(len(indices), self.fraction)
        out = np.array(outputs, copy=True)
        if forged.any():
            x, _ = plan.points(indices[forged], self.n_items)
            with self._lock:
                noise = self._rng.normal(scale=FORGE_NOISE, size=(int(forged.sum()), out.shape[1]))
            out[forged] = np.clip(self.scores.predict(x) + noise, -self.bound, self.bound)
        return out, weight_digests


class _RetrainingPolicy(ResultPolicy):
    """Commits results it trained itself; opens them with the matching weights."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.weights = SessionWeights()

    def _train(
        self, session_id: str, plan: ChallengePlan, indices: NDArray[np.int64]
    ) -> Trained:  # pragma: no cover - abstract
        raise NotImplementedError

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        trained = self._train(session_id, plan, indices)
        self.weights.put(session_id, indices, trained.weights)
        return trained.outputs, trained.digests

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        mine = self.weights.get(session_id, opening.point_index)
        if mine is None:
            return opening
        return Opening(
            point_index=opening.point_index,
            outputs=opening.outputs,
            weight_digest=opening.weight_digest,
            weights=mine,
            proof=opening.proof,
        )


class IgnoreSeedsPolicy(_RetrainingPolicy):
    """``ignore-seeds``: train the challenge subsets with seeds of its own choosing.

    Caught wherever the training seed matters (e.g. ``synthetic``'s seed noise,
    ``mlp``'s initialisation and minibatch order).  On a task whose training is
    deterministic (``logreg``: full-batch GD from w = 0, the seed is unused) the
    results are bit-identical to honest ones: there is nothing to catch.
    """

    def __init__(self, task: Task, *, rng: np.random.Generator) -> None:
        super().__init__(task)
        self._rng = rng
        self._lock = threading.Lock()

    def _train(self, session_id: str, plan: ChallengePlan, indices: NDArray[np.int64]) -> Trained:
        x, _ = plan.points(indices, self.task.n_items)
        with self._lock:
            seeds = self._rng.integers(0, 2**63, size=len(indices), dtype=np.uint64)
        return train_digests(self.task, x, seeds)


class WrongSubsetPolicy(_RetrainingPolicy):
    """``wrong-subset``: train fresh B_p subsets (its own draw) with the challenge's seeds."""

    def __init__(self, task: Task, *, p: float, rng: np.random.Generator) -> None:
        super().__init__(task)
        self.p = p
        self._rng = rng
        self._lock = threading.Lock()

    def _train(self, session_id: str, plan: ChallengePlan, indices: NDArray[np.int64]) -> Trained:
        _, seeds = plan.points(indices, self.task.n_items)
        with self._lock:
            u = self._rng.random((len(indices), self.task.n_items))
        x = np.where(u < self.p, 1, -1).astype(np.int8)
        return train_digests(self.task, x, seeds)


class ReusePolicy(_RetrainingPolicy):
    """``reuse``: one trained model (the session's first point) answers every challenge."""

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self._first: dict[str, Trained] = {}
        self._lock = threading.Lock()

    def _train(self, session_id: str, plan: ChallengePlan, indices: NDArray[np.int64]) -> Trained:
        with self._lock:
            one = self._first.get(session_id)
        if one is None:
            x, seeds = plan.points(indices[:1], self.task.n_items)
            one = train_digests(self.task, x, seeds)
            with self._lock:
                one = self._first.setdefault(session_id, one)
        n = len(indices)
        weights = None if one.weights is None else np.repeat(one.weights, n, axis=0)
        return Trained(
            np.repeat(one.outputs, n, axis=0), np.repeat(one.digests, n, axis=0), weights
        )
