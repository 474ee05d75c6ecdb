"""pacda protocol core: pure, torch-free statistics and commitments.

Everything a Verifier needs to plan an audit, expand a challenge, estimate the
sub-optimality of committed attributions and decide — importable without torch
or grpc (DESIGN §3).
"""

from protocol.canonical_json import canonical_json, sha256_digest
from protocol.decision import Decision, OutputDecision, decide_committed, decide_paper
from protocol.errors import (
    CommitmentError,
    InvalidArgument,
    PacdaError,
    ProverError,
    SignatureError,
    SpotCheckMismatch,
    StatisticalRejection,
    VerificationError,
)
from protocol.estimators import (
    Estimate,
    NodeFunctional,
    PairSample,
    chebyshev_functional,
    direct_gap,
    functional_from_nodes,
    residual_weight,
    residual_weight_nnls,
    three_point_functional,
)
from protocol.hypercube import (
    bias_moments,
    mask_to_pm,
    pm_to_mask,
    rho_max,
    sample_bp,
    sample_partner,
)
from protocol.plan import BudgetItem, Plan, PlanRequest, make_plan
from protocol.prg import PRG_VERSION, ExpandedPairs, ExpandedPoints, expand_pairs, expand_points
from protocol.synthetic import PlantedSpectrum, SyntheticFunction

__all__ = [
    "PRG_VERSION",
    "BudgetItem",
    "CommitmentError",
    "Decision",
    "Estimate",
    "ExpandedPairs",
    "ExpandedPoints",
    "InvalidArgument",
    "NodeFunctional",
    "OutputDecision",
    "PacdaError",
    "PairSample",
    "Plan",
    "PlanRequest",
    "PlantedSpectrum",
    "ProverError",
    "SignatureError",
    "SpotCheckMismatch",
    "StatisticalRejection",
    "SyntheticFunction",
    "VerificationError",
    "bias_moments",
    "canonical_json",
    "chebyshev_functional",
    "decide_committed",
    "decide_paper",
    "direct_gap",
    "expand_pairs",
    "expand_points",
    "functional_from_nodes",
    "make_plan",
    "mask_to_pm",
    "pm_to_mask",
    "residual_weight",
    "residual_weight_nnls",
    "rho_max",
    "sample_bp",
    "sample_partner",
    "sha256_digest",
    "three_point_functional",
]
