"""Audit report objects (:mod:`protocol.report`): validated fields, strict dict round-trip."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any, Final

from protocol.decision import Decision
from protocol.errors import InvalidArgument
from protocol.plan_types import Plan
from protocol.report_fields import (
    _DIGEST,
    _HEX_BYTES,
    _check_costs,
    _check_devices,
    _check_hex,
    _check_plan,
    _check_provenance,
    _check_timestamp,
    _exact_keys,
    _int,
    _list,
    _num,
    _opt_num,
    _str,
)

REPORT_VERSION: Final = "pacda-report-v1"
SIGNATURE_ALGORITHM: Final = "ed25519"
MODES: Final = ("committed", "paper", "local")
PLANNINGS: Final = ("rigorous", "practical")
DECISIONS: Final = ("accept", "abort")
SOUNDNESS_RIGOROUS: Final = "rigorous: Hoeffding/range-based, paper guarantee"
SOUNDNESS_PRACTICAL: Final = (
    "practical: variance-based; soundness rests on the adversarial test suite"
)


#: Fields added after the first reports: absent from the JSON when None, so
#: reports written before them keep their bytes and signatures.
_OPTIONAL: Final = ("scores_provenance", "devices")


# -- report objects ----------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class OutputResult:
    """The verdict on one output z (squared output units, like epsilon).

    Attributes:
        output: index z (``0 <= z < Z``).
        estimate: ``err_hat_z``.
        standard_error: its estimated standard deviation (>= 0).
        interval_low, interval_high: the two-sided sampling interval.
        certified_upper: upper bound on ``err_z`` (protocol.decision).
        accept: this output passed.
        reason: ``""`` when accepted, else why not.
    """

    output: int
    estimate: float
    standard_error: float
    interval_low: float
    interval_high: float
    certified_upper: float
    accept: bool
    reason: str

    def __post_init__(self) -> None:
        w = f"outputs[{self.output}]" if isinstance(self.output, int) else "outputs[?]"
        _int(f"{w}.output", self.output)
        for name in ("estimate", "interval_low", "interval_high", "certified_upper"):
            object.__setattr__(self, name, _num(f"{w}.{name}", getattr(self, name)))
        object.__setattr__(
            self, "standard_error", _num(f"{w}.standard_error", self.standard_error, minimum=0.0)
        )
        if self.interval_low > self.interval_high:
            raise InvalidArgument(f"{w}: interval_low exceeds interval_high")
        if not isinstance(self.accept, bool):
            raise InvalidArgument(f"{w}.accept must be true or false")
        _str(f"{w}.reason", self.reason)
        if self.accept and self.reason:
            raise InvalidArgument(f"{w}: an accepted output has an empty reason")
        if not self.accept and not self.reason.strip():
            raise InvalidArgument(f"{w}: a rejected output needs a reason")

    def to_dict(self) -> dict[str, Any]:
        """JSON types only."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "output") -> OutputResult:
        """Strict inverse of :meth:`to_dict`: unknown or missing keys raise InvalidArgument."""
        keys = frozenset(f.name for f in fields(cls))
        return cls(**dict(_exact_keys(where, d, keys)))


@dataclass(frozen=True, kw_only=True)
class AuditReport:
    """One audit's outcome; every field is validated on construction.

    Attributes mirror the JSON fields (``docs/report.md``).  ``plan`` is
    ``None`` only when the audit aborted before a plan was made; ``outputs``
    is empty (and ``certified_upper_bound`` ``None``) when it aborted before
    estimates.  ``variance_verified`` is Var(f) estimated from the Verifier's
    own (spot-check) runs, never from unverified Prover values;
    ``epsilon_relative = epsilon / variance_verified``.  ``devices`` records
    where each side trained (``prover`` / ``verifier``: device class ``cpu``
    or ``cuda``, ``""`` for no Prover; ``*_name``: descriptions).
    """

    version: str = REPORT_VERSION
    pacda_version: str
    created_at: str
    task_digest: str
    attribution_digest: str
    mode: str
    planning: str
    plan: dict[str, Any] | None
    outputs: tuple[OutputResult, ...]
    certified_upper_bound: float | None
    decision: str
    reason: str
    merkle_root: str
    challenge_seed: str
    prover_public_key: str
    prover_commitment_signature: str
    prover_root_signature: str
    variance_verified: float | None
    epsilon_relative: float | None
    costs: dict[str, Any]
    soundness_basis: str
    #: The Prover's declared method and calibration (``protocol.scores_provenance``);
    #: omitted from the JSON when None, so reports without it keep their bytes.
    scores_provenance: dict[str, Any] | None = None
    #: Where the Prover and the Verifier trained (:func:`protocol.report_fields._check_devices`);
    #: omitted from the JSON when None (reports written before the field).
    devices: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.version != REPORT_VERSION:
            raise InvalidArgument(
                f"unsupported report version {self.version!r}; expected {REPORT_VERSION!r}"
            )
        if not _str("pacda_version", self.pacda_version):
            raise InvalidArgument("pacda_version must not be empty")
        _check_timestamp(self.created_at)
        if not _DIGEST.fullmatch(_str("task_digest", self.task_digest)):
            raise InvalidArgument("task_digest must be 'sha256:' + 64 lowercase hex digits")
        attr = _str("attribution_digest", self.attribution_digest)
        if attr and not _DIGEST.fullmatch(attr):
            raise InvalidArgument(
                "attribution_digest must be 'sha256:' + 64 lowercase hex digits, or empty"
            )
        if self.mode not in MODES:
            raise InvalidArgument(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.planning not in PLANNINGS:
            raise InvalidArgument(f"planning must be rigorous or practical, got {self.planning!r}")
        plan = None if self.plan is None else _check_plan(self.plan)
        object.__setattr__(self, "plan", plan)
        self._check_outputs(plan)
        if self.decision not in DECISIONS:
            raise InvalidArgument(f"decision must be 'accept' or 'abort', got {self.decision!r}")
        _str("reason", self.reason)
        for name in _HEX_BYTES:
            _check_hex(name, getattr(self, name))
        if self.decision == "accept":
            self._check_accept(plan)
        elif not self.reason.strip():
            raise InvalidArgument("an aborted report needs a human-readable reason")
        self._check_variance(plan)
        object.__setattr__(self, "costs", _check_costs(self.costs))
        basis = _str("soundness_basis", self.soundness_basis)
        if not basis.startswith(self.planning + ": "):
            raise InvalidArgument(
                f"soundness_basis must start with '{self.planning}: ' for {self.planning} "
                f"planning, got {basis!r}"
            )
        object.__setattr__(self, "scores_provenance", _check_provenance(self.scores_provenance))
        if self.devices is not None:
            object.__setattr__(self, "devices", _check_devices(self.devices))

    def _check_outputs(self, plan: dict[str, Any] | None) -> None:
        outputs = tuple(_list("outputs", self.outputs))
        for i, o in enumerate(outputs):
            if not isinstance(o, OutputResult):
                raise InvalidArgument(f"outputs[{i}] must be an OutputResult")
            if o.output != i:
                raise InvalidArgument(f"outputs[{i}] has output index {o.output}, expected {i}")
        object.__setattr__(self, "outputs", outputs)
        if plan is not None and outputs and len(outputs) != plan["n_outputs"]:
            raise InvalidArgument(
                f"the report has {len(outputs)} outputs but the plan has n_outputs = "
                f"{plan['n_outputs']}"
            )
        bound = _opt_num("certified_upper_bound", self.certified_upper_bound)
        if not outputs and bound is not None:
            raise InvalidArgument("certified_upper_bound must be null when there are no outputs")
        if outputs and bound != max(o.certified_upper for o in outputs):
            raise InvalidArgument(
                "certified_upper_bound must be the largest certified_upper of the outputs"
            )
        object.__setattr__(self, "certified_upper_bound", bound)

    def _check_accept(self, plan: dict[str, Any] | None) -> None:
        if self.reason:
            raise InvalidArgument("an accepted report has an empty reason")
        if plan is None or not self.outputs:
            raise InvalidArgument("an accepted report needs a plan and per-output results")
        rejected = [o.output for o in self.outputs if not o.accept]
        if rejected:
            raise InvalidArgument(f"decision is accept but outputs {rejected} were rejected")
        needed = ["attribution_digest"]
        if self.mode != "local":
            needed += list(_HEX_BYTES)
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise InvalidArgument(
                f"an accepted {self.mode}-mode report must record {', '.join(missing)}"
            )

    def _check_variance(self, plan: dict[str, Any] | None) -> None:
        var = _opt_num("variance_verified", self.variance_verified, minimum=0.0)
        rel = _opt_num("epsilon_relative", self.epsilon_relative, minimum=0.0)
        object.__setattr__(self, "variance_verified", var)
        object.__setattr__(self, "epsilon_relative", rel)
        if rel is not None and not var:
            raise InvalidArgument(
                "epsilon_relative needs a positive variance_verified (it is epsilon / Var(f))"
            )
        if rel is not None and var and plan is not None:
            expected = plan["epsilon"] / var
            if not math.isclose(rel, expected, rel_tol=1e-9):
                raise InvalidArgument(
                    f"epsilon_relative {rel} is not epsilon / variance_verified = {expected}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON types only (the signed object)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue  # optional field: absent rather than null
            if f.name == "outputs":
                value = [o.to_dict() for o in value]
            elif isinstance(value, dict):
                value = json.loads(json.dumps(value))  # deep copy, lists not tuples
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Any) -> AuditReport:
        """Strict inverse of :meth:`to_dict`.

        Raises:
            InvalidArgument: not an object, an unknown or missing key (named),
                or any field that fails validation.
        """
        keys = frozenset(f.name for f in fields(cls))
        if isinstance(d, dict):  # optional fields (reports before them)
            d = {**dict.fromkeys(_OPTIONAL), **d}
        m = dict(_exact_keys("report", d, keys))
        m["outputs"] = tuple(
            OutputResult.from_dict(o, where=f"outputs[{i}]")
            for i, o in enumerate(_list("outputs", m["outputs"]))
        )
        return cls(**m)


# -- building from protocol objects -------------------------------------------
def plan_summary(
    plan: Plan,
    *,
    pilot_trainings: int = 0,
    audits_started: int | None = None,
    delta_requested: float | None = None,
) -> dict[str, Any]:
    """The report's ``plan`` object: what the Verifier committed to, and the epsilon budget.

    The budget lists every term of ``protocol.plan.Plan.budget`` and the unused
    ``slack``, so a reader sees where the margin went.  ``pilot_trainings``: the
    Verifier's own pilot runs before the plan, counted in ``verifier_retrainings``
    (pilot + spot checks + local trainings) as in the report's costs.
    ``audits_started`` / ``delta_requested``: with the Verifier's challenge record,
    which audit of these scores this was and the delta asked for (the plan's own
    ``delta`` is the share this audit spent; :mod:`verifier.challenge_log`).
    """
    r = plan.request
    budget = [{"name": b.name, "value": float(b.value), "note": b.note} for b in plan.budget]
    budget.append({"name": "slack", "value": float(plan.slack), "note": "unused margin"})
    named: dict[str, Any] = {"statistic": plan.statistic} if plan.statistic else {}
    if audits_started is not None:
        named["audits_started"] = int(audits_started)
    if delta_requested is not None:
        named["delta_requested"] = float(delta_requested)
    return _check_plan(
        {
            **named,
            "completeness_radius": float(plan.completeness_radius),
            "pilot_trainings": int(pilot_trainings),
            "verifier_retrainings": int(pilot_trainings + plan.verifier_retrainings),
            "epsilon": float(r.epsilon),
            "delta": float(r.delta),
            "bound": float(r.bound),
            "tolerance": float(r.tolerance),
            "n_outputs": int(r.n_outputs),
            "p": float(r.p),
            "estimator": str(r.estimator),
            "nodes": [float(x) for x in plan.functional.nodes],
            "weights": [float(x) for x in plan.functional.weights],
            "pairs_per_node": [int(n) for n in plan.pairs_per_node],
            "prover_evaluations": int(plan.prover_evaluations),
            "spot_checks": int(plan.spot_checks),
            "local_trainings": int(plan.local_trainings),
            "threshold": float(plan.threshold),
            "budget": budget,
        }
    )


def outputs_from_decision(decision: Decision) -> tuple[OutputResult, ...]:
    """Per-output results of a :class:`protocol.decision.Decision`, in output order."""
    return tuple(
        OutputResult(
            output=int(o.output),
            estimate=float(o.estimate),
            standard_error=float(o.standard_error),
            interval_low=float(o.interval[0]),
            interval_high=float(o.interval[1]),
            certified_upper=float(o.certified_upper),
            accept=bool(o.accept),
            reason=o.reason,
        )
        for o in decision.outputs
    )
