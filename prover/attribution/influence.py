"""Influence functions: attribution from gradients, without retraining (Koh & Liang 2017).

Both built-in trained tasks minimise a *normalised* objective over the subset S
(|S| = K items, per-item loss ``l_j``, regulariser R)::

    L_S(w) = (1/K) sum_{j in S} l_j(w) + R(w).

Adding item i to S moves the minimiser, to first order (Koh & Liang 2017, eq. 2,
with the reweighting ``K -> K + 1`` of the normalisation), by

    w_{S+i} - w_S  ~  -(1/K) H^{-1} (grad l_i(w) - gbar),   gbar = (1/K) sum_{j in S} grad l_j(w),

with H the Hessian of L_S.  Subsets of B_p hold ``K ~ pN`` items and, because
the loss is normalised, their objective is on average the full-data one, so
all quantities are taken at the *reference model* w* trained on every item
(gbar = mean gradient over all N items).  The pm-encoding score of output
``f_z`` is half the effect of including item i:

    theta_{z,i} = -(1/(2 p N)) grad f_z(w*)^T H^{-1} (grad l_i(w*) - gbar),
    theta0_z   = f_z(w*) - mu sum_i theta_{z,i},

so that ``g_z`` at the mean subset ``E[x] = mu 1`` equals the reference output.

* ``logreg``: the exact ``(d+1) x (d+1)`` Hessian
  ``H = (1/N) sum_j s_j (1 - s_j) x_j x_j^T + lambda diag(1,..,1,0)``,
  ``s_j = sigmoid(y_j w.x_j)``, solved directly (``damping`` added if given).
* ``mlp``: Hessian-vector products by forward-over-reverse autodiff
  (``torch.func``), and ``(H + damping I) u_z = grad f_z`` solved by conjugate
  gradients for each output (Koh & Liang §3; the damping makes the non-convex
  Hessian positive definite).  ``u_z^T grad l_i`` for all i is one JVP.

The scores use the task's public spec and data loaders: the data are reloaded
from the spec and checked against the task's dataset digest, and the reference
model is trained by the task itself; the outputs of this module's own forward
pass are checked against the task's outputs before any score is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover.tasks.base import Task

__all__ = ["InfluenceFit", "fit_influence_function"]

FloatArray = NDArray[np.float64]
#: Reference outputs recomputed here must match the task's within this (absolute).
FORWARD_TOLERANCE = 1e-6


@dataclass(frozen=True, kw_only=True)
class InfluenceFit:
    """Influence-function scores and how they were obtained.

    Attributes:
        theta0: float64 ``(Z,)``; theta: float64 ``(Z, N)`` (pm encoding).
        solver: ``"exact"`` or ``"cg"``.
        damping: damping added to the Hessian.
        iterations: CG iterations per output (empty for the exact solver).
        residuals: relative CG residuals per output (empty for the exact solver).
    """

    theta0: FloatArray
    theta: FloatArray
    solver: str
    damping: float
    iterations: tuple[int, ...] = ()
    residuals: tuple[float, ...] = ()


def fit_influence_function(
    task: Task,
    *,
    reference_seed: int,
    base_dir: Path | None = None,
    damping: float | None = None,
    cg_iterations: int = 200,
    cg_tolerance: float = 1e-8,
) -> InfluenceFit:
    """Influence-function scores of a ``logreg`` or ``mlp`` task.

    Args:
        task: the task (its ``spec`` names the kind).
        reference_seed: training seed of the reference model (all items used).
        base_dir: directory relative data paths of the spec resolve against.
        damping: added to the Hessian; default 0 (logreg) and 0.05 (mlp; its Hessian at the
            SGD solution of the example task has eigenvalues down to about -0.018).
        cg_iterations: CG iteration cap (mlp).
        cg_tolerance: CG stops when ``||r|| <= tol ||b||`` (mlp).

    Raises:
        InvalidArgument: the task kind has no influence-function implementation.
        ProverError: the reloaded data or the recomputed outputs disagree with the task.
    """
    spec = getattr(task, "spec", None)
    kind = getattr(spec, "kind", None)
    if kind == "logreg":
        from prover.attribution.influence_logreg import logreg_influence

        return logreg_influence(
            task, reference_seed=reference_seed, base_dir=base_dir, damping=damping or 0.0
        )
    if kind == "mlp":
        from prover.attribution.influence_mlp import mlp_influence

        return mlp_influence(
            task,
            reference_seed=reference_seed,
            damping=0.05 if damping is None else damping,
            cg_iterations=cg_iterations,
            cg_tolerance=cg_tolerance,
        )
    raise InvalidArgument(
        f"method 'influence-function' supports task kinds 'logreg' and 'mlp', not {kind!r}"
    )


def reference_model(task: Task, reference_seed: int) -> tuple[FloatArray, FloatArray]:
    """Train the model on every item: ``(weights (P,), outputs (Z,))``."""
    x = np.ones((1, task.n_items), dtype=np.int8)
    seeds = np.array([reference_seed], dtype=np.uint64)
    batch = task.train_batch(x, seeds)
    if batch.weights is None:
        raise InvalidArgument(f"task {task!r} has no trained weights to differentiate")
    return np.asarray(batch.weights[0], dtype=np.float64), np.asarray(batch.outputs[0])


def check_reference(task: Task, ours: FloatArray, theirs: FloatArray) -> None:
    """Raise :class:`ProverError` unless recomputed outputs match the task's (unclipped ones).

    The tolerance is :data:`FORWARD_TOLERANCE`, or 1e-3 relative for float32 tasks.
    """
    inside = np.abs(theirs) < task.bound
    gap = float(np.max(np.abs(ours - theirs)[inside], initial=0.0))
    tol = FORWARD_TOLERANCE
    if getattr(getattr(task, "spec", None), "dtype", "float64") == "float32":
        tol = 1e-3 * max(1.0, float(np.abs(theirs).max(initial=0.0)))
    if gap > tol:
        raise ProverError(
            f"influence functions: outputs recomputed from the reference weights differ from "
            f"the task's by {gap:.3g} > {tol:.3g}; the task and "
            "prover.attribution.influence disagree on the model"
        )


def scores_from_directions(
    directional: FloatArray, outputs: FloatArray, p: float
) -> tuple[FloatArray, FloatArray]:
    """Scores from ``directional[z, i] = u_z^T grad l_i`` with ``u_z = H^{-1} grad f_z``.

    Returns ``(theta0 (Z,), theta (Z, N))`` by the formula of the module docstring
    (centring over i subtracts ``u_z^T gbar``).
    """
    n_items = directional.shape[1]
    centred = directional - directional.mean(axis=1, keepdims=True)
    theta = -centred / (2.0 * p * n_items)
    mu = 2.0 * p - 1.0
    theta0 = outputs - mu * theta.sum(axis=1)
    if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(theta0))):
        raise ProverError("influence functions produced non-finite scores (singular Hessian?)")
    return np.asarray(theta0), np.asarray(theta)


def conjugate_gradient(
    matvec: Callable[[FloatArray], FloatArray], b: FloatArray, *, iterations: int, tolerance: float
) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
    """Solve ``A U = B`` column by column for symmetric positive definite A (Hestenes-Stiefel).

    All columns iterate in lockstep so that ``matvec`` is applied to a whole
    ``(P, k)`` block at once; a column stops moving once
    ``||r|| <= tolerance ||b||``.

    Args:
        matvec: ``V (P, k) -> A V (P, k)``.
        b: right-hand sides ``(P, k)``.
        iterations: iteration cap.
        tolerance: relative residual target.

    Returns:
        ``(U (P, k), iterations used per column (k,), relative residuals (k,))``.

    Raises:
        ProverError: a direction of non-positive curvature (A not positive definite).
    """
    u = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rr = np.einsum("pk,pk->k", r, r)
    b_norm = np.sqrt(rr)
    active = b_norm > 0.0
    used = np.zeros(b.shape[1], dtype=np.int64)
    for _ in range(iterations):
        active &= np.sqrt(rr) > tolerance * b_norm
        if not active.any():
            break
        used += active
        ad = matvec(d)
        curv = np.einsum("pk,pk->k", d, ad)
        if np.any(curv[active] <= 0.0):
            raise ProverError(
                "conjugate gradients met non-positive curvature; raise the damping "
                "(--damping) so that H + damping I is positive definite"
            )
        step = np.where(active, rr / np.where(active, curv, 1.0), 0.0)
        u += step * d
        r -= step * ad
        rr_new = np.einsum("pk,pk->k", r, r)
        d = np.where(active, r + (rr_new / np.where(rr > 0, rr, 1.0)) * d, d)
        rr = np.where(active, rr_new, rr)
    return u, used, np.sqrt(rr) / np.where(b_norm > 0, b_norm, 1.0)
