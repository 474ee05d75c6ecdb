"""Field checks of audit reports (:mod:`protocol.report`): strict types, digests, timestamps."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from protocol.canonical_json import canonical_json
from protocol.errors import InvalidArgument

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
#: Plan fields added later, optional so that earlier reports keep verifying: the
#: Verifier's pilot runs, its retrainings in all (pilot + spot checks + local
#: trainings), and the completeness radius of clipped-gap plans.
#: Then, with the Verifier's record of the challenges it issued: which audit of these
#: scores (by this Prover key) this one was, and the delta asked for (``delta`` is the
#: share this audit spent, ``delta_requested / (audits_started (audits_started + 1))``).
_PLAN_OPTIONAL_INTS = ("pilot_trainings", "verifier_retrainings", "audits_started")
_PLAN_OPTIONAL_FLOATS = ("completeness_radius", "delta_requested")
#: The registered statistic that made the plan (added with the statistics' registry).
_PLAN_OPTIONAL_STRS = ("statistic",)
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
    optional = (*_PLAN_OPTIONAL_INTS, *_PLAN_OPTIONAL_FLOATS, *_PLAN_OPTIONAL_STRS)
    if isinstance(plan, Mapping):
        present = frozenset(k for k in optional if k in plan)
        p = _exact_keys("plan", plan, _PLAN_KEYS | present)
    else:
        p = _exact_keys("plan", plan, _PLAN_KEYS)
    out: dict[str, Any] = {k: _num(f"plan.{k}", p[k]) for k in _PLAN_FLOATS}
    out.update({k: _int(f"plan.{k}", p[k]) for k in _PLAN_INTS})
    out.update({k: _int(f"plan.{k}", p[k]) for k in _PLAN_OPTIONAL_INTS if k in p})
    out.update({k: _num(f"plan.{k}", p[k]) for k in _PLAN_OPTIONAL_FLOATS if k in p})
    out.update({k: _str(f"plan.{k}", p[k]) for k in _PLAN_OPTIONAL_STRS if k in p})
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


#: Device classes a report may record (``prover.tasks.device.DEVICE_CLASSES``; "" = none).
_DEVICE_CLASSES = ("", "cpu", "cuda")
_DEVICE_KEYS = frozenset(("prover", "prover_name", "verifier", "verifier_name"))
_MAX_DEVICE_NAME = 200


def _check_devices(devices: Any) -> dict[str, str]:
    """``{"prover", "prover_name", "verifier", "verifier_name"}``: classes and descriptions.

    A class is ``"cpu"``, ``"cuda"`` or ``""`` (no Prover: local mode, or an
    audit that ended before the Prover's commitment); a name is a string of at
    most 200 characters.
    """
    d = _exact_keys("devices", devices, _DEVICE_KEYS)
    out = {k: _str(f"devices.{k}", d[k]) for k in sorted(_DEVICE_KEYS)}
    for side in ("prover", "verifier"):
        if out[side] not in _DEVICE_CLASSES:
            raise InvalidArgument(
                f"devices.{side} must be 'cpu', 'cuda' or empty, got {out[side][:40]!r}"
            )
        if len(out[f"{side}_name"]) > _MAX_DEVICE_NAME:
            raise InvalidArgument(f"devices.{side}_name is longer than {_MAX_DEVICE_NAME}")
    if not out["verifier"]:
        raise InvalidArgument("devices.verifier must name the Verifier's device class")
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


_PROVENANCE_KEYS = frozenset(("method", "calibration"))


def _check_provenance(value: Any) -> dict[str, Any] | None:
    """``scores_provenance``: null, or ``{"method": str, "calibration": null | object}``.

    Copied from the Prover's declared method and meta
    (:func:`protocol.scores_provenance.scores_provenance`);
    the calibration object must be plain JSON (no NaN or infinity).
    """
    if value is None:
        return None
    p = _exact_keys("scores_provenance", value, _PROVENANCE_KEYS)
    out: dict[str, Any] = {"method": _str("scores_provenance.method", p["method"])}
    cal = p["calibration"]
    if cal is not None and not isinstance(cal, Mapping):
        raise InvalidArgument(
            f"scores_provenance.calibration must be an object or null, got {type(cal).__name__}"
        )
    try:
        canonical_json(cal)
    except (InvalidArgument, TypeError, ValueError) as err:
        raise InvalidArgument(f"scores_provenance.calibration is not plain JSON ({err})") from None
    out["calibration"] = None if cal is None else dict(cal)
    return out
