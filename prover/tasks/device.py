"""Training devices: ``--device cpu|cuda|cuda:K|auto``, device classes and their tolerances.

One helper for every command and library entry point that trains models
(``pacda-prover attribute`` / ``serve``, ``pacda-verifier audit`` / ``certify``,
:class:`verifier.config.AuditConfig`):

* :func:`parse_device` checks the spelling (``cpu``, ``cuda``, ``cuda:K``,
  ``auto``) without looking at the hardware;
* :func:`resolve_device` picks the device for this machine and task: ``auto``
  is CUDA when torch sees a GPU and the task can train on one, else the CPU;
  ``cuda`` / ``cuda:K`` on a machine without that GPU raise
  :class:`DeviceUnavailable` (an :class:`~protocol.errors.InvalidArgument`, so
  every CLI exits 2) naming the missing device;
* :func:`device_class` maps a device to its *class*, ``"cpu"`` or ``"cuda"``:
  runs of one class reproduce within the task's ``output_tolerance``; a run
  on a GPU only within its ``cuda_output_tolerance`` (docs/tasks.md,
  "Tolerance per device class");
* :func:`tolerances_between` is the tolerance pair that applies when the
  Prover trains on one class and the Verifier retrains on another: the larger
  declared value of the two classes.

Pure at import time: torch is imported only to look for a GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from protocol.errors import InvalidArgument
from prover.tasks.tolerances import DEVICE_CLASSES, Tolerances

if TYPE_CHECKING:
    from prover.tasks.base import Task

__all__ = [
    "CPU",
    "DEVICE_CLASSES",
    "DEVICE_HELP",
    "Device",
    "DeviceUnavailable",
    "Tolerances",
    "describe_device",
    "device_class",
    "parse_device",
    "resolve_device",
    "tolerances_between",
]

#: One help text for every ``--device`` option.
DEVICE_HELP: Final = (
    "where models are trained: cpu, cuda (the current GPU), cuda:K (GPU number K) or auto "
    "(CUDA when torch sees a GPU and the task can use it, else the CPU) [%(default)s]"
)

_SPELLING = re.compile(r"cpu|auto|cuda(:(0|[1-9][0-9]{0,3}))?")


class DeviceUnavailable(InvalidArgument):
    """A device was asked for that this machine (or the task) does not have."""


@dataclass(frozen=True)
class Device:
    """A resolved training device.

    Attributes:
        name: the torch device name training uses: ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.
        device_class: ``"cpu"`` or ``"cuda"`` (:data:`DEVICE_CLASSES`).
        description: what it is, for people and reports: ``"cpu"`` or e.g.
            ``"cuda:0 NVIDIA H200"``.
    """

    name: str
    device_class: str
    description: str


#: The CPU (what every task can train on).
CPU: Final = Device(name="cpu", device_class="cpu", description="cpu")


def parse_device(text: str) -> str:
    """Check the spelling of a device: ``cpu``, ``cuda``, ``cuda:K`` or ``auto``.

    Looks at no hardware.  Returns the text unchanged.

    Raises:
        InvalidArgument: any other text (e.g. ``gpu``, ``cuda:x``, ``tpu``).
    """
    if not isinstance(text, str) or not _SPELLING.fullmatch(text):
        raise InvalidArgument(f"device must be cpu, cuda, cuda:K or auto, got {str(text)[:40]!r}")
    return text


def device_class(name: str) -> str:
    """The class of a device name (``"cpu"``, ``"cuda"``, ``"cuda:K"``): ``"cpu"`` or ``"cuda"``.

    Raises:
        InvalidArgument: an unknown name, or ``"auto"`` (resolve it first).
    """
    parse_device(name)
    if name == "auto":
        raise InvalidArgument("device 'auto' has no class until it is resolved (resolve_device)")
    return "cpu" if name == "cpu" else "cuda"


def _cuda_count() -> int:
    """GPUs torch can use here (0 without torch or without CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of every training task
        return 0
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.device_count())


def _cuda_device(name: str) -> Device:
    import torch

    index = torch.cuda.current_device() if name == "cuda" else int(name.split(":")[1])
    return Device(
        name=name,
        device_class="cuda",
        description=f"cuda:{index} {torch.cuda.get_device_name(index)}",
    )


def resolve_device(text: str, *, task: Task | None = None) -> Device:
    """The device ``text`` names on this machine, for ``task`` if given.

    ``auto`` is the current CUDA device when torch sees one and ``task`` (if
    given) lists ``"cuda"`` in its ``device_types``, else the CPU.

    Raises:
        InvalidArgument: a misspelt device.
        DeviceUnavailable: ``cuda`` without any CUDA device ("cuda requested
            but this machine has no CUDA device"), ``cuda:K`` beyond the GPUs
            present ("cuda:1 requested but this machine has only 1 CUDA device
            (cuda:0)"), or a GPU for a task that trains only on the CPU.
    """
    parse_device(text)
    gpu_task = task is None or "cuda" in task.device_types
    if text == "cpu":
        return CPU
    if text == "auto":
        return _cuda_device("cuda") if gpu_task and _cuda_count() > 0 else CPU
    count = _cuda_count()
    if count == 0:
        raise DeviceUnavailable(
            f"{text} requested but this machine has no CUDA device (CUDA is not available "
            "to torch); use --device cpu or auto"
        )
    if text != "cuda" and int(text.split(":")[1]) >= count:
        devices = ", ".join(f"cuda:{k}" for k in range(count))
        plural = "device" if count == 1 else "devices"
        raise DeviceUnavailable(
            f"{text} requested but this machine has only {count} CUDA {plural} ({devices})"
        )
    if not gpu_task and task is not None:
        raise DeviceUnavailable(
            f"{text} requested but task kind {type(task).__name__} trains only on the CPU; "
            "use --device cpu or auto"
        )
    return _cuda_device(text)


def describe_device(name: str) -> Device:
    """The :class:`Device` of a device name, resolving it here when this machine can.

    ``auto`` and devices present here are resolved (:func:`resolve_device`); a
    CUDA device that is absent here (e.g. on the workers of a Ray cluster, not
    the driver) keeps its class, described by its name only.

    Raises:
        InvalidArgument: a misspelt device.
    """
    if parse_device(name) == "auto" or name == "cpu":
        return resolve_device(name)
    try:
        return resolve_device(name)
    except DeviceUnavailable:
        return Device(name=name, device_class="cuda", description=name)


def tolerances_between(task: Task, *classes: str) -> Tolerances:
    """The tolerances that apply between runs on these device classes.

    Each class has its declared pair (:meth:`prover.tasks.base.Task.tolerances_on`);
    runs on different classes must agree within the larger of each.  With one
    class (or the same class twice) it is that class's pair.

    Raises:
        InvalidArgument: no class, or an unknown one.
    """
    if not classes:
        raise InvalidArgument("tolerances_between needs at least one device class")
    pairs = [task.tolerances_on(c) for c in classes]
    return Tolerances(output=max(p.output for p in pairs), weight=max(p.weight for p in pairs))
