"""A Prover that lies on some results, signs the root, then refuses every ``Open``.

A consistent liar (:class:`~prover.adversaries.results.LiePolicy`: a FRACTION
of results replaced by uniform values in [-b, b], committed under the signed
Merkle root) that will not open any spot check: every ``Open`` request is
refused with an error status.  Refusing does not help it: after the signed
root the Verifier aborts ("Prover refused to open spot checks") and retrains
the requested points itself, recording in the signed report how many of the
Prover's signed results disagree with its own retraining.

Not in the ``--adversary`` catalogue: tests serve it through
:class:`prover.service.ProverHandlers` (``policy=RefuseOpenPolicy(...)``).
"""

from __future__ import annotations

from protocol.errors import ProverError
from prover.adversaries.results import LiePolicy
from prover.service.plan import ChallengePlan
from prover.service.types import Opening

__all__ = ["RefuseOpenPolicy"]


class RefuseOpenPolicy(LiePolicy):
    """Lies on a FRACTION of results (see :class:`LiePolicy`) and refuses to open any."""

    def opening(self, session_id: str, plan: ChallengePlan, opening: Opening) -> Opening:
        raise ProverError("this Prover does not open its results")
