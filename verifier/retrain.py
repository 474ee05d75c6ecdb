"""The Verifier's own trainings: challenge points, pilot and local points.

All of them go through :func:`prover.engine.train` (batched, chunked), with
the task implementation the Verifier loaded itself from its TASK.toml — never
through the Prover's server (docs/design.md §3).

Devices: an audit binds the task to the Verifier's device and to the
tolerances between its device class and the Prover's
(:class:`DeviceBoundTask`); everything downstream (the plan's tolerance
slack, the spot-check comparison, the evidence of a refused Open) reads
``task.output_tolerance`` / ``task.weight_tolerance`` and so charges the
larger (CUDA) tolerance when the classes differ, and :func:`train_points`
retrains on the bound device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from protocol import challenge
from protocol.prg import expand_points
from prover.engine import train
from prover.tasks.base import DifferentiableModel, Task, TrainedBatch
from prover.tasks.device import CPU, Device, Tolerances, tolerances_between

__all__ = ["DeviceBoundTask", "bind_task", "challenge_points", "private_points", "train_points"]


class DeviceBoundTask(Task):
    """A task as the Verifier runs it in one audit: on its device, within the tolerances in force.

    Everything is the wrapped task's (digest, N, Z, b, p, training, hooks, and
    any other attribute such as ``spec``) except :attr:`output_tolerance` and
    :attr:`weight_tolerance`, which are ``tolerances``, and :meth:`train_batch`,
    which trains on :attr:`device`.

    Args:
        task: the Verifier's own task.
        device: the resolved device the Verifier trains on.
        tolerances: the tolerances between the Verifier's and the Prover's device classes.
        prover_class: the Prover's device class (``None`` in local mode: no Prover).
    """

    task: Task

    def __init__(
        self,
        task: Task,
        *,
        device: Device,
        tolerances: Tolerances,
        prover_class: str | None = None,
    ) -> None:
        self.task = task.task if isinstance(task, DeviceBoundTask) else task
        self.device = device
        self.tolerances = tolerances
        self.prover_class = prover_class

    def __getattr__(self, name: str) -> object:
        if name == "task":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.task, name)

    @property
    def digest(self) -> str:
        return self.task.digest

    @property
    def n_items(self) -> int:
        return self.task.n_items

    @property
    def n_outputs(self) -> int:
        return self.task.n_outputs

    @property
    def bound(self) -> float:
        return self.task.bound

    @property
    def p(self) -> float:
        return self.task.p

    @property
    def output_tolerance(self) -> float:
        return self.tolerances.output

    @property
    def weight_tolerance(self) -> float:
        return self.tolerances.weight

    @property
    def cuda_output_tolerance(self) -> float:
        return self.task.cuda_output_tolerance

    @property
    def cuda_weight_tolerance(self) -> float:
        return self.task.cuda_weight_tolerance

    def tolerances_on(self, device_class: str) -> Tolerances:
        return self.task.tolerances_on(device_class)

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        return self.task.train_batch_on(x, seeds, device=self.device.name)

    def train_batch_on(
        self, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, device: str
    ) -> TrainedBatch:
        return self.task.train_batch_on(x, seeds, device=device)

    def differentiable(self) -> DifferentiableModel | None:
        return self.task.differentiable()

    def __repr__(self) -> str:
        return (
            f"DeviceBoundTask({self.task!r}, device={self.device.name!r}, "
            f"tau={self.tolerances.output:g})"
        )


def bind_task(task: Task, device: Device = CPU, prover_class: str | None = None) -> DeviceBoundTask:
    """``task`` on the Verifier's ``device``, compared with a Prover on ``prover_class``.

    The tolerances are those between the two device classes (the larger
    declared pair, :func:`prover.tasks.device.tolerances_between`); without a
    Prover (local mode), the Verifier's own class's.
    """
    base = task.task if isinstance(task, DeviceBoundTask) else task
    classes = (
        (device.device_class,) if prover_class is None else (prover_class, device.device_class)
    )
    return DeviceBoundTask(
        base,
        device=device,
        tolerances=tolerances_between(base, *classes),
        prover_class=prover_class,
    )


def challenge_points(
    seed: bytes,
    point_indices: NDArray[np.int64],
    *,
    n_items: int,
    p: float,
    rho_of_pair: NDArray[np.float64],
) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    """Subsets and seeds of challenge points (point 2k = x of pair k, 2k+1 = its partner).

    The layout is :mod:`protocol.challenge`'s (the Prover's ``ChallengePlan`` uses it too).

    Args:
        seed: the 32-byte challenge seed.
        point_indices: int64 ``(m,)`` point indices.
        n_items: N.
        p: inclusion probability.
        rho_of_pair: float64 ``(n_pairs,)`` node of every pair (``Plan.rho_of_pair()``).

    Returns:
        ``x`` int8 ``(m, N)`` pm encoding and training seeds uint64 ``(m,)``.

    Raises:
        InvalidArgument: a point index outside ``[0, 2 n_pairs)``.
    """
    return challenge.challenge_points(
        seed, point_indices, n_items=n_items, p=p, rho_of_pair=rho_of_pair
    )


def private_points(
    rng: np.random.Generator, n: int, *, n_items: int, p: float
) -> tuple[NDArray[np.int8], NDArray[np.uint64]]:
    """``n`` points ``x ~ B_p`` with training seeds, expanded from a private 32-byte seed."""
    seed = rng.bytes(32)
    pts = expand_points(seed, np.arange(n, dtype=np.int64), n_items, p)
    return pts.x, pts.seeds


def train_points(
    task: Task,
    x: NDArray[np.int8],
    seeds: NDArray[np.uint64],
    *,
    chunk_size: int,
    progress: Callable[[int], object] | None = None,
    device: str | None = None,
) -> TrainedBatch:
    """Train one model per row of ``x`` locally (outputs ``(n, Z)``, weights ``(n, P)``/None).

    ``device``: a torch device name; ``None`` is the device a
    :class:`DeviceBoundTask` is bound to, else the CPU.
    """
    if device is None:
        device = task.device.name if isinstance(task, DeviceBoundTask) else "cpu"
    return train(task, x, seeds, chunk_size=chunk_size, progress=progress, device=device)
