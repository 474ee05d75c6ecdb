"""The Verifier's own trainings: challenge points, pilot and local points.

All of them go through :func:`prover.engine.train` (batched, chunked), with
the task implementation the Verifier loaded itself from its TASK.toml — never
through the Prover's server (docs/design.md §3).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from protocol import challenge
from protocol.prg import expand_points
from prover.engine import train
from prover.tasks.base import Task, TrainedBatch

__all__ = ["challenge_points", "private_points", "train_points"]


def challenge_points(
    seed: bytes,
    point_indices: NDArray[np.int64],
    *,
    n_items: int,
    p: float,
    rho_of_pair: NDArray[np.float64],
) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    """Subsets and seeds of challenge points (point 2k = x of pair k, 2k+1 = its partner).

    The layout is :mod:`protocol.challenge`'s (the Prover's ``ChallengePlan`` uses it too).

    Args:
        seed: the 32-byte challenge seed.
        point_indices: int64 ``(m,)`` point indices.
        n_items: N.
        p: inclusion probability.
        rho_of_pair: float64 ``(n_pairs,)`` node of every pair (``Plan.rho_of_pair()``).

    Returns:
        ``x`` int8 ``(m, N)`` pm encoding and training seeds uint64 ``(m,)``.

    Raises:
        InvalidArgument: a point index outside ``[0, 2 n_pairs)``.
    """
    return challenge.challenge_points(
        seed, point_indices, n_items=n_items, p=p, rho_of_pair=rho_of_pair
    )


def private_points(
    rng: np.random.Generator, n: int, *, n_items: int, p: float
) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    """``n`` points ``x ~ B_p`` with training seeds, expanded from a private 32-byte seed."""
    seed = rng.bytes(32)
    pts = expand_points(seed, np.arange(n, dtype=np.int64), n_items, p)
    return pts.x, pts.seeds


def train_points(
    task: Task,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    *,
    chunk_size: int,
    progress: Callable[[int], object] | None = None,
) -> TrainedBatch:
    """Train one model per row of ``x`` locally (outputs ``(n, Z)``, weights ``(n, P)``/None)."""
    return train(task, x, seeds, chunk_size=chunk_size, progress=progress)
