"""The words and numbers of a rendered report, and the plain-text rendering.

Pure: imports only :mod:`protocol` and the standard library.  Everything a
reader sees in either rendering is worded and rounded here, once:
:func:`verdict_sentence`, :func:`num` (the rounding), :func:`output_rows`
(err intervals clipped at 0), :func:`epsilon_text`, :func:`budget_rows` (where
epsilon goes), :func:`completeness_text`, :func:`devices_text`,
:func:`provenance_text` and :func:`cost_parts`.
:mod:`verifier.render_html` lays the same pieces out as a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.report import AuditReport

__all__ = [
    "BudgetRow",
    "OutputRow",
    "budget_rows",
    "completeness_text",
    "cost_parts",
    "delta_text",
    "devices_text",
    "epsilon_text",
    "num",
    "output_rows",
    "provenance_text",
    "render_text",
    "verdict_sentence",
    "verdict_word",
]

#: Significant digits of every rounded number (the report itself holds them exactly).
DIGITS = 4

#: A budget term below this fraction of epsilon is floating-point round-off: shown as 0.
ROUND_OFF = 1e-9


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for a mapping (the report's ``plan``), else ``obj.name``."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def num(x: Any) -> str:
    """A number for reading: 4 significant digits, integers with thousands separators.

    Integral floats print without a fraction (``6.0`` -> ``6``); anything that is
    not a number is ``str(x)``.  This is the only rounding the renderings use.
    """
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return f"{x:,d}"
    if isinstance(x, float):
        if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
            return f"{int(x):,d}"
        return f"{x:.{DIGITS}g}"
    return str(x)


def verdict_word(report: AuditReport) -> str:
    """``ACCEPT`` or ``ABORT``."""
    return "ACCEPT" if report.decision == "accept" else "ABORT"


def verdict_sentence(report: AuditReport) -> str:
    """One sentence: what this verdict certifies (ACCEPT) or that nothing is (ABORT)."""
    plan = report.plan or {}
    if report.decision != "accept":
        return (
            "The scores are not certified: the audit ended without a certificate "
            "for the reason below."
        )
    basis = (
        "under the paper's range-based guarantee"
        if report.planning == "rigorous"
        else "under the practical-mode assumptions listed under 'soundness'"
    )
    delta = get(plan, "delta")
    confidence = (
        f"with probability >= {num(1 - delta)}" if delta is not None else "with high probability"
    )
    return (
        f"ACCEPT certifies that, {confidence} over the Verifier's own randomness, the "
        f"committed scores' err (mean squared error beyond the best linear datamodel) is "
        f"below epsilon = {num(get(plan, 'epsilon'))} on each of the "
        f"{get(plan, 'n_outputs', len(report.outputs))} outputs, at most "
        f"{num(report.certified_upper_bound)} (the certified upper bound), {basis}."
    )


@dataclass(frozen=True)
class OutputRow:
    """One output's verdict for display; ``low`` is clipped at 0 (err is never negative)."""

    output: int
    estimate: float
    low: float
    high: float
    certified: float
    accept: bool
    reason: str


def output_rows(report: AuditReport) -> list[OutputRow]:
    """Per-output rows, in output order; intervals of err (>= 0) clipped at 0."""
    return [
        OutputRow(
            output=int(get(o, "output")),
            estimate=float(get(o, "estimate")),
            low=max(0.0, float(get(o, "interval_low"))),
            high=max(0.0, float(get(o, "interval_high"))),
            certified=float(get(o, "certified_upper")),
            accept=bool(get(o, "accept")),
            reason=str(get(o, "reason", "")),
        )
        for o in report.outputs or ()
    ]


def epsilon_text(report: AuditReport) -> str | None:
    """``0.3 (0.3715 x Var(f) = 0.8075, Verifier's own runs)``; ``None`` without a plan."""
    eps = get(report.plan or {}, "epsilon")
    if eps is None:
        return None
    rel, var = report.epsilon_relative, report.variance_verified
    if rel and var:
        return f"{num(eps)} ({num(rel)} x Var(f) = {num(var)}, Verifier's own runs)"
    return num(eps)


def delta_text(report: AuditReport) -> str | None:
    """``0.025 (audit 1 of these scores by this Verifier: 0.05 / (1 x 2))``; ``None`` without one.

    Without a challenge record (older reports, local mode) the plan's delta alone.
    """
    plan = report.plan or {}
    delta = get(plan, "delta")
    if delta is None:
        return None
    j, asked = get(plan, "audits_started"), get(plan, "delta_requested")
    if j is None or asked is None:
        return num(delta)
    j = int(j)
    share = f"{num(asked)} / ({j} x {j + 1})"
    return f"{num(delta)} (audit {j} of these scores by this Verifier: {share})"


@dataclass(frozen=True)
class BudgetRow:
    """One part of epsilon: its name, value (round-off shown as 0), share and meaning."""

    name: str
    value: float
    share: float
    note: str

    @property
    def value_text(self) -> str:
        """The value, rounded."""
        return num(self.value)

    @property
    def share_text(self) -> str:
        """The share of epsilon, in percent to one decimal."""
        return f"{100 * self.share:.1f}%"


THRESHOLD_NOTE = "left for the estimate err_hat itself (the acceptance threshold)"


def budget_rows(report: AuditReport) -> list[BudgetRow]:
    """Where epsilon goes: the err_hat threshold, then every term of ``plan.budget``.

    The plan's threshold and its budget terms (slack included) add up to
    epsilon.  Empty without a plan.
    """
    plan = report.plan
    if not plan:
        return []
    eps = float(plan["epsilon"])

    def row(name: str, value: float, note: str) -> BudgetRow:
        value = 0.0 if abs(value) < ROUND_OFF * eps else float(value)
        return BudgetRow(name, value, value / eps, note)

    rows = [row("err_hat threshold", float(plan["threshold"]), THRESHOLD_NOTE)]
    rows += [row(str(b["name"]), float(b["value"]), str(b["note"])) for b in plan.get("budget", ())]
    return rows


def completeness_text(report: AuditReport) -> str | None:
    """What honest scores pass: the completeness radius, or why the report lacks it.

    ``None`` without a plan.  The plan records the radius; reports written before
    it did (the audit printed it with its plan, before the challenge) do not, and
    the text then says so and bounds it by the err_hat threshold, which it never
    exceeds.
    """
    plan = report.plan
    if not plan:
        return None
    delta = float(plan["delta"])
    radius = plan.get("completeness_radius")
    if radius is not None:
        return (
            f"completeness radius: {num(float(radius))}. Honest scores with err up to it "
            f"pass with probability >= {num(1 - delta)}."
        )
    return (
        f"completeness radius: at most {num(float(plan['threshold']))} (the err_hat "
        "threshold); its exact value is printed by the audit with its plan and not recorded "
        f"in this report. Honest scores with err up to the radius pass with probability "
        f">= {num(1 - delta)}."
    )


def devices_text(report: AuditReport) -> str | None:
    """Where each side trained (the report's optional ``devices``); ``None`` if unrecorded."""
    devices = get(report, "devices")
    if not devices:
        return None

    def side(who: str, key: str) -> str:
        cls, name = devices.get(key, ""), devices.get(f"{key}_name", "")
        if not cls:
            return f"{who} none"
        return f"{who} {cls}" + (f" ({name})" if name and name != cls else "")

    return f"{side('Prover', 'prover')}, {side('Verifier', 'verifier')}"


def _spread(values: Any) -> str | None:
    numbers = [float(v) for v in values or () if v is not None]
    if not numbers:
        return None
    lo, hi = min(numbers), max(numbers)
    return num(lo) if num(lo) == num(hi) else f"{num(lo)} to {num(hi)}"


def provenance_text(report: AuditReport) -> str | None:
    """What the Prover declared its scores to be (optional ``scores_provenance``), unverified.

    ``None`` when the report does not record it.
    """
    provenance = get(report, "scores_provenance")
    if not provenance:
        return None
    text = f"method {provenance.get('method', '?')} (declared by the Prover, not verified)"
    cal = provenance.get("calibration")
    if cal:
        where = "by import-scores" if cal.get("source") == "import-scores" else "by the method"
        head = f"calibrated {where}"
        if cal.get("samples") is not None:
            head += f" on {num(cal['samples'])} retrainings"
        parts = [head]
        if cal.get("seed") is not None:
            parts.append(f"seed {cal['seed']}")
        for key, label in (("scale", "scale"), ("intercept", "intercept"), ("r2", "R^2")):
            spread = _spread(cal.get(key))
            if spread is not None:
                parts.append(f"{label} {spread}")
        text += "; " + ", ".join(parts)
    return text


_COST_ORDER = (
    ("verifier_retrainings", "Verifier retrainings (pilot included)"),
    ("prover_evaluations", "Prover evaluations"),
    ("spot_checks", "spot checks"),
    ("bytes_received", "bytes received"),
)


def cost_parts(report: AuditReport) -> list[str]:
    """The audit's costs as labelled, rounded phrases (``Prover evaluations 378``)."""
    costs = report.costs or {}
    known = dict(_COST_ORDER)
    parts = [f"{label} {num(costs[k])}" for k, label in _COST_ORDER if k in costs]
    if "wall_seconds" in costs:
        parts.append(f"wall {float(costs['wall_seconds']):.1f} s")
    parts += [
        f"{k.replace('_', ' ')} {num(v)}"
        for k, v in sorted(costs.items())
        if k not in known and k != "wall_seconds"
    ]
    return parts


def render_text(report: AuditReport) -> str:
    """A readable verdict with the key numbers (rounded; the report holds them exactly)."""
    plan = report.plan or {}
    lines = [f"verdict: {verdict_word(report)}", "  " + verdict_sentence(report)]
    if report.reason:
        lines.append(f"reason:  {report.reason}")
    lines.append(f"mode: {report.mode}  planning: {report.planning}")
    devices = devices_text(report)
    if devices is not None:
        lines.append(f"devices: {devices}")
    provenance = provenance_text(report)
    if provenance is not None:
        lines.append(f"scores: {provenance}")
    lines.append(f"task digest:        {report.task_digest}")
    if report.attribution_digest:
        lines.append(f"attribution digest: {report.attribution_digest}")
    eps = epsilon_text(report)
    if eps is not None:
        lines.append(f"epsilon: {eps}  delta: {delta_text(report)}")
    if report.certified_upper_bound is not None:
        lines.append(
            f"certified upper bound on err (all outputs): {num(report.certified_upper_bound)}"
        )
    rows = output_rows(report)
    if rows:
        lines.append("  output    err_hat   interval (err >= 0)      certified")
        for r in rows:
            mark = "ok " if r.accept else "BAD"
            interval = f"[{num(r.low)}, {num(r.high)}]"
            lines.append(
                f"  {mark} {r.output:>3}  {num(r.estimate):>9}   {interval:<22} "
                f"{num(r.certified):>9}"
            )
    budget = budget_rows(report)
    if budget:
        lines.append(f"where epsilon = {num(get(plan, 'epsilon'))} goes (share of epsilon):")
        lines += [f"  {b.name:<20} {b.value_text:>9} {b.share_text:>6}  {b.note}" for b in budget]
    completeness = completeness_text(report)
    if completeness is not None:
        lines.append(completeness)
    else:
        lines.append("plan: none (the audit stopped before planning)")
    parts = cost_parts(report)
    if parts:
        lines.append("costs: " + ", ".join(parts))
    if report.merkle_root:
        lines.append(f"merkle root: {report.merkle_root}")
    lines.append(f"soundness: {report.soundness_basis}")
    return "\n".join(lines)
