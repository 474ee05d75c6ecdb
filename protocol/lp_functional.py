"""LP-optimal node functionals: least ``||w||_1`` with no downward bias.

A node functional (:class:`protocol.estimators.NodeFunctional`) estimates
``B_0 + B_1`` from noise stability with bias ``sum_{k>=2} s_k B_k``,
``s_k = sum_j w_j rho_j^k``.  Only a *negative* bias helps a cheating Prover.
This module solves, with HiGHS (:func:`scipy.optimize.linprog`), on a grid of
nodes in ``[-rho_max(p), 1]``:

    minimise ||w||_1  subject to  s_0 = s_1 = 1,  s_2 = 0,
                                  0 <= s_k <= beta  for 3 <= k <= K,

so the functional is exact to degree 2 and its bias is *upward only*, at most
``beta * B_{>=3}``: soundness needs no bound on the tail of the spectrum at
all, and ``beta`` trades ``||w||_1`` (which multiplies the Verifier's spot
checks) against the completeness radius.  ``K = 200`` constraints; the exact
bias interval over every degree is recomputed by
:meth:`~protocol.estimators.NodeFunctional.bias_range`, which the planner charges.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.optimize import linprog

from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional

__all__ = ["LP_BETAS", "lp_functional"]

#: Upward-bias caps beta the planner considers.
LP_BETAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)
_GRID = 81
_MAX_DEGREE = 200


@functools.lru_cache(maxsize=64)
def lp_functional(beta: float, rho_low: float) -> NodeFunctional:
    """The least-``||w||_1`` functional exact to degree 2 with ``0 <= s_k <= beta`` (k >= 3).

    Args:
        beta: upward bias per unit of ``B_{>=3}``, in ``(0, 1]``.
        rho_low: smallest node, ``-rho_max(p)`` (in ``[-1, 0)``).
    """
    if not 0.0 < beta <= 1.0:
        raise InvalidArgument(f"beta must lie in (0, 1], got {beta}")
    if not -1.0 <= rho_low < 0.0:
        raise InvalidArgument(f"rho_low must lie in [-1, 0), got {rho_low}")
    # Interior points rounded for readable plans; the ends exactly rho_low and 1, so
    # no node falls outside [-rho_max(p), 1] by a rounding step.
    inner = np.round(np.linspace(rho_low, 1.0, _GRID)[1:-1], 9)
    grid = np.unique(np.concatenate([[rho_low, 0.0, 1.0], inner[inner > rho_low]]))
    powers = grid[None, :] ** np.arange(_MAX_DEGREE + 1)[:, None]  # rows k, columns nodes
    J = grid.size
    # w = w_plus - w_minus, both >= 0; minimise their sum.
    a_eq = np.hstack([powers[:3], -powers[:3]])
    b_eq = np.array([1.0, 1.0, 0.0])
    upper = powers[3:]
    a_ub = np.vstack([np.hstack([upper, -upper]), np.hstack([-upper, upper])])
    b_ub = np.concatenate([np.full(len(upper), beta), np.zeros(len(upper))])
    res = linprog(
        np.ones(2 * J), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None),
        method="highs",
    )  # fmt: skip
    if not res.success:  # pragma: no cover - the 3-node {-r, 0, r} family is always feasible
        raise InvalidArgument(f"no LP functional for beta={beta}, rho_low={rho_low}")
    w = res.x[:J] - res.x[J:]
    keep = np.abs(w) > 1e-7 * np.abs(w).sum()
    nodes, weights = grid[keep], w[keep]
    # Polish: the smallest correction restoring s_0 = s_1 = 1, s_2 = 0 to round-off.
    a = nodes[None, :] ** np.arange(3)[:, None]
    weights = weights + a.T @ np.linalg.solve(a @ a.T, b_eq - a @ weights)
    return NodeFunctional(
        name="lp",
        nodes=tuple(float(r) for r in nodes),
        weights=tuple(float(x) for x in weights),
        degree=2,
    )
