"""The verdict types of a decision and the checks every decision applies to its inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, VerificationError
from protocol.escalation import Escalation
from protocol.plan_types import Plan

__all__ = ["Decision", "OutputDecision", "as_matrix", "check_outputs"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class OutputDecision:
    """The verdict for one output.

    Attributes:
        output: index z.
        estimate: ``err_hat_z`` (squared output units).
        standard_error: its estimated standard deviation.
        interval: ``(estimate - t, estimate + t)`` with t the sampling deviation.
        certified_upper: upper bound on ``err_z`` (see module docstring).
        accept: ``estimate <= threshold`` (and, in practical planning, few clipped values).
        clipped_fraction: fraction of values winsorised (0 in rigorous planning).
        reason: empty when accepted, else why not.
    """

    output: int
    estimate: float
    standard_error: float
    interval: tuple[float, float]
    certified_upper: float
    accept: bool
    clipped_fraction: float
    reason: str


@dataclass(frozen=True)
class Decision:
    """All outputs' verdicts; ``accept`` iff every output accepts.

    ``stage``: clipped-gap plans, the stage of spot checks the verdict was
    reached at (its clip multiple, tolerated corruptions and failure
    probabilities); ``None`` for the plan's own first stage.
    """

    accept: bool
    threshold: float
    outputs: tuple[OutputDecision, ...]
    stage: Escalation | None = None

    @property
    def reason(self) -> str:
        """Human-readable reason for an abort ("" on accept)."""
        return "; ".join(o.reason for o in self.outputs if not o.accept)


def as_matrix(name: str, a: FloatArray, rows: int, cols: int) -> FloatArray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1 and cols == 1:
        arr = arr[:, None]
    if arr.shape != (rows, cols):
        raise InvalidArgument(f"{name} must have shape ({rows}, {cols}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise VerificationError(f"{name} contains NaN or infinite values")
    return arr


def check_outputs(name: str, a: FloatArray, plan: Plan, rows: int) -> FloatArray:
    arr = as_matrix(name, a, rows, plan.request.n_outputs)
    b = plan.request.bound
    if np.any(np.abs(arr) > b):
        worst = float(np.abs(arr).max())
        raise VerificationError(f"{name}: output {worst:.6g} lies outside the bound [-{b}, {b}]")
    return arr


def pair_residuals(
    plan: Plan,
    *,
    first_outputs: FloatArray,
    second_outputs: FloatArray,
    first_predictions: FloatArray,
    second_predictions: FloatArray,
    rows: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Checked residuals ``q = f - g_a`` at both points of every pair, ``(n_pairs, Z)`` each.

    ``rows``: the pairs expected (default: the plan's; fewer for a prefix of the stream).
    """
    n, Z = plan.n_pairs if rows is None else rows, plan.request.n_outputs
    f1 = check_outputs("first_outputs", first_outputs, plan, n)
    f2 = check_outputs("second_outputs", second_outputs, plan, n)
    g1 = as_matrix("first_predictions", first_predictions, n, Z)
    g2 = as_matrix("second_predictions", second_predictions, n, Z)
    return f1 - g1, f2 - g2
