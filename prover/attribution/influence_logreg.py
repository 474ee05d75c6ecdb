"""Influence functions of ``logreg`` with the exact Hessian (see :mod:`.influence`).

The objective of :mod:`prover.tasks.logreg` on the full data (K = N items) is
``L(w) = (1/N) sum_j log(1 + exp(-y_j w.x_j)) + (lambda/2) ||w_{1..d}||^2``
(bias last, not penalised), so

* ``grad l_j(w) = -y_j sigmoid(-y_j w.x_j) x_j``,
* ``H = (1/N) sum_j s_j (1 - s_j) x_j x_j^T + lambda diag(1, .., 1, 0)``,
  ``s_j = sigmoid(y_j w.x_j)``,
* output ``f_z = y_t w.x_t`` on test point t, ``grad f_z = y_t x_t``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover.attribution.influence import (
    InfluenceFit,
    check_reference,
    reference_model,
    scores_from_directions,
)
from prover.tasks.base import Task
from prover.tasks.datasets import load_logreg_data
from prover.tasks.specs import LogregSpec

__all__ = ["logreg_influence"]

FloatArray = NDArray[np.float64]


def _sigmoid(t: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * t)))


def logreg_influence(
    task: Task, *, reference_seed: int, base_dir: Path | None, damping: float
) -> InfluenceFit:
    """Exact-Hessian influence scores of a logreg task (see the module docstring)."""
    spec = getattr(task, "spec", None)
    if not isinstance(spec, LogregSpec):
        raise InvalidArgument(f"expected a logreg task, got {task!r}")
    data = load_logreg_data(
        source=spec.data.source,
        n_train=spec.data.n_train,
        n_test=spec.n_outputs,
        split_seed=spec.data.split_seed,
        standardize=spec.data.standardize,
        base_dir=base_dir,
    )
    if data.digest != getattr(task, "dataset_digest", None):
        raise ProverError(
            "influence functions: the data reloaded from the spec do not match the task's "
            "dataset digest (pass the task file's directory as base_dir)"
        )
    x = np.hstack([data.x_train, np.ones((len(data.x_train), 1))])  # (N, P)
    y = np.asarray(data.y_train, dtype=np.float64)
    x_te = np.hstack([data.x_test, np.ones((len(data.x_test), 1))])  # (Z, P)
    y_te = np.asarray(data.y_test, dtype=np.float64)
    w, outputs = reference_model(task, reference_seed)
    check_reference(task, (x_te @ w) * y_te, outputs)
    margins = y * (x @ w)
    s = _sigmoid(margins)
    decay = np.full(x.shape[1], spec.train.l2)
    decay[-1] = 0.0
    hessian = (x.T * (s * (1.0 - s))) @ x / len(x) + np.diag(decay + damping)
    grads_f = x_te * y_te[:, None]  # (Z, P)
    try:
        u = np.linalg.solve(hessian, grads_f.T)  # (P, Z)
    except np.linalg.LinAlgError as err:
        raise ProverError(
            f"influence functions: the logreg Hessian is singular ({err}); use --damping"
        ) from err
    grads_l = -(y * _sigmoid(-margins))[:, None] * x  # (N, P)
    directional = (grads_l @ u).T  # (Z, N)
    theta0, theta = scores_from_directions(directional, outputs, spec.p)
    return InfluenceFit(theta0=theta0, theta=theta, solver="exact", damping=damping)
