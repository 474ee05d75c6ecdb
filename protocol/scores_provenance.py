"""What a scores file declares about where its scores came from, for the audit report.

``scores_provenance`` reads a scores file's method and ``meta`` (the Prover's
declaration: the attribution method, and for calibrated scores what was
fitted, on how many runs, with which seed) into the report's optional
``scores_provenance`` field.  It is a declaration, not something the audit
verifies; the audit certifies the scores as served.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["CALIBRATION_FITTED", "scores_provenance"]


#: What a calibration record says was fitted (``scores_provenance``).
CALIBRATION_FITTED = (
    "per output z: intercept a_z and one scale factor s_z, by least squares of the Prover's "
    "retrained outputs f_z(x_k) on the predictor theta_z . x_k; the served scores are "
    "theta0 = a, theta = s * theta (the audit certifies these calibrated scores)"
)
#: Longest per-output list copied into a provenance record.
_MAX_PROVENANCE_LIST = 100_000


def _finite_list(value: Any) -> list[float] | None:
    if not isinstance(value, list) or len(value) > _MAX_PROVENANCE_LIST:
        return None
    out: list[float] = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            return None
        out.append(float(v))
    return out


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
    return int(value) if ok else None


def scores_provenance(method: str, meta_json: str) -> dict[str, Any]:
    """Where a set of scores says it comes from, as the audit report records it.

    ``method`` and ``meta_json`` are what the Prover declared with its
    commitment (the scores file's ``method`` and ``meta``): not verified, recorded
    so that a report says what the certified scores are.  Returns

        {"method": <name>, "calibration": None | {
            "tool": <name>, "source": "import-scores" | "method",
            "fitted": CALIBRATION_FITTED, "samples": K, "seed": S,
            "scale": [s_z], "intercept": [a_z], "r2": [R^2_z]}}

    The calibration is read from ``meta.import.calibration`` (written by
    ``pacda-prover import-scores --calibrate K``; tool = the method name without
    ``imported-``) or ``meta.fit.calibration`` (written by a method that calibrates
    its own scores, e.g. ``trak``; seed = ``meta.config.seed``).  Values of the
    wrong type become None; meta that is not a JSON object gives no calibration.
    """
    out: dict[str, Any] = {"method": str(method), "calibration": None}
    try:
        meta = json.loads(meta_json, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError, TypeError):
        return out
    if not isinstance(meta, dict):
        return out
    record: Any = None
    source = ""
    seed: Any = None
    imported = meta.get("import")
    fit = meta.get("fit")
    if isinstance(imported, dict) and isinstance(imported.get("calibration"), dict):
        record, source = imported["calibration"], "import-scores"
        seed = record.get("seed")
    elif isinstance(fit, dict) and isinstance(fit.get("calibration"), dict):
        record, source = fit["calibration"], "method"
        config = meta.get("config")
        seed = config.get("seed") if isinstance(config, dict) else None
    if record is None:
        return out
    tool = str(method)
    if source == "import-scores" and tool.startswith("imported-"):
        tool = tool[len("imported-") :]
    out["calibration"] = {
        "tool": tool,
        "source": source,
        "fitted": CALIBRATION_FITTED,
        "samples": _count(record.get("samples")),
        "seed": _count(seed),
        "scale": _finite_list(record.get("scale")),
        "intercept": _finite_list(record.get("intercept")),
        "r2": _finite_list(record.get("r2")),
    }
    return out


def _no_constant(name: str) -> float:
    """``json.loads`` hook: NaN and infinities are not JSON."""
    raise ValueError(f"{name} is not allowed in JSON")
