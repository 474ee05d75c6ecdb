"""``--device`` of the Prover's commands (``attribute``, ``serve``): one option, one executor.

The device is resolved before any work (:func:`prover.tasks.device.resolve_device`):
``cuda`` on a machine without that GPU, or for a task that trains only on the
CPU, is a :class:`~prover.tasks.device.DeviceUnavailable` (a usage error, exit
2) naming the missing device; ``auto`` falls back to the CPU.  With ``--executor
ray`` the GPUs are the workers', not the driver's: a CUDA device is then only
checked for its spelling, and each chunk reserves one GPU of the cluster.
"""

from __future__ import annotations

import argparse

from protocol.errors import InvalidArgument
from prover.executors import Executor, InProcessExecutor
from prover.tasks.base import Task
from prover.tasks.device import (
    DEVICE_HELP,
    Device,
    DeviceUnavailable,
    describe_device,
    resolve_device,
)

__all__ = ["add_device_argument", "make_executor"]


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda|cuda:K|auto`` (default cpu)."""
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help=DEVICE_HELP)


def make_executor(
    kind: str, *, device: str, task: Task, ray_address: str | None = None
) -> tuple[Executor, Device]:
    """The executor of ``--executor KIND`` on ``--device``, and the device it trains on.

    Raises:
        InvalidArgument: ``--ray-address`` without ``--executor ray``, a misspelt device.
        DeviceUnavailable: the device is missing here (in-process) or the task is CPU-only.
    """
    if kind == "ray":
        dev = describe_device(device)  # the workers' GPUs; auto is decided here
        if dev.device_class == "cuda" and "cuda" not in task.device_types:
            raise DeviceUnavailable(
                f"{device} requested but task kind {type(task).__name__} trains only on the "
                "CPU; use --device cpu or auto"
            )
        from prover.executors.ray_executor import RayExecutor

        gpus = 1.0 if dev.device_class == "cuda" else 0.0
        return RayExecutor(address=ray_address, device=dev.name, num_gpus_per_chunk=gpus), dev
    if ray_address is not None:
        raise InvalidArgument("--ray-address needs --executor ray")
    dev = resolve_device(device, task=task)
    return InProcessExecutor(device=dev.name), dev
