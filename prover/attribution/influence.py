"""Influence functions: attribution from gradients, without retraining (Koh & Liang 2017).

One implementation for every task that exposes its model through
:meth:`prover.tasks.base.Task.differentiable` (a
:class:`~prover.tasks.base.DifferentiableModel`: per-item training losses
``l_j``, a regulariser R and the measured outputs, as torch functions of the
flat weights).  The task's training minimises a *normalised* objective over
the subset S (|S| = K items)::

    L_S(w) = (1/K) sum_{j in S} l_j(w) + R(w).

Adding item i to S moves the minimiser, to first order (Koh & Liang 2017, eq. 2,
with the reweighting ``K -> K + 1`` of the normalisation), by

    w_{S+i} - w_S  ~  -(1/K) H^{-1} (grad l_i(w) - gbar),   gbar = (1/K) sum_{j in S} grad l_j(w),

with H the Hessian of L_S.  Subsets of B_p hold ``K ~ pN`` items and, because
the loss is normalised, their objective is on average the full-data one, so
all quantities are taken at the *reference model* w* trained by the task on
every item (gbar = mean gradient over all N items).  The pm-encoding score of
output ``f_z`` is half the effect of including item i:

    theta_{z,i} = -(1/(2 p N)) grad f_z(w*)^T H^{-1} (grad l_i(w*) - gbar),
    theta0_z   = f_z(w*) - mu sum_i theta_{z,i},

so that ``g_z`` at the mean subset ``E[x] = mu 1`` equals the reference output.

``(H + damping I) u_z = grad f_z`` is solved by one of two strategies
(:class:`InfluenceOptions` ``solver``):

* ``exact``: the P x P Hessian, formed from Hessian-vector products against
  the identity (in blocks of :data:`EXACT_BLOCK` columns), and a direct solve;
* ``cg``: conjugate gradients on Hessian-vector products (reverse over reverse:
  a double backward through ``grad L``, batched over the Z right-hand sides),
  so memory stays ``O(N P)`` and no P x P matrix is formed;
* ``auto`` (default) picks ``exact`` when ``P <= exact_max_params``.

``u_z^T grad l_i`` for all i uses the ``(N, P)`` per-item gradients (one
``jacrev``).  Forward-mode ``torch.func.jvp`` would also do, but in torch 2.13
its first use emits a ``torch.jit.script`` DeprecationWarning.  A non-convex
objective (``mlp``: SGD does not reach a stationary point either) needs
``damping > 0`` (Koh & Liang §4.2); the task's ``default_damping`` applies
when none is given (0 for ``logreg``, 0.05 for ``mlp``).

Before any score, the outputs the hooks compute at the reference weights are
checked against the outputs the task's own training reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover.attribution.method import FitContext, Method, MethodFit
from prover.attribution.sampling import draw_seeds
from prover.tasks.base import DifferentiableModel, Task

if TYPE_CHECKING:
    import torch

__all__ = [
    "EXACT_MAX_PARAMS",
    "SOLVERS",
    "InfluenceFit",
    "InfluenceFunctionMethod",
    "InfluenceOptions",
    "conjugate_gradient",
    "fit_influence_function",
]

FloatArray = NDArray[np.float64]
Solver = Literal["auto", "exact", "cg"]
#: The Hessian strategies (``auto`` chooses between the other two by P).
SOLVERS: tuple[str, ...] = ("auto", "exact", "cg")
#: ``auto`` forms the exact Hessian up to this many parameters.
EXACT_MAX_PARAMS = 512
#: Hessian columns formed per batched double backward by the exact strategy.
EXACT_BLOCK = 128
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


@dataclass(frozen=True, kw_only=True)
class InfluenceOptions:
    """Options of the ``influence-function`` method.

    Attributes:
        damping: Tikhonov damping added to the Hessian (Koh & Liang 2017 §4.2);
            None means the task's ``default_damping``.
        solver: ``auto``, ``exact`` or ``cg`` (see the module docstring).
        exact_max_params: ``auto`` uses the exact Hessian up to this many parameters.
        cg_iterations: conjugate-gradient iteration cap.
        cg_tolerance: CG stops when ``||r|| <= tol ||b||``.
    """

    damping: float | None = None
    solver: Solver = "auto"
    exact_max_params: int = EXACT_MAX_PARAMS
    cg_iterations: int = 200
    cg_tolerance: float = 1e-8

    def __post_init__(self) -> None:
        if self.damping is not None and not (
            isinstance(self.damping, int | float)
            and self.damping >= 0.0
            and math.isfinite(self.damping)
        ):
            raise InvalidArgument(f"damping must be finite and >= 0, got {self.damping}")
        if self.solver not in SOLVERS:
            raise InvalidArgument(
                f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}"
            )
        for name in ("exact_max_params", "cg_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
        if not (self.cg_tolerance > 0.0 and math.isfinite(self.cg_tolerance)):
            raise InvalidArgument(f"cg_tolerance must be finite and > 0, got {self.cg_tolerance}")


class InfluenceFunctionMethod(Method):
    """``influence-function``: no retraining beyond one reference model on every item."""

    name: ClassVar[str] = "influence-function"
    options_class: ClassVar[type[InfluenceOptions]] = InfluenceOptions
    config_fields: ClassVar[tuple[str, ...]] = ("damping", "cg_iterations")
    uses_samples: ClassVar[bool] = False

    def fit(self, ctx: FitContext, options: InfluenceOptions) -> MethodFit:
        ref_seed = int(draw_seeds(ctx.streams.generator("reference"), 1)[0])
        ctx.log(f"influence functions: training the reference model (all {ctx.task.n_items} items)")
        inf = fit_influence_function(
            ctx.task,
            reference_seed=ref_seed,
            damping=options.damping,
            solver=options.solver,
            exact_max_params=options.exact_max_params,
            cg_iterations=options.cg_iterations,
            cg_tolerance=options.cg_tolerance,
        )
        meta = {
            "solver": inf.solver,
            "damping": inf.damping,
            "reference_seed": str(ref_seed),
            "cg_iterations": list(inf.iterations),
            "cg_relative_residuals": list(inf.residuals),
        }
        return MethodFit(theta0=inf.theta0, theta=inf.theta, meta=meta)


def _kind(task: Task) -> str:
    return str(getattr(getattr(task, "spec", None), "kind", type(task).__name__))


def fit_influence_function(
    task: Task,
    *,
    reference_seed: int,
    base_dir: Path | None = None,
    damping: float | None = None,
    solver: str = "auto",
    exact_max_params: int = EXACT_MAX_PARAMS,
    cg_iterations: int = 200,
    cg_tolerance: float = 1e-8,
) -> InfluenceFit:
    """Influence-function scores of a task with a differentiable model.

    Args:
        task: the task; ``task.differentiable()`` must return its model.
        reference_seed: training seed of the reference model (all items used).
        base_dir: unused (the data come from the task's hooks); kept for callers.
        damping: added to the Hessian; default the model's ``default_damping``.
        solver: ``auto``, ``exact`` or ``cg``.
        exact_max_params: ``auto`` forms the exact Hessian up to this P.
        cg_iterations: CG iteration cap.
        cg_tolerance: CG stops when ``||r|| <= tol ||b||``.

    Raises:
        InvalidArgument: the task has no differentiable model, bad options, or
            damping 0 on a non-convex objective.
        ProverError: the hooks disagree with the task's training, a singular
            Hessian, or CG meeting non-positive curvature.
    """
    import torch
    from torch.func import jacrev

    options = InfluenceOptions(
        damping=damping,
        solver=solver,  # type: ignore[arg-type]
        exact_max_params=exact_max_params,
        cg_iterations=cg_iterations,
        cg_tolerance=cg_tolerance,
    )
    model = task.differentiable()
    if model is None:
        raise InvalidArgument(
            "method 'influence-function' needs a task with a differentiable model "
            f"(Task.differentiable); task kind {_kind(task)!r} has none"
        )
    damp = model.default_damping if options.damping is None else float(options.damping)
    if not model.convex and not damp > 0.0:
        raise InvalidArgument(
            f"influence functions on {_kind(task)} need damping > 0 (the loss is not convex), "
            f"got {damp}"
        )
    w_np, outputs = reference_model(task, reference_seed)
    if w_np.shape != (model.n_params,):
        raise ProverError(
            f"{_kind(task)} weights have shape {w_np.shape}, its differentiable model "
            f"expects ({model.n_params},)"
        )
    w = torch.as_tensor(w_np, dtype=torch.float64)
    with torch.no_grad():
        check_reference(task, model.outputs(w).detach().numpy(), outputs)
    grads_f = jacrev(model.outputs)(w).detach().numpy()  # (Z, P)
    system = _DampedHessian(model, w, damp)
    use_exact = options.solver == "exact" or (
        options.solver == "auto" and model.n_params <= options.exact_max_params
    )
    rhs = np.ascontiguousarray(grads_f.T)  # (P, Z)
    iterations: tuple[int, ...] = ()
    residuals: tuple[float, ...] = ()
    if use_exact:
        sol = _solve_exact(system, rhs)
    else:
        sol, used, res = conjugate_gradient(
            system.matvec, rhs, iterations=options.cg_iterations, tolerance=options.cg_tolerance
        )
        iterations = tuple(int(i) for i in used)
        residuals = tuple(float(r) for r in res)
    per_item = jacrev(model.item_losses)(w).detach().numpy()  # (N, P)
    directional = (per_item @ sol).T  # (Z, N): u_z^T grad l_i
    theta0, theta = scores_from_directions(directional, outputs, task.p)
    return InfluenceFit(
        theta0=theta0,
        theta=theta,
        solver="exact" if use_exact else "cg",
        damping=damp,
        iterations=iterations,
        residuals=residuals,
    )


class _DampedHessian:
    """``V -> (H + damping I) V`` at w for blocks ``V (P, k)``: reverse over reverse."""

    def __init__(self, model: DifferentiableModel, w: torch.Tensor, damping: float) -> None:
        import torch

        self._torch = torch
        self.n_params = model.n_params
        self.damping = damping
        self._w = w.clone().requires_grad_(True)
        (self._grad,) = torch.autograd.grad(model.objective(self._w), self._w, create_graph=True)

    def matvec(self, vecs: FloatArray) -> FloatArray:
        torch = self._torch
        t = torch.as_tensor(np.ascontiguousarray(vecs.T), dtype=torch.float64)
        (out,) = torch.autograd.grad(
            self._grad, self._w, t, retain_graph=True, is_grads_batched=True
        )
        return np.asarray(out.detach().numpy().T + self.damping * vecs)


def _solve_exact(system: _DampedHessian, rhs: FloatArray) -> FloatArray:
    """``(H + damping I)^{-1} rhs`` with the Hessian formed column block by column block."""
    p = system.n_params
    eye = np.eye(p)
    cols = [system.matvec(eye[:, s : s + EXACT_BLOCK]) for s in range(0, p, EXACT_BLOCK)]
    hessian = np.concatenate(cols, axis=1)
    hessian = 0.5 * (hessian + hessian.T)  # symmetric up to rounding; make it exactly so
    try:
        return np.asarray(np.linalg.solve(hessian, rhs))
    except np.linalg.LinAlgError as err:
        raise ProverError(
            f"influence functions: the Hessian is singular ({err}); use --damping"
        ) from err


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
            f"the task's by {gap:.3g} > {tol:.3g}; the task's differentiable model and its "
            "training disagree"
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
