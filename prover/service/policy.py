"""Result policies: the hook through which a Prover's answers pass before they leave.

The honest Prover (:class:`HonestPolicy`, the default) returns what it
computed.  Cheating Provers for the adversarial test suite (issue 6) subclass
:class:`ResultPolicy` and override a hook: :meth:`~ResultPolicy.results`
changes the results *before* they are committed to (a consistent liar whose
Merkle root matches its lies), :meth:`~ResultPolicy.opening` and
:meth:`~ResultPolicy.root` change what is sent afterwards (an inconsistent one).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from protocol.messages import Opening, ResultRoot
from prover.service.plan import ChallengePlan

__all__ = ["HonestPolicy", "ResultPolicy"]


class ResultPolicy:
    """Identity hooks; subclasses override any of them.

    Every hook receives the session id and the challenge plan, so a policy can
    decide per session and per point.
    """

    def results(
        self,
        session_id: str,
        plan: ChallengePlan,
        indices: NDArray[np.int64],
        outputs: NDArray[np.float64],
        weight_digests: NDArray[np.uint8],
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
        """Results of the points ``indices`` as they will be committed and streamed.

        Args:
            session_id: the session.
            plan: its challenge.
            indices: int64 ``(n,)`` point indices.
            outputs: float64 ``(n, Z)`` computed outputs.
            weight_digests: uint8 ``(n, 32)`` computed weight digests.

        Returns:
            ``(outputs, weight_digests)`` of the same shapes.
        """
        return outputs, weight_digests

    def root(self, session_id: str, plan: ChallengePlan, root: ResultRoot) -> ResultRoot:
        """The signed root as it will be sent."""
        return root

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        """One opening as it will be sent."""
        return opening


class HonestPolicy(ResultPolicy):
    """The honest Prover: every hook is the identity."""
