"""Signed audit reports (docs/design.md §2, "Audit report").

A report records what was audited (task and attribution digests), how (mode,
planning, the plan with its epsilon budget), what came out (per-output
estimates, intervals, the certified upper bound on ``err``), the decision and
the Prover's commitments (Merkle root, challenge seed, Prover key and
signatures), plus costs and the basis of the soundness claim.

The report *file* is the RFC 8785 canonical JSON (no trailing newline) of::

    {"report": <AuditReport.to_dict()>,
     "signature": {"algorithm": "ed25519",
                   "public_key": <hex of the Verifier's raw 32-byte key>,
                   "value": <hex of Ed25519(canonical_json(report))>}}

Ed25519 is pure Ed25519 of RFC 8032 §5.1.  :func:`verify_report` requires the
file to be *byte for byte* the canonical encoding of what it parses to, so
any change to the file — even whitespace or an escape that decodes to the
same text — is rejected, and needs only :mod:`protocol` (no torch).
Byte strings inside the report are lowercase hex; absent ones are ``""``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from protocol.canonical_json import canonical_json
from protocol.decision import Decision
from protocol.errors import InvalidArgument, SignatureError
from protocol.plan import Plan
from protocol.signing import (
    key_id,
    public_key_bytes,
    public_key_from_bytes,
    sign_json,
    verify_json,
)

__all__ = [
    "DECISIONS",
    "MODES",
    "PLANNINGS",
    "REPORT_VERSION",
    "SOUNDNESS_PRACTICAL",
    "SOUNDNESS_RIGOROUS",
    "AuditReport",
    "OutputResult",
    "load_report_unverified",
    "outputs_from_decision",
    "plan_summary",
    "report_public_key",
    "sign_report",
    "utc_timestamp",
    "verify_report",
]

REPORT_VERSION: Final = "pacda-report-v1"
SIGNATURE_ALGORITHM: Final = "ed25519"
MODES: Final = ("committed", "paper", "local")
PLANNINGS: Final = ("rigorous", "practical")
DECISIONS: Final = ("accept", "abort")
SOUNDNESS_RIGOROUS: Final = "rigorous: Hoeffding/range-based, paper guarantee"
SOUNDNESS_PRACTICAL: Final = (
    "practical: variance-based; soundness rests on the adversarial test suite"
)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_HEX_BYTES = {
    "merkle_root": 32,
    "challenge_seed": 32,
    "prover_public_key": 32,
    "prover_commitment_signature": 64,
    "prover_root_signature": 64,
}
_PLAN_FLOATS = ("epsilon", "delta", "bound", "tolerance", "p", "threshold")
_PLAN_INTS = ("n_outputs", "prover_evaluations", "spot_checks", "local_trainings")
_PLAN_KEYS = frozenset(
    (*_PLAN_FLOATS, *_PLAN_INTS, "estimator", "nodes", "weights", "pairs_per_node", "budget")
)
_COST_KEYS = frozenset(
    ("verifier_retrainings", "prover_evaluations", "bytes_received", "spot_checks")
)
_MAX_SAFE_INT = 2**53 - 1


# -- field checks ------------------------------------------------------------
def _num(name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidArgument(f"{name} must be finite, got {out}")
    if minimum is not None and out < minimum:
        raise InvalidArgument(f"{name} must be >= {minimum:g}, got {out}")
    return out


def _opt_num(name: str, value: Any, *, minimum: float | None = None) -> float | None:
    return None if value is None else _num(name, value, minimum=minimum)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= _MAX_SAFE_INT:
        raise InvalidArgument(f"{name} must lie in [0, 2^53), got {value}")
    return int(value)


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    return value


def _list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidArgument(f"{name} must be a list, got {type(value).__name__}")
    return list(value)


def _exact_keys(where: str, value: Any, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{where} must be an object, got {type(value).__name__}")
    for key in value:
        if key not in keys:
            raise InvalidArgument(f"{where}: unknown field {key!r}")
    for key in sorted(keys):
        if key not in value:
            raise InvalidArgument(f"{where}: missing field {key!r}")
    return value


def _check_plan(plan: Any) -> dict[str, Any]:
    p = _exact_keys("plan", plan, _PLAN_KEYS)
    out: dict[str, Any] = {k: _num(f"plan.{k}", p[k]) for k in _PLAN_FLOATS}
    out.update({k: _int(f"plan.{k}", p[k]) for k in _PLAN_INTS})
    out["estimator"] = _str("plan.estimator", p["estimator"])
    nodes = [_num(f"plan.nodes[{i}]", v) for i, v in enumerate(_list("plan.nodes", p["nodes"]))]
    weights = _list("plan.weights", p["weights"])
    pairs = _list("plan.pairs_per_node", p["pairs_per_node"])
    if not nodes or len(weights) != len(nodes) or len(pairs) != len(nodes):
        raise InvalidArgument(
            "plan.nodes, plan.weights and plan.pairs_per_node must be non-empty and equally "
            f"long, got {len(nodes)}, {len(weights)}, {len(pairs)}"
        )
    out["nodes"] = nodes
    out["weights"] = [_num(f"plan.weights[{i}]", v) for i, v in enumerate(weights)]
    out["pairs_per_node"] = [_int(f"plan.pairs_per_node[{i}]", v) for i, v in enumerate(pairs)]
    budget = []
    for i, item in enumerate(_list("plan.budget", p["budget"])):
        where = f"plan.budget[{i}]"
        b = _exact_keys(where, item, frozenset(("name", "value", "note")))
        budget.append(
            {
                "name": _str(f"{where}.name", b["name"]),
                "value": _num(f"{where}.value", b["value"]),
                "note": _str(f"{where}.note", b["note"]),
            }
        )
    out["budget"] = budget
    return out


def _check_costs(costs: Any) -> dict[str, Any]:
    c = _exact_keys("costs", costs, _COST_KEYS | {"wall_seconds"})
    out: dict[str, Any] = {k: _int(f"costs.{k}", c[k]) for k in sorted(_COST_KEYS)}
    out["wall_seconds"] = _num("costs.wall_seconds", c["wall_seconds"], minimum=0.0)
    return out


def _check_hex(name: str, value: Any) -> str:
    text = _str(name, value)
    size = _HEX_BYTES[name]
    if text and not re.fullmatch(f"[0-9a-f]{{{2 * size}}}", text):
        raise InvalidArgument(f"{name} must be {size} bytes as lowercase hex, or empty")
    return text


def _check_timestamp(value: Any) -> str:
    text = _str("created_at", value)
    if not _TIMESTAMP.fullmatch(text):
        raise InvalidArgument(
            f"created_at must be an RFC 3339 UTC timestamp like 2025-01-31T12:00:00Z, got {text!r}"
        )
    try:
        datetime.fromisoformat(text[:-1])
    except ValueError:
        raise InvalidArgument(f"created_at is not a valid date and time: {text!r}") from None
    return text


def utc_timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC timestamp with second precision, e.g. ``2025-01-31T12:00:00Z``."""
    when = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


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
    ``epsilon_relative = epsilon / variance_verified``.
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
        m = dict(_exact_keys("report", d, keys))
        m["outputs"] = tuple(
            OutputResult.from_dict(o, where=f"outputs[{i}]")
            for i, o in enumerate(_list("outputs", m["outputs"]))
        )
        return cls(**m)


# -- building from protocol objects -------------------------------------------
def plan_summary(plan: Plan) -> dict[str, Any]:
    """The report's ``plan`` object: what the Verifier committed to, and the epsilon budget.

    The budget lists every term of ``protocol.plan.Plan.budget`` and the unused
    ``slack``, so a reader sees where epsilon/2 of soundness margin went.
    """
    r = plan.request
    budget = [{"name": b.name, "value": float(b.value), "note": b.note} for b in plan.budget]
    budget.append({"name": "slack", "value": float(plan.slack), "note": "unused margin"})
    return _check_plan(
        {
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


# -- signing and verification ---------------------------------------------------
def sign_report(report: AuditReport, private_key: Ed25519PrivateKey) -> bytes:
    """The signed report file: canonical JSON (RFC 8785), no trailing newline.

    The signature is Ed25519 (RFC 8032) over ``canonical_json(report.to_dict())``.
    """
    body = report.to_dict()
    signature = sign_json(private_key, body)
    return canonical_json(
        {
            "report": body,
            "signature": {
                "algorithm": SIGNATURE_ALGORITHM,
                "public_key": public_key_bytes(private_key.public_key()).hex(),
                "value": signature.hex(),
            },
        }
    )


def _reject_constant(name: str) -> Any:
    raise InvalidArgument(f"report is not valid JSON: {name} is not a JSON number")


def _parse_int(text: str) -> int | float:
    value = int(text)
    return value if abs(value) <= _MAX_SAFE_INT else float(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidArgument(f"report is not valid JSON: duplicate key {key!r}")
        out[key] = value
    return out


def _parse(document: bytes) -> Any:
    if not isinstance(document, bytes | bytearray):
        raise InvalidArgument(f"a report document is bytes, got {type(document).__name__}")
    try:
        text = bytes(document).decode("utf-8")
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"report is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"report is not valid JSON: {exc.msg} at byte {exc.pos}") from None
    except RecursionError:
        raise InvalidArgument("report is not valid JSON: nested too deeply") from None


def _envelope(parsed: Any) -> tuple[dict[str, Any], bytes, bytes]:
    """``(report object, raw public key, raw signature)`` of a parsed report file."""
    top = _exact_keys("report file", parsed, frozenset(("report", "signature")))
    sig = _exact_keys(
        "signature", top["signature"], frozenset(("algorithm", "public_key", "value"))
    )
    if sig["algorithm"] != SIGNATURE_ALGORITHM:
        raise InvalidArgument(f"unsupported signature algorithm {sig['algorithm']!r}")
    key_hex, value_hex = sig["public_key"], sig["value"]
    if not isinstance(key_hex, str) or not re.fullmatch("[0-9a-f]{64}", key_hex):
        raise InvalidArgument("signature.public_key must be 32 bytes as lowercase hex")
    if not isinstance(value_hex, str) or not re.fullmatch("[0-9a-f]{128}", value_hex):
        raise InvalidArgument("signature.value must be 64 bytes as lowercase hex")
    if not isinstance(top["report"], dict):
        raise InvalidArgument("report must be an object")
    return top["report"], bytes.fromhex(key_hex), bytes.fromhex(value_hex)


def verify_report(document: bytes, public_key: Ed25519PublicKey) -> AuditReport:
    """Verify a signed report file offline and return the report.

    Args:
        document: the file's exact bytes.
        public_key: the Verifier key the report must be signed with.

    Raises:
        InvalidArgument: not UTF-8 JSON, or a malformed envelope or report.
        SignatureError: the bytes are not exactly the RFC 8785 canonical
            encoding of their content (any edit after signing), the embedded
            key is not ``public_key``, or the Ed25519 signature fails.
    """
    parsed = _parse(document)
    try:
        canonical = canonical_json(parsed)
    except UnicodeEncodeError:
        raise InvalidArgument("report contains a string that is not valid Unicode") from None
    if canonical != bytes(document):
        raise SignatureError(
            "report file is not in RFC 8785 canonical form, so it was changed after signing"
        )
    body, key_raw, signature = _envelope(parsed)
    expected = public_key_bytes(public_key)
    if key_raw != expected:
        raise SignatureError(
            f"report is signed by ed25519:{key_raw.hex()}, not by the expected key "
            f"{key_id(public_key)}"
        )
    verify_json(public_key, body, signature)
    report = AuditReport.from_dict(body)
    if canonical_json(report.to_dict()) != canonical_json(body):
        raise InvalidArgument("report fields do not round-trip; refusing an ambiguous report")
    return report


def load_report_unverified(document: bytes) -> AuditReport:
    """Parse a report file for display WITHOUT checking its signature.

    Raises:
        InvalidArgument: not UTF-8 JSON, or a malformed envelope or report.
    """
    body, _, _ = _envelope(_parse(document))
    return AuditReport.from_dict(body)


def report_public_key(document: bytes) -> Ed25519PublicKey:
    """The (unverified) signer key embedded in a report file, e.g. to display its key id."""
    _, key_raw, _ = _envelope(_parse(document))
    return public_key_from_bytes(key_raw)
