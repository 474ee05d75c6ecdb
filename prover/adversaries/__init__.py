"""Cheating Provers for the adversarial test suite, benchmarks and examples (red-team only).

Three families (``docs/threat-model.md`` says which Verifier check catches which):

* **score manipulation** — commit attributions other than the honest ones
  (:mod:`~prover.adversaries.scores`): ``scale:F``, ``boost:FRACTION:AMOUNT``,
  ``noise:SD``, ``permute``, ``lazy:SAMPLES``, ``influence``;
* **result manipulation** — consistent liars that alter challenge results
  before committing to them (:mod:`~prover.adversaries.results`):
  ``lie:FRACTION``, ``forge:FRACTION``, ``reuse``, ``ignore-seeds``, ``wrong-subset``;
* **commitment manipulation** — send what contradicts the commitment
  (:mod:`~prover.adversaries.commitment`): ``rewrite-after-root``,
  ``bad-proof``, ``replay``.

:func:`arm` turns ``NAME[:PARAMS]`` texts into the scores to commit and the
:class:`~prover.service.policy.ResultPolicy` to serve with;
``pacda-prover serve --adversary NAME[:PARAMS]`` does the same from the CLI.
"""

from prover.adversaries.arm import Armed, arm, manipulate_scores, result_policy
from prover.adversaries.catalogue import (
    CATALOGUE,
    Adversary,
    Entry,
    Family,
    catalogue_help,
    parse_adversary,
)
from prover.adversaries.commitment import BadProofPolicy, ReplayPolicy, RewriteAfterRootPolicy
from prover.adversaries.results import (
    FORGE_NOISE,
    ForgePolicy,
    IgnoreSeedsPolicy,
    LiePolicy,
    ReusePolicy,
    WrongSubsetPolicy,
)

__all__ = [
    "CATALOGUE",
    "FORGE_NOISE",
    "Adversary",
    "Armed",
    "BadProofPolicy",
    "Entry",
    "Family",
    "ForgePolicy",
    "IgnoreSeedsPolicy",
    "LiePolicy",
    "ReplayPolicy",
    "ReusePolicy",
    "RewriteAfterRootPolicy",
    "WrongSubsetPolicy",
    "arm",
    "catalogue_help",
    "manipulate_scores",
    "parse_adversary",
    "result_policy",
]
