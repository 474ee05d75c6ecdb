"""Arm adversaries: from parsed names to the scores a Prover commits and its result policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocol.errors import InvalidArgument
from protocol.scores import Scores
from prover.adversaries.catalogue import Adversary, parse_adversary
from prover.adversaries.commitment import BadProofPolicy, ReplayPolicy, RewriteAfterRootPolicy
from prover.adversaries.results import (
    ForgePolicy,
    IgnoreSeedsPolicy,
    LiePolicy,
    ReusePolicy,
    WrongSubsetPolicy,
)
from prover.adversaries.scores import (
    boost_scores,
    influence_scores,
    lazy_scores,
    noise_scores,
    permute_scores,
    scale_scores,
)
from prover.adversaries.strategic import StrategicPolicy
from prover.adversaries.ustat_liar import UStatLiePolicy
from prover.service.policy import HonestPolicy, ResultPolicy
from prover.tasks.base import Task

__all__ = ["Armed", "arm", "manipulate_scores", "result_policy"]


@dataclass(frozen=True, kw_only=True)
class Armed:
    """A cheating Prover's configuration.

    Attributes:
        adversaries: what it does, in the order given.
        scores: the attributions it commits to.
        policy: the hook its answers pass through (:class:`HonestPolicy` if none).
    """

    adversaries: tuple[Adversary, ...]
    scores: Scores
    policy: ResultPolicy

    def describe(self) -> str:
        """``scale:0.5 + lie:0.1`` (or ``honest``)."""
        return " + ".join(str(a) for a in self.adversaries) or "honest"


def manipulate_scores(
    adversary: Adversary, task: Task, scores: Scores, rng: np.random.Generator
) -> Scores:
    """The scores a score-manipulating ``adversary`` commits instead of ``scores``.

    Raises:
        InvalidArgument: ``adversary`` is not a score manipulation, or cannot
            apply to this task.
    """
    p = task.p
    name, params = adversary.name, adversary.params
    if name == "scale":
        return scale_scores(scores, params[0], p=p)
    if name == "boost":
        return boost_scores(scores, params[0], params[1], p=p, rng=rng)
    if name == "noise":
        return noise_scores(scores, params[0], p=p, rng=rng)
    if name == "permute":
        return permute_scores(scores, p=p, rng=rng)
    if name == "lazy":
        return lazy_scores(task, int(params[0]), rng=rng)
    if name == "influence":
        return influence_scores(task, rng=rng)
    raise InvalidArgument(f"adversary {name!r} does not manipulate scores")


def result_policy(
    adversary: Adversary, task: Task, scores: Scores, rng: np.random.Generator
) -> ResultPolicy:
    """The result policy of a result- or commitment-manipulating ``adversary``.

    Args:
        adversary: the adversary.
        task: the task (retraining policies train it).
        scores: the scores the Prover commits to (forgers fit their values to them).
        rng: the adversary's randomness.

    Raises:
        InvalidArgument: ``adversary`` is a score manipulation.
    """
    name, params = adversary.name, adversary.params
    if name == "lie":
        return LiePolicy(params[0], bound=task.bound, rng=rng)
    if name == "forge":
        return ForgePolicy(
            params[0], scores=scores, n_items=task.n_items, bound=task.bound, rng=rng
        )
    if name == "reuse":
        return ReusePolicy(task)
    if name == "ignore-seeds":
        return IgnoreSeedsPolicy(task, rng=rng)
    if name == "wrong-subset":
        return WrongSubsetPolicy(task, p=task.p, rng=rng)
    if name == "strategic":
        # The functional's weights are not in the catalogue text: the policy
        # derives them from each challenge plan's nodes (functional_from_nodes).
        return StrategicPolicy(
            params[0],
            tolerated=int(params[1]),
            clip_levels=params[2],
            weights=None,
            scores=scores,
            n_items=task.n_items,
            bound=task.bound,
        )
    if name == "ustrategic":
        return UStatLiePolicy(
            params[0],
            tolerated=int(params[1]),
            clip=float(params[2]),
            scores=scores,
            n_items=task.n_items,
            p=float(task.p),
            bound=task.bound,
        )
    if name == "rewrite-after-root":
        return RewriteAfterRootPolicy(scores=scores, n_items=task.n_items, bound=task.bound)
    if name == "bad-proof":
        return BadProofPolicy()
    if name == "replay":
        return ReplayPolicy()
    raise InvalidArgument(f"adversary {name!r} does not alter results or commitments")


def arm(
    adversaries: Sequence[Adversary | str], *, task: Task, scores: Scores, seed: int = 0
) -> Armed:
    """Combine at most one score manipulation with at most one result/commitment policy.

    Args:
        adversaries: parsed adversaries or their ``NAME[:PARAMS]`` texts.
        task: the task served.
        scores: the honest scores.
        seed: root of the adversaries' randomness (``numpy.random.SeedSequence``;
            one child stream for the scores, one for the policy).

    Raises:
        InvalidArgument: a bad text, two adversaries of the same kind, or an
            adversary that cannot apply to the task.
    """
    parsed = tuple(a if isinstance(a, Adversary) else parse_adversary(a) for a in adversaries)
    score_ones = [a for a in parsed if a.family == "scores"]
    policy_ones = [a for a in parsed if a.family != "scores"]
    for group, what in ((score_ones, "score manipulation"), (policy_ones, "result policy")):
        if len(group) > 1:
            raise InvalidArgument(
                f"at most one {what} at a time, got {', '.join(str(a) for a in group)}"
            )
    score_seq, policy_seq = np.random.SeedSequence(seed).spawn(2)
    committed = scores
    if score_ones:
        committed = manipulate_scores(score_ones[0], task, scores, np.random.default_rng(score_seq))
    policy: ResultPolicy = HonestPolicy()
    if policy_ones:
        policy = result_policy(policy_ones[0], task, committed, np.random.default_rng(policy_seq))
    return Armed(adversaries=parsed, scores=committed, policy=policy)
