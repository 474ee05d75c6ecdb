"""``synthetic``: planted-spectrum functions of the protocol core (evaluation only).

f(x; r) is :meth:`protocol.synthetic.SyntheticFunction.evaluate`: the planted
low-degree polynomial plus bounded seed noise keyed by (x, r).  Nothing is
trained, so ``weights`` is ``None``.  The spec's ``bound`` must be at least the
provable bound of the spectrum, so clipping never alters an output and the
exact reference quantities (``B_k``, ``err``) hold for the task's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.synthetic import SyntheticFunction
from protocol.taskspec import TaskSpec, array_digest
from prover.tasks.base import TrainedBatch
from prover.tasks.common import SpecTask, check_batch_inputs
from prover.tasks.specs import SyntheticSpec

__all__ = ["SyntheticTask"]


class SyntheticTask(SpecTask[SyntheticSpec]):
    """Evaluation of a :class:`~protocol.synthetic.SyntheticFunction`."""

    spec_class: ClassVar[type[TaskSpec] | None] = SyntheticSpec

    def __init__(self, spec: SyntheticSpec) -> None:
        function = SyntheticFunction.from_spec(spec.planted())
        if function.bound > spec.bound:
            raise InvalidArgument(
                f"task.bound: expected a number >= {function.bound:.17g} (the provable bound "
                f"of this spectrum, so that clipping never changes an output), got {spec.bound}"
            )
        # The "dataset" of a synthetic task is its planted structure; the spec and
        # code version pin it, and the degree <= 1 coefficients (exact copies of
        # drawn values, no arithmetic, so identical on every platform) are hashed
        # as a check that the structure drawn from structure_seed did not change.
        fhat0, fhat1 = function.low_degree_coefficients()
        super().__init__(spec, array_digest({"fhat_empty": fhat0, "fhat_singletons": fhat1}))
        self._function = function

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        if not isinstance(spec, SyntheticSpec):
            raise InvalidArgument(f"expected a SyntheticSpec, got {type(spec).__name__}")
        return cls(spec)

    @property
    def function(self) -> SyntheticFunction:
        """The exact reference function (for tests and planners)."""
        return self._function

    @property
    def n_items(self) -> int:
        return self._function.n_items

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        """Evaluate f(x; r): float64 ``(n, Z)``, clipped to ``[-bound, bound]`` (a no-op here)."""
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        out = np.clip(self._function.evaluate(x, seeds), -self.bound, self.bound)
        return TrainedBatch(outputs=out, weights=None)
