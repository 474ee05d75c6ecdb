"""Measure the noise-stability curve of a task's residuals (``pacda-prover spectrum``).

For ``pairs`` independent subsets ``x ~ B_p`` and a partner ``y`` at each
correlation of ``rhos`` (``rho = 1``: the same subset), every point trained
with its own seed, the residuals ``q = f - g_a`` give

    C(rho) = E[q(x) q(y)] = sum_k rho^k B_k(qbar),     qbar = E_seed q,

pooled over the outputs as ``mean_z q_z(x) q_z(y) / E[q_z^2]`` per pair, so the
standard error comes from the pairs and correlated outputs are not counted as
independent (:mod:`protocol.spectrum` turns the curve into bounds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import check_rho, sample_bp, sample_partner
from protocol.spectrum import Curve
from prover.engine import train
from prover.tasks.base import Task

__all__ = ["RHOS", "Measurement", "measure_curve"]

#: Correlations measured by default: 1 (seed noise), six more down to -1/2.
RHOS = (1.0, 0.95, 0.85, 0.7, 0.5, 0.25, -0.5)
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Measurement:
    """A measured curve and what it was measured on.

    Attributes:
        curve: the pooled curve, in units of ``E[q^2]``.
        second_moments: ``E[q_z^2]`` per output on the independent subsets.
        points: int8 ``(pairs, N)`` the independent subsets (pm encoding).
        residuals: ``(pairs, Z)`` ``q`` on them.
        trainings: models trained, ``pairs * (1 + len(rhos))``.
    """

    curve: Curve
    second_moments: FloatArray
    points: NDArray[np.int8]
    residuals: FloatArray
    trainings: int


def measure_curve(
    task: Task,
    predict: Callable[[NDArray[np.int8]], FloatArray],
    pairs: int,
    *,
    rng: np.random.Generator,
    rhos: tuple[float, ...] = RHOS,
    device: str = "cpu",
    chunk_size: int = 512,
    on_node: Callable[[float, float], None] | None = None,
) -> Measurement:
    """Train ``pairs`` subsets and a partner at every rho; the pooled residual curve.

    Args:
        task: the task.
        predict: ``g_a`` of a batch of pm-encoded subsets, ``(m, Z)``.
        pairs: subsets per node (at least 2).
        rng: source of the subsets and the training seeds.
        rhos: correlations, each in ``[-rho_max(p), 1]``.
        device, chunk_size: as for :func:`prover.engine.train`.
        on_node: called with ``(rho, C(rho))`` after each node (progress).
    """
    if pairs < 2:
        raise InvalidArgument(f"pairs must be >= 2, got {pairs}")
    if not rhos:
        raise InvalidArgument("rhos must name at least one correlation")
    for rho in rhos:
        check_rho(rho, task.p)

    def residuals(x: NDArray[np.int8]) -> FloatArray:
        seeds = rng.integers(0, 2**63, size=len(x), dtype=np.int64).astype(np.uint64)
        out = train(task, x, seeds, chunk_size=chunk_size, device=device).outputs
        return np.asarray(out - predict(x), dtype=np.float64)

    x = sample_bp(rng, pairs, task.n_items, task.p)
    qx = residuals(x)
    m2 = np.maximum(np.mean(qx**2, axis=0), 1e-300)
    values, errors = [], []
    for rho in rhos:
        qy = residuals(sample_partner(rng, x, task.p, rho))
        pooled = np.mean(qx * qy / m2[None, :], axis=1)  # one value per pair
        values.append(float(pooled.mean()))
        errors.append(float(pooled.std(ddof=1) / math.sqrt(pairs)))
        if on_node is not None:
            on_node(rho, values[-1])
    curve = Curve(tuple(float(r) for r in rhos), tuple(values), tuple(errors))
    return Measurement(curve, m2, x, qx, pairs * (1 + len(rhos)))
