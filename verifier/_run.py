"""The mutable scratch of one gRPC audit and its progress callbacks.

Private to :mod:`verifier.driver`, which re-exports :data:`Progress`; shared
with the driver's helpers (:mod:`verifier._stream`, :mod:`verifier._opening`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from protocol.messages import TaskDescription
from protocol.plan import Plan
from verifier._pilot import Pilot
from verifier.challenge_log import ChallengeLog
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.report_builder import AuditState
from verifier.retrain import DeviceBoundTask
from verifier.spotcheck import SpotCheckResult
from verifier.wire import ProverClient

__all__ = ["AuditRun", "Progress", "progress_counter"]

Progress = Callable[[str, int, int], object]
"""``progress(stage, done, total)``; ``total == 0`` marks a stage without a count."""


@dataclass
class AuditRun:
    """Mutable per-run scratch (one per :meth:`verifier.driver.Auditor.run`)."""

    client: ProverClient
    state: AuditState
    config: AuditConfig
    task: DeviceBoundTask  # on the Verifier's device, within the tolerances in force
    info: TaskDescription | None = None
    commitment: Commitment | None = None
    plan: Plan | None = None
    seed: bytes | None = None
    pilot: Pilot | None = None
    spot: SpotCheckResult | None = None
    own_outputs: list[NDArray[np.float64]] = field(default_factory=list)
    challenge_log: ChallengeLog | None = None  # the record the challenge is written to


def progress_counter(note: Progress, stage: str, total: int) -> Callable[[int], object]:
    """A ``progress(m)`` callback that adds ``m`` to a running count and reports it to ``note``."""
    done = [0]

    def tick(m: int) -> None:
        done[0] += m
        note(stage, done[0], total)

    return tick
