"""The one-call library entry point :func:`audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.report import AuditReport
from protocol.signing import load_or_create_default_key
from prover.tasks.base import Task
from verifier.config import AuditConfig, AuditMode, AuditPlanning
from verifier.driver import Auditor, Progress
from verifier.preview import PlanHook

__all__ = ["audit"]


def audit(
    channel: grpc.Channel,
    task: Task | str | Path,
    *,
    epsilon: float | None = None,
    delta: float,
    epsilon_relative: float | None = None,
    mode: AuditMode = "committed",
    planning: AuditPlanning = "practical",
    key: Ed25519PrivateKey | None = None,
    rng: np.random.Generator | None = None,
    progress: Progress | None = None,
    on_plan: PlanHook | None = None,
    **options: Any,
) -> AuditReport:
    """Audit the Prover behind ``channel`` and return the signed-off report.

    Args:
        channel: a gRPC channel to a ``pacda.v1.Prover`` (the caller owns and closes it).
        task: the Verifier's own task: a loaded task or the path of its TASK.toml.
        epsilon: accuracy in squared output units; abort if err(a) >= epsilon.
        delta: failure probability.
        epsilon_relative: instead of ``epsilon``: ``R``, with epsilon set to
            ``R x max_z Var(f_z)`` of the Verifier's own pilot (practical planning).
        mode: ``committed`` (default) or ``paper``.
        planning: ``practical`` (default) or ``rigorous``.
        key: the Verifier's signing key; default: the per-user key
            (:func:`protocol.signing.load_or_create_default_key`).
        rng: private randomness for spot checks and local points (default: fresh).
        progress: ``progress(stage, done, total)`` callback.
        on_plan: called with the :class:`~verifier.preview.PlanPreview` before
            any challenge; may raise :class:`~verifier.preview.PlanDeclined`.
        **options: further :class:`AuditConfig` fields (``variance``, ``chunk_points``...).

    Returns:
        The report; ``report.decision`` is ``"accept"`` or ``"abort"`` (with ``reason``).
        Prover-side failures never raise.

    Raises:
        protocol.errors.InvalidArgument: a bad argument (epsilon, delta, mode...), or
            not exactly one of ``epsilon`` and ``epsilon_relative``.
    """
    config = AuditConfig(  # checks that exactly one of epsilon and epsilon_relative is given
        epsilon=epsilon,
        epsilon_relative=epsilon_relative,
        delta=delta,
        mode=mode,
        planning=planning,
        **options,
    )
    if key is None:
        key, _, _ = load_or_create_default_key()
    auditor = Auditor(task, config, key=key, rng=rng, progress=progress, on_plan=on_plan)
    return auditor.run(channel).report
