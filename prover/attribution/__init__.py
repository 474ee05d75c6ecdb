"""The Prover's attribution methods and their self-check.

* ``datamodel`` — ridge (or lasso) regression on retrainings, strength chosen
  on held-out rows (Ilyas et al. 2022): :func:`fit_datamodel`;
* ``empirical-influence`` — differences of conditional means (Feldman & Zhang
  2020): :func:`fit_empirical_influence`;
* ``influence-function`` — gradients at a reference model, exact Hessian for
  ``logreg`` and CG Hessian-vector products for ``mlp`` (Koh & Liang 2017):
  :func:`fit_influence_function`;
* the self-check (direct gap estimate of err with an interval, ``B_{>=2}``,
  the smallest acceptable audit epsilon, LDS): :func:`run_self_check`.

:func:`attribute` runs the whole pipeline; scores are written with
:func:`protocol.scores.save_scores` (format ``pacda-scores/1``, ``docs/scores.md``).
"""

from prover.attribution.config import METHODS, AttributionConfig, check_method, min_samples
from prover.attribution.datamodel import DatamodelFit, fit_datamodel
from prover.attribution.empirical import fit_empirical_influence
from prover.attribution.influence import InfluenceFit, fit_influence_function
from prover.attribution.pipeline import AttributionResult, attribute, check_functional
from prover.attribution.sampling import CheckDesign, Streams, draw_check_pairs, draw_fit_design
from prover.attribution.selfcheck import (
    OutputCheck,
    SelfCheck,
    linear_datamodeling_score,
    run_self_check,
)

__all__ = [
    "METHODS",
    "AttributionConfig",
    "AttributionResult",
    "CheckDesign",
    "DatamodelFit",
    "InfluenceFit",
    "OutputCheck",
    "SelfCheck",
    "Streams",
    "attribute",
    "check_functional",
    "check_method",
    "draw_check_pairs",
    "draw_fit_design",
    "fit_datamodel",
    "fit_empirical_influence",
    "fit_influence_function",
    "linear_datamodeling_score",
    "min_samples",
    "run_self_check",
]
