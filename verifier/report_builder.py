"""Turn the state of one audit into a signed :class:`protocol.report.AuditReport`.

Bytes (seed, root, keys, signatures) are recorded as lowercase hex.  Fields the
audit never reached (e.g. the Merkle root of an audit that aborted at the
commitment) stay empty.  ``soundness_basis`` states what the verdict rests
on: the rigorous guarantee (range-based, Karchmer et al. 2025) or, in
practical planning, the variance assumption checked by the adversarial suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.decision import Decision
from protocol.plan import Plan
from protocol.report import (
    SOUNDNESS_PRACTICAL,
    SOUNDNESS_RIGOROUS,
    AuditReport,
    outputs_from_decision,
    plan_summary,
    sign_report,
    utc_timestamp,
)
from protocol.scores_provenance import scores_provenance
from protocol.taskspec import pacda_version
from prover.tasks.device import Device
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.spotcheck import SpotCheckResult

__all__ = ["AuditState", "build_report", "devices", "sign", "soundness_basis"]


@dataclass
class AuditState:
    """Everything an audit learned so far (filled in step by step by the driver)."""

    config: AuditConfig
    task_digest: str
    prover_public_key: bytes | None = None
    commitment: Commitment | None = None
    plan: Plan | None = None
    challenge_seed: bytes | None = None
    merkle_root: bytes | None = None
    root_signature: bytes | None = None
    spot: SpotCheckResult | None = None
    decision: Decision | None = None
    reason: str = ""
    variance_verified: bool = False  # the planned variance came from the Verifier's own runs
    planned_variance: float | None = None
    variance_f: float | None = None
    verifier_retrainings: int = 0
    pilot_trainings: int = 0  # of verifier_retrainings: the pilot's (practical planning)
    prover_evaluations: int = 0
    bytes_received: int = 0
    wall_seconds: float = 0.0
    stream_resumes: int = 0
    report_mode: str | None = None
    verifier_device: Device | None = None  # where the Verifier trained (None: not recorded)
    # With a challenge record (verifier.challenge_log): which audit of these scores this
    # is, and the delta asked for before this audit's share was taken.
    audits_started: int | None = None
    delta_requested: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


def soundness_basis(config: AuditConfig, plan: Plan | None = None) -> str:
    """One sentence naming what the verdict's guarantee rests on (with the plan's assumptions)."""
    if config.planning == "rigorous":
        return f"{SOUNDNESS_RIGOROUS} (Karchmer, Pawelczyk, Neel 2025), outputs in [-b, b]"
    source = "the Verifier's own pilot trainings" if config.variance is None else "a declared value"
    basis = f"{SOUNDNESS_PRACTICAL}; planned variance from {source}"
    if plan is not None and plan.assumptions:
        basis += "; assumes: " + "; ".join(plan.assumptions)
    return basis


def devices(state: AuditState) -> dict[str, str] | None:
    """The report's ``devices``, or ``None`` when the Verifier's device was not recorded.

    The Prover's class and name are as its Commit header announced them (empty
    without a Prover's commitment, and in local mode); the Verifier's are its own.
    """
    v = state.verifier_device
    if v is None:
        return None
    c = state.commitment
    prover = c is not None and state.report_mode != "local"
    return {
        "prover": c.device_class if prover and c else "",
        "prover_name": c.device_name if prover and c else "",
        "verifier": v.device_class,
        "verifier_name": v.description,
    }


def _hex(b: bytes | None) -> str:
    return b.hex() if b else ""


def build_report(state: AuditState) -> AuditReport:
    """The report of an audit in ``state`` (accept only with a decision that accepts)."""
    cfg = state.config
    decision = state.decision
    accept = decision is not None and decision.accept and not state.reason
    reason = state.reason or (decision.reason if decision is not None else "")
    if not accept and not reason:
        reason = "the audit did not complete"
    c = state.commitment
    var = state.variance_f if state.variance_f and state.variance_f > 0 else None
    # epsilon / Var(f); epsilon is None only when the audit stopped before its pilot.
    eps_rel = cfg.epsilon / var if var is not None and cfg.epsilon is not None else None
    certified = max(o.certified_upper for o in decision.outputs) if decision is not None else None
    return AuditReport(
        pacda_version=pacda_version(),
        created_at=utc_timestamp(),
        task_digest=state.task_digest,
        attribution_digest=c.attribution_digest if c else "",
        mode=state.report_mode or cfg.mode,
        planning=cfg.planning,
        plan=(
            plan_summary(
                state.plan,
                pilot_trainings=state.pilot_trainings,
                audits_started=state.audits_started,
                delta_requested=state.delta_requested,
            )
            if state.plan is not None
            else None
        ),
        outputs=outputs_from_decision(decision) if decision is not None else (),
        certified_upper_bound=certified,
        decision="accept" if accept else "abort",
        reason="" if accept else reason,
        merkle_root=_hex(state.merkle_root),
        challenge_seed=_hex(state.challenge_seed),
        prover_public_key=_hex(state.prover_public_key),
        prover_commitment_signature=_hex(c.signature if c else None),
        prover_root_signature=_hex(state.root_signature),
        variance_verified=var,
        epsilon_relative=eps_rel,
        costs={
            "verifier_retrainings": state.verifier_retrainings,
            "prover_evaluations": state.prover_evaluations,
            "bytes_received": state.bytes_received,
            # Spot checks drawn, later stages included (the plan holds the first stage's).
            "spot_checks": len(state.spot.indices) if state.spot is not None else 0,
            "wall_seconds": round(float(state.wall_seconds), 3),
        },
        soundness_basis=soundness_basis(cfg, state.plan),
        # What the Prover declared about its scores (method, calibration): recorded, not trusted.
        scores_provenance=scores_provenance(c.method, c.meta_json) if c and c.signature else None,
        devices=devices(state),
    )


def sign(report: AuditReport, key: Ed25519PrivateKey) -> bytes:
    """The signed report file content."""
    return sign_report(report, key)
