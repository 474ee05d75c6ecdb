"""Tasks: model output functions f(x; r) the Prover trains and the Verifier retrains.

Importing this package does not import torch; the torch-based built-ins load
when their kind is first resolved.
"""

from prover.tasks.base import DifferentiableModel, Task, TrainedBatch
from prover.tasks.common import SpecTask, check_batch_inputs
from prover.tasks.registry import (
    ENTRY_POINT_GROUP,
    build_task,
    known_kinds,
    load_task,
    load_task_text,
    parse_task,
    register_task,
    task_class,
    unregister_task,
)
from prover.tasks.specs import AblationSpec, LogregSpec, MlpSpec, SyntheticSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "AblationSpec",
    "DifferentiableModel",
    "LogregSpec",
    "MlpSpec",
    "SpecTask",
    "SyntheticSpec",
    "Task",
    "TrainedBatch",
    "build_task",
    "check_batch_inputs",
    "known_kinds",
    "load_task",
    "load_task_text",
    "parse_task",
    "register_task",
    "task_class",
    "unregister_task",
]
