"""Score manipulations: the Prover commits attributions other than its honest ones.

Each function takes the honest :class:`~protocol.scores.Scores` (or the task)
and returns the scores a cheating Prover commits to; results are then
computed honestly, so only the direct gap statistic can catch them
(``err(a) >= epsilon`` means ``err_hat > epsilon/2`` w.p. >= 1 - delta,
docs/design.md §1 "Direct gap estimator").

Wrappers keep ``E_{B_p}[g_a(x)] = theta0 + mu sum_i theta_i`` (mu = 2p - 1)
unchanged by moving ``theta0``, so that the error they add is purely in the
attributions: with ``d = theta' - theta`` (pm encoding) the added degree-1
weight is ``sigma^2 ||d||^2`` (sigma^2 = 4p(1-p)), and by the triangle
inequality in L2(B_p) ``sqrt(err(a')) >= sigma ||d|| - sqrt(err(a))``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import bias_moments
from protocol.scores import Scores
from prover.attribution import fit_datamodel, fit_empirical_influence, fit_influence_function
from prover.engine import train
from prover.tasks.base import Task

__all__ = [
    "boost_scores",
    "influence_scores",
    "lazy_scores",
    "noise_scores",
    "permute_scores",
    "scale_scores",
]

FloatArray = NDArray[np.float64]


def _replace(scores: Scores, theta: FloatArray, p: float) -> Scores:
    """``scores`` with ``theta`` replaced and ``theta0`` moved to keep E[g_a] under B_p."""
    mu, _ = bias_moments(p)
    theta0 = scores.theta0 - mu * (theta - scores.theta).sum(axis=1)
    return Scores(
        theta0=theta0,
        theta=theta,
        task_digest=scores.task_digest,
        method=scores.method,
        meta=dict(scores.meta),
    )


def scale_scores(scores: Scores, factor: float, *, p: float) -> Scores:
    """``scale:F``: every score times F (e.g. shaving every payout by half with F = 0.5)."""
    return _replace(scores, scores.theta * factor, p)


def boost_scores(
    scores: Scores, fraction: float, amount: float, *, p: float, rng: np.random.Generator
) -> Scores:
    """``boost:FRACTION:AMOUNT``: add AMOUNT to the scores of ``ceil(FRACTION N)`` contributors.

    The favoured contributors are drawn uniformly without replacement from
    ``rng`` (the same ones for every output).
    """
    n = scores.n_items
    chosen = rng.choice(n, size=max(1, math.ceil(fraction * n)), replace=False)
    theta = np.array(scores.theta, copy=True)
    theta[:, chosen] += amount
    return _replace(scores, theta, p)


def noise_scores(scores: Scores, sd: float, *, p: float, rng: np.random.Generator) -> Scores:
    """``noise:SD``: independent N(0, SD^2) noise on every score (err grows by ~N SD^2 sigma^2)."""
    return _replace(scores, scores.theta + rng.normal(scale=sd, size=scores.theta.shape), p)


def permute_scores(scores: Scores, *, p: float, rng: np.random.Generator) -> Scores:
    """``permute``: contributor i gets the scores of contributor ``pi(i)``, pi uniform from ``rng``.

    Raises:
        InvalidArgument: N < 2 (nothing to permute).
    """
    n = scores.n_items
    if n < 2:
        raise InvalidArgument("adversary 'permute': the task has fewer than 2 items")
    perm = rng.permutation(n)
    while np.all(perm == np.arange(n)):  # pragma: no cover - probability 1/N!
        perm = rng.permutation(n)
    return _replace(scores, scores.theta[:, perm], p)


def lazy_scores(task: Task, samples: int, *, rng: np.random.Generator) -> Scores:
    """``lazy:SAMPLES``: the Prover fits its scores on only SAMPLES retrainings.

    A ridge datamodel (:func:`prover.attribution.fit_datamodel`) when
    ``SAMPLES >= N + 2``, else difference-of-means empirical influence
    (:func:`prover.attribution.fit_empirical_influence`); subsets from B_p and
    training seeds are drawn from ``rng``.

    Raises:
        InvalidArgument: the fit is impossible (e.g. an item in every subset).
    """
    p = task.p
    x = np.where(rng.random((samples, task.n_items)) < p, 1, -1).astype(np.int8)
    seeds = rng.integers(0, 2**63, size=samples, dtype=np.uint64)
    y = np.asarray(train(task, x, seeds).outputs, dtype=np.float64)
    try:
        if samples >= task.n_items + 2:
            fit = fit_datamodel(x, y, p=p, rng=rng)
            theta0, theta, method = fit.theta0, fit.theta, "datamodel"
        else:
            theta0, theta = fit_empirical_influence(x, y)
            method = "empirical-influence"
    except InvalidArgument as err:
        raise InvalidArgument(f"adversary 'lazy:{samples}': {err}") from None
    return Scores(theta0=theta0, theta=theta, task_digest=task.digest, method=method)


def influence_scores(task: Task, *, rng: np.random.Generator) -> Scores:
    """``influence``: influence-function scores (Koh & Liang 2017) at a model trained on all items.

    Raises:
        InvalidArgument: the task kind has no influence functions (only
            ``logreg`` and ``mlp`` do; ``synthetic`` has no model at all).
    """
    seed = int(rng.integers(0, 2**63))
    try:
        fit = fit_influence_function(task, reference_seed=seed)
    except InvalidArgument as err:
        raise InvalidArgument(f"adversary 'influence': {err}") from None
    return Scores(
        theta0=fit.theta0, theta=fit.theta, task_digest=task.digest, method="influence-function"
    )
