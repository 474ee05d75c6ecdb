"""Influence functions of ``mlp`` by conjugate gradients on Hessian-vector products.

The objective of :mod:`prover.tasks.mlp` on the full data (K = N images) is
``L(w) = (1/N) sum_j CE(logits_j(w), y_j) + (wd/2)(||W1||^2 + ||W2||^2)`` with
``logits = relu(u W1 + b1) W2 + b2`` (the expectation of the minibatch SGD
objective).  With w flat (``W1, b1, W2, b2`` row-major, the task's weight
layout):

* ``H V`` for a block of vectors is a reverse-over-reverse product (double
  backward through ``grad L``, batched over the block),
* ``(H + damping I) u_z = grad f_z`` is solved by conjugate gradients for all
  outputs in lockstep,
* ``u_z^T grad l_i`` uses the ``(N, P)`` per-example gradients (one ``jacrev``),

so memory stays ``O(N P)`` and no P x P matrix is formed.  (Forward-mode
``torch.func.jvp`` would also do, but in torch 2.13 its first use emits a
``torch.jit.script`` DeprecationWarning.)  SGD does not reach a stationary
point and the loss is not convex: the damping (Koh & Liang 2017 §4.2) keeps
the system positive definite.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch.func import jacrev

from protocol.errors import InvalidArgument, ProverError
from prover.attribution.influence import (
    InfluenceFit,
    check_reference,
    conjugate_gradient,
    reference_model,
    scores_from_directions,
)
from prover.tasks.base import Task
from prover.tasks.datasets import load_digits_split
from prover.tasks.specs import MlpSpec

__all__ = ["mlp_influence"]

FloatArray = NDArray[np.float64]
N_CLASSES = 10


class _Model:
    """The digits MLP as a function of its flat parameter vector (float64)."""

    def __init__(self, n_in: int, hidden: int, weight_decay: float) -> None:
        self.shapes = [(n_in, hidden), (hidden,), (hidden, N_CLASSES), (N_CLASSES,)]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.weight_decay = weight_decay

    @property
    def n_params(self) -> int:
        return sum(self.sizes)

    def unflatten(self, w: torch.Tensor) -> list[torch.Tensor]:
        parts = torch.split(w, self.sizes)
        return [p.reshape(s) for p, s in zip(parts, self.shapes, strict=True)]

    def logits(self, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = self.unflatten(w)
        return torch.relu(u @ w1 + b1) @ w2 + b2

    def losses(self, w: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-example cross-entropy ``(n,)``."""
        return torch.nn.functional.cross_entropy(self.logits(w, u), labels, reduction="none")

    def objective(self, w: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w1, _, w2, _ = self.unflatten(w)
        decay = 0.5 * self.weight_decay * ((w1 * w1).sum() + (w2 * w2).sum())
        return self.losses(w, u, labels).mean() + decay

    def margins(self, w: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Correct-class logit minus the largest other logit ``(Z,)``."""
        z = self.logits(w, u)
        correct = z.gather(1, labels[:, None]).squeeze(1)
        others = z.masked_fill(torch.nn.functional.one_hot(labels, N_CLASSES).bool(), -torch.inf)
        return correct - others.amax(dim=1)


def mlp_influence(
    task: Task,
    *,
    reference_seed: int,
    damping: float,
    cg_iterations: int,
    cg_tolerance: float,
) -> InfluenceFit:
    """CG influence scores of an mlp task (see the module docstring)."""
    spec = getattr(task, "spec", None)
    if not isinstance(spec, MlpSpec):
        raise InvalidArgument(f"expected an mlp task, got {task!r}")
    if not damping > 0.0:
        raise InvalidArgument(
            f"influence functions on mlp need damping > 0 (the loss is not convex), got {damping}"
        )
    data = load_digits_split(
        n_train=spec.data.n_train, n_test=spec.n_outputs, split_seed=spec.data.split_seed
    )
    if data.digest != getattr(task, "dataset_digest", None):
        raise ProverError("influence functions: reloaded digits do not match the task's digest")
    dt = torch.float64
    u = torch.as_tensor(data.x_train, dtype=dt)
    labels = torch.as_tensor(data.y_train, dtype=torch.int64)
    u_te = torch.as_tensor(data.x_test, dtype=dt)
    labels_te = torch.as_tensor(data.y_test, dtype=torch.int64)
    model = _Model(u.shape[1], spec.model.hidden, spec.train.weight_decay)
    w_np, outputs = reference_model(task, reference_seed)
    if w_np.shape != (model.n_params,):
        raise ProverError(f"mlp weights have shape {w_np.shape}, expected ({model.n_params},)")
    w = torch.as_tensor(w_np, dtype=dt)
    with torch.no_grad():
        check_reference(task, model.margins(w, u_te, labels_te).numpy(), outputs)
    grads_f = jacrev(lambda v: model.margins(v, u_te, labels_te))(w).detach().numpy()  # (Z, P)
    w_leaf = w.clone().requires_grad_(True)
    (objective_grad,) = torch.autograd.grad(
        model.objective(w_leaf, u, labels), w_leaf, create_graph=True
    )

    def hvp_block(vecs: FloatArray) -> FloatArray:
        """``(H + damping I) V`` for ``V (P, k)``: reverse-over-reverse, batched over columns."""
        t = torch.as_tensor(np.ascontiguousarray(vecs.T), dtype=dt)
        (out,) = torch.autograd.grad(
            objective_grad, w_leaf, t, retain_graph=True, is_grads_batched=True
        )
        return np.asarray(out.detach().numpy().T + damping * vecs)

    sol, iterations, residuals = conjugate_gradient(
        hvp_block, np.ascontiguousarray(grads_f.T), iterations=cg_iterations, tolerance=cg_tolerance
    )
    per_example = jacrev(lambda v: model.losses(v, u, labels))(w).detach().numpy()  # (N, P)
    directional = (per_example @ sol).T  # (Z, N): u_z^T grad l_i
    theta0, theta = scores_from_directions(directional, outputs, spec.p)
    return InfluenceFit(
        theta0=theta0,
        theta=theta,
        solver="cg",
        damping=damping,
        iterations=tuple(int(i) for i in iterations),
        residuals=tuple(float(r) for r in residuals),
    )
