"""Render an :class:`~protocol.report.AuditReport` as text or a self-contained HTML page.

Pure: imports only :mod:`protocol` and the standard library (usable with no
torch or grpc installed).  The HTML page embeds inline SVG plots: each
output's estimate ``err_hat_z`` with its interval and certified upper bound
against the threshold ``eps/2`` and ``eps``, and the spot-check agreement
(worst output difference against the tolerance tau).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.report import AuditReport

__all__ = ["render_html", "render_text", "verdict_sentence"]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def _num(x: Any) -> str:
    """A number for reading: 4 significant digits, integers with thousands separators."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return f"{x:,d}"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _outputs(report: AuditReport) -> list[dict[str, Any]]:
    """Per-output rows; intervals of err (>= 0) are clipped at 0 for display."""
    rows = []
    for o in report.outputs or ():
        low = _get(o, "interval_low")
        rows.append(
            {
                "output": _get(o, "output"),
                "estimate": _get(o, "estimate"),
                "low": max(0.0, low) if low is not None else None,
                "high": _get(o, "interval_high"),
                "certified": _get(o, "certified_upper"),
                "accept": _get(o, "accept"),
            }
        )
    return rows


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
    delta = _get(plan, "delta")
    confidence = (
        f"with probability >= {1 - delta:.4g}" if delta is not None else "with high probability"
    )
    return (
        f"ACCEPT certifies that, {confidence} over the Verifier's own randomness, the "
        f"committed scores' err (mean squared error beyond the best linear datamodel) is "
        f"below epsilon = {_num(_get(plan, 'epsilon'))} on each of the "
        f"{_get(plan, 'n_outputs', len(report.outputs))} outputs, at most "
        f"{_num(report.certified_upper_bound)} (the certified upper bound), {basis}."
    )


def render_text(report: AuditReport) -> str:
    """A readable verdict with the key numbers (rounded; the report holds them exactly)."""
    plan = report.plan or {}
    eps = _get(plan, "epsilon")
    verdict = "ACCEPT" if report.decision == "accept" else "ABORT"
    lines = [f"verdict: {verdict}", "  " + verdict_sentence(report)]
    if report.reason:
        lines.append(f"reason:  {report.reason}")
    lines.append(f"mode: {report.mode}  planning: {report.planning}")
    lines.append(f"task digest:        {report.task_digest}")
    if report.attribution_digest:
        lines.append(f"attribution digest: {report.attribution_digest}")
    if eps is not None:
        rel, var = report.epsilon_relative, report.variance_verified
        rel_text = f" ({rel:.4g} x Var(f) = {var:.4g}, Verifier's own runs)" if rel and var else ""
        lines.append(f"epsilon: {_num(eps)}{rel_text}  delta: {_num(_get(plan, 'delta'))}")
    if report.certified_upper_bound is not None:
        lines.append(
            f"certified upper bound on err (all outputs): {_num(report.certified_upper_bound)}"
        )
    rows = _outputs(report)
    if rows:
        lines.append("  output    err_hat   interval (err >= 0)      certified")
        for r in rows:
            mark = "ok " if r["accept"] else "BAD"
            interval = f"[{_num(r['low'])}, {_num(r['high'])}]"
            lines.append(
                f"  {mark} {r['output']:>3}  {_num(r['estimate']):>9}   {interval:<22} "
                f"{_num(r['certified']):>9}"
            )
    costs = report.costs or {}
    if costs:
        order = [
            ("verifier_retrainings", "Verifier retrainings (pilot included)"),
            ("prover_evaluations", "Prover evaluations"),
            ("spot_checks", "spot checks"),
            ("bytes_received", "bytes received"),
        ]
        parts = [f"{label} {_num(costs[k])}" for k, label in order if k in costs]
        if "wall_seconds" in costs:
            parts.append(f"wall {float(costs['wall_seconds']):.1f} s")
        parts += [
            f"{k.replace('_', ' ')} {_num(v)}"
            for k, v in sorted(costs.items())
            if k not in dict(order) and k != "wall_seconds"
        ]
        lines.append("costs: " + ", ".join(parts))
    if report.merkle_root:
        lines.append(f"merkle root: {report.merkle_root}")
    lines.append(f"soundness: {report.soundness_basis}")
    return "\n".join(lines)


# -- SVG ---------------------------------------------------------------------------------


def _scale(lo: float, hi: float, a: float, b: float):  # type: ignore[no-untyped-def]
    span = hi - lo if hi > lo else 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def estimates_svg(rows: Sequence[Mapping[str, Any]], epsilon: float | None) -> str:
    """Per-output estimate with interval and certified bound; lines at eps/2 and eps."""
    if not rows:
        return "<p>no estimates (the audit stopped before the decision)</p>"
    W, H, L, R, T, B = 640, 60 + 22 * len(rows), 60, 20, 30, 30
    vals = [
        v
        for r in rows
        for v in (r["low"], r["high"], r["certified"], r["estimate"])
        if v is not None
    ]
    if epsilon is not None:
        vals += [epsilon, 0.0]
    lo, hi = min(vals), max(vals)
    pad = 0.05 * (hi - lo or 1.0)
    x = _scale(lo - pad, hi + pad, L, W - R)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="11">']
    if epsilon is not None:
        for val, label, colour in ((epsilon / 2, "eps/2", "#c60"), (epsilon, "eps", "#a00")):
            xv = x(val)
            parts.append(
                f'<line x1="{xv:.1f}" y1="{T - 10}" x2="{xv:.1f}" y2="{H - B}" stroke="{colour}" '
                f'stroke-dasharray="4,3"/><text x="{xv + 2:.1f}" y="{T - 12}" fill="{colour}">'
                f"{label}</text>"
            )
    for k, r in enumerate(rows):
        y = T + 22 * k + 10
        colour = "#070" if r["accept"] else "#b00"
        parts.append(f'<text x="4" y="{y + 4}">output {r["output"]}</text>')
        if r["low"] is not None and r["high"] is not None:
            parts.append(
                f'<line x1="{x(r["low"]):.1f}" y1="{y}" x2="{x(r["high"]):.1f}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        if r["certified"] is not None:
            parts.append(
                f'<line x1="{x(r["certified"]):.1f}" y1="{y - 6}" x2="{x(r["certified"]):.1f}" '
                f'y2="{y + 6}" stroke="#333"/>'
            )
        if r["estimate"] is not None:
            parts.append(f'<circle cx="{x(r["estimate"]):.1f}" cy="{y}" r="3.5" fill="{colour}"/>')
    parts.append(
        f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#000"/>'
        f'<text x="{L}" y="{H - 8}">{_fmt(lo - pad)}</text>'
        f'<text x="{W - R - 60}" y="{H - 8}">{_fmt(hi + pad)}</text>'
        f'<text x="{W // 2 - 120}" y="{H - 8}">'
        "err_hat (dot), interval (bar), certified (tick)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def spot_checks_svg(diffs: Sequence[float], tolerance: float | None) -> str:
    """Worst output difference of each spot check (log scale) against tau."""
    if not diffs:
        return "<p>no spot-check data in this report</p>"
    W, H, L, R, T, B = 640, 220, 60, 20, 20, 30
    floor = 1e-18
    logs = [math.log10(max(d, floor)) for d in diffs]
    top = math.log10(max(tolerance or floor, floor))
    lo, hi = min([*logs, top]) - 1, max([*logs, top]) + 1
    y = _scale(lo, hi, H - B, T)
    x = _scale(0, max(len(diffs) - 1, 1), L, W - R)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="11">']
    if tolerance:
        parts.append(
            f'<line x1="{L}" y1="{y(top):.1f}" x2="{W - R}" y2="{y(top):.1f}" stroke="#a00" '
            f'stroke-dasharray="4,3"/><text x="{L + 4}" y="{y(top) - 3:.1f}" fill="#a00">'
            f"tau = {_fmt(tolerance)}</text>"
        )
    for k, v in enumerate(logs):
        parts.append(f'<circle cx="{x(k):.1f}" cy="{y(v):.1f}" r="2" fill="#036"/>')
    parts.append(
        f'<text x="4" y="{T + 10}">1e{hi:.0f}</text><text x="4" y="{H - B}">1e{lo:.0f}</text>'
        f'<text x="{L}" y="{H - 8}">spot check (sorted by point index): '
        "max |Prover output - Verifier retraining|</text></svg>"
    )
    return "".join(parts)


def _signature_banner(signature: str | None) -> str:
    if signature is None:
        return (
            "<div id='unverified' style='background:#b00;color:#fff;padding:12px;"
            "font-size:1.4em;font-weight:bold'>UNVERIFIED: the signature of this report was "
            "not checked; anyone could have written it. Render it with "
            "<code>pacda-verifier show --public-key KEY.pub</code> or check it with "
            "<code>pacda-verifier check-report</code>.</div>"
        )
    return (
        "<div id='verified' style='background:#070;color:#fff;padding:8px'>"
        f"{html.escape(signature)}</div>"
    )


def render_html(
    report: AuditReport, spot_check_diffs: Sequence[float] = (), *, signature: str | None = None
) -> str:
    """A self-contained HTML page: verdict, plots, plan and the full text rendering.

    Args:
        report: the report.
        spot_check_diffs: per spot check ``max_z |f_prover - f_own|`` (from the
            unsigned ``<report>.details.json`` the audit writes beside the report).
        signature: what the caller verified about the signature (shown in a
            green band); ``None``: nothing was verified, and a red UNVERIFIED
            banner heads the page.
    """
    plan = report.plan or {}
    eps = _get(plan, "epsilon")
    spot = list(spot_check_diffs)
    tol = _get(plan, "tolerance")
    verdict = "ACCEPT" if report.decision == "accept" else "ABORT"
    colour = "#070" if report.decision == "accept" else "#b00"
    plan_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in sorted(plan.items())
        if not isinstance(v, list | dict) or len(str(v)) < 200
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>pacda audit report</title>"
        "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
        "td{padding:2px 8px;border-bottom:1px solid #ddd;font-family:monospace}</style></head>"
        "<body>"
        + _signature_banner(signature)
        + f"<h1>pacda audit: <span style='color:{colour}'>{verdict}</span></h1>"
        f"<p><b>{html.escape(verdict_sentence(report))}</b></p>"
        f"<p>{html.escape(report.reason)}</p>"
        "<h2>Estimates per output</h2>"
        + estimates_svg(_outputs(report), eps)
        + "<h2>Spot-check agreement</h2>"
        + spot_checks_svg([float(d) for d in spot], tol)
        + f"<h2>Plan</h2><table>{plan_rows}</table>"
        f"<h2>Report</h2><pre>{html.escape(render_text(report))}</pre></body></html>\n"
    )
