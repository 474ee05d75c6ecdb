"""Device classes and the tolerance pair of runs on each.

The bottom of :mod:`prover.tasks`: :class:`prover.tasks.base.Task` declares its
tolerances per class with these, and :mod:`prover.tasks.device` (which works on
tasks) re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEVICE_CLASSES", "Tolerances"]

#: Device classes, from the most to the least reproducible.
DEVICE_CLASSES: Final = ("cpu", "cuda")


@dataclass(frozen=True)
class Tolerances:
    """Agreement two runs of one model must reach: outputs (absolute) and weights (max abs)."""

    output: float
    weight: float
