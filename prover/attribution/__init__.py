"""The Prover's attribution methods, their registry and their self-check.

Methods are :class:`Method` subclasses registered by name
(:mod:`prover.attribution.registry`; plugins through the ``pacda.methods``
entry-point group).  The built-ins:

* ``datamodel`` — ridge (or lasso) regression on retrainings, strength chosen
  on held-out rows (Ilyas et al. 2022): :class:`DatamodelMethod`,
  :func:`fit_datamodel`;
* ``empirical-influence`` — differences of conditional means (Feldman & Zhang
  2020): :class:`EmpiricalInfluenceMethod`, :func:`fit_empirical_influence`;
* ``influence-function`` — gradients at a reference model through the task's
  differentiable model (``Task.differentiable``), exact Hessian when small and
  CG Hessian-vector products otherwise (Koh & Liang 2017):
  :class:`InfluenceFunctionMethod`, :func:`fit_influence_function`;
* ``trak`` — projected per-item gradients of a small ensemble of B_p models,
  calibrated (intercept and scale per output) on M retrainings (Park et al.
  2023): :class:`TrakMethod`, :func:`trak_scores`;
* the self-check (the audit's default statistic's estimate of err with an
  interval, ``B_{>=2}``, the smallest acceptable audit epsilon, LDS):
  :func:`run_self_check`;
* scores of another tool (TRAK, dattri, kronfluence), held in memory as an
  array or tensor: :func:`import_scores` (layout, encoding, calibration or
  intercepts, and the self-check: :mod:`prover.attribution.importing`).

:func:`attribute` runs the whole pipeline; scores are written with
:func:`protocol.scores.save_scores` (format ``pacda-scores/1``, ``docs/scores.md``).
"""

from prover.attribution.config import METHODS, AttributionConfig, check_method, min_samples
from prover.attribution.datamodel import (
    DatamodelFit,
    DatamodelMethod,
    DatamodelOptions,
    fit_datamodel,
)
from prover.attribution.empirical import EmpiricalInfluenceMethod, fit_empirical_influence
from prover.attribution.importing import ImportedScores, import_scores, self_check_scores
from prover.attribution.influence import (
    InfluenceFit,
    InfluenceFunctionMethod,
    InfluenceOptions,
    fit_influence_function,
)
from prover.attribution.method import FitContext, Method, MethodFit, NoOptions
from prover.attribution.pipeline import AttributionResult, attribute, check_functional
from prover.attribution.registry import (
    ENTRY_POINT_GROUP,
    get_method,
    method_class,
    method_names,
    register_method,
    unregister_method,
)
from prover.attribution.sampling import CheckDesign, Streams, draw_check_pairs, draw_fit_design
from prover.attribution.selfcheck import (
    OutputCheck,
    SelfCheck,
    linear_datamodeling_score,
    run_self_check,
)
from prover.attribution.trak import TrakFit, TrakMethod, TrakOptions, trak_scores

__all__ = [
    "ENTRY_POINT_GROUP",
    "METHODS",
    "AttributionConfig",
    "AttributionResult",
    "CheckDesign",
    "DatamodelFit",
    "DatamodelMethod",
    "DatamodelOptions",
    "EmpiricalInfluenceMethod",
    "FitContext",
    "ImportedScores",
    "InfluenceFit",
    "InfluenceFunctionMethod",
    "InfluenceOptions",
    "Method",
    "MethodFit",
    "NoOptions",
    "OutputCheck",
    "SelfCheck",
    "Streams",
    "TrakFit",
    "TrakMethod",
    "TrakOptions",
    "attribute",
    "check_functional",
    "check_method",
    "draw_check_pairs",
    "draw_fit_design",
    "fit_datamodel",
    "fit_empirical_influence",
    "fit_influence_function",
    "get_method",
    "import_scores",
    "linear_datamodeling_score",
    "method_class",
    "method_names",
    "min_samples",
    "register_method",
    "run_self_check",
    "self_check_scores",
    "trak_scores",
    "unregister_method",
]
