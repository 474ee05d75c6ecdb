"""pacda protocol core: pure, torch-free statistics and commitments.

Everything a Verifier needs to plan an audit, expand a challenge, estimate the
sub-optimality of committed attributions and decide — importable without torch
or grpc (docs/design.md §3).
"""

from protocol.canonical_json import canonical_json, sha256_digest
from protocol.decision import Decision, OutputDecision, decide_committed, decide_paper
from protocol.digests import AttributionHasher, attribution_digest, weight_digest
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
from protocol.merkle import (
    MerkleTree,
    leaf_hash,
    merkle_root,
    node_hash,
    result_leaf,
    verify_inclusion,
)
from protocol.plan import BudgetItem, Plan, PlanRequest, make_plan
from protocol.prg import PRG_VERSION, ExpandedPairs, ExpandedPoints, expand_pairs, expand_points
from protocol.report import (
    REPORT_VERSION,
    AuditReport,
    OutputResult,
    load_report_unverified,
    sign_report,
    verify_report,
)
from protocol.signing import (
    commitment_statement,
    generate_private_key,
    key_id,
    load_or_create_default_key,
    load_private_key,
    load_public_key,
    public_key_bytes,
    public_key_from_bytes,
    root_statement,
    sign_json,
    verify_json,
    write_keypair,
)
from protocol.synthetic import PlantedSpectrum, SyntheticFunction

__all__ = [
    "PRG_VERSION",
    "REPORT_VERSION",
    "AttributionHasher",
    "AuditReport",
    "BudgetItem",
    "CommitmentError",
    "Decision",
    "Estimate",
    "ExpandedPairs",
    "ExpandedPoints",
    "InvalidArgument",
    "MerkleTree",
    "NodeFunctional",
    "OutputDecision",
    "OutputResult",
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
    "attribution_digest",
    "bias_moments",
    "canonical_json",
    "chebyshev_functional",
    "commitment_statement",
    "decide_committed",
    "decide_paper",
    "direct_gap",
    "expand_pairs",
    "expand_points",
    "functional_from_nodes",
    "generate_private_key",
    "key_id",
    "leaf_hash",
    "load_or_create_default_key",
    "load_private_key",
    "load_public_key",
    "load_report_unverified",
    "make_plan",
    "mask_to_pm",
    "merkle_root",
    "node_hash",
    "pm_to_mask",
    "public_key_bytes",
    "public_key_from_bytes",
    "residual_weight",
    "residual_weight_nnls",
    "result_leaf",
    "rho_max",
    "root_statement",
    "sample_bp",
    "sample_partner",
    "sha256_digest",
    "sign_json",
    "sign_report",
    "three_point_functional",
    "verify_inclusion",
    "verify_json",
    "verify_report",
    "weight_digest",
    "write_keypair",
]
