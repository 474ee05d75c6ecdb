"""Render an :class:`~protocol.report.AuditReport` as one self-contained HTML page.

Pure: imports only :mod:`protocol`, :mod:`verifier.render_text` and the
standard library.  The page has no scripts and loads nothing: CSS and the two
plots (inline SVG) are in the file.  Every sentence and every rounded number
comes from :mod:`verifier.render_text`, the same functions as the plain-text
rendering.

The plots:

* *estimates per output*: each output's ``err_hat_z`` (dot), its sampling
  interval clipped at 0 (bar) and its certified upper bound (tick) on a
  labelled err axis with ticks, a zero line and a line at epsilon;
* *spot-check agreement*: for each spot check, ``max_z |Prover output -
  Verifier retraining|`` on a labelled log axis against the tolerance tau;
  differences that are exactly 0 (identical floating-point results) sit on
  their own row labelled ``0``, below a break in the axis.

The page fits a 1280 px wide window: the plots scale to the column width and
long unbroken strings (digests, keys, signatures) wrap.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from protocol.report import AuditReport
from verifier.render_text import (
    OutputRow,
    budget_rows,
    completeness_text,
    cost_parts,
    devices_text,
    epsilon_text,
    get,
    num,
    output_rows,
    provenance_text,
    render_text,
    verdict_sentence,
    verdict_word,
)

__all__ = ["estimates_svg", "nice_ticks", "render_html", "spot_checks_svg"]

_ACCEPT, _REJECT, _EPS, _AXIS, _MUTED = "#070", "#b00", "#a00", "#222", "#777"

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:#222;line-height:1.45;max-width:62rem;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.8rem;margin:.8rem 0 .4rem}
h2{font-size:1.3rem;margin:1.8rem 0 .5rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
p,li,td,th,figcaption{overflow-wrap:anywhere}
code,.hex{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em;
 overflow-wrap:anywhere;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:.4rem 0}
th,td{text-align:left;vertical-align:top;padding:3px 8px;border-bottom:1px solid #e3e3e3}
th{font-weight:600;background:#f6f6f6}
td.n,th.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
table.kv th{width:15rem;background:none}
.verdict{font-size:1.15rem;font-weight:600}
.accept{color:#070}.reject{color:#b00}
.reason{background:#fff4f4;border-left:4px solid #b00;padding:.5rem .8rem}
.banner{color:#fff;padding:.6rem .9rem;overflow-wrap:anywhere}
#unverified{background:#b00;font-size:1.3rem;font-weight:bold}
#verified{background:#070}
figure{margin:.6rem 0}
svg{display:block;width:100%;height:auto;max-width:100%}
figcaption{font-size:.92rem;color:#444;margin-top:.3rem}
.legend span{margin-right:1.2rem;white-space:nowrap}
.note{color:#555;font-size:.95rem}
""".strip()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# -- axes --------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``[lo, hi]``.

    Returns at least two ticks, the first <= ``lo`` and the last >= ``hi``;
    0 is a tick whenever the range contains it.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need a finite range, got [{lo}, {hi}]")
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(target - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = [round(k * step, 12) for k in range(first, last + 1)]
    return ticks if len(ticks) >= 2 else [ticks[0], ticks[0] + step]


class _Axis:
    """A linear map from data ``[lo, hi]`` to pixels ``[a, b]``."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        return self.a + (v - self.lo) / span * (self.b - self.a)


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-size="13" role="img" aria-label="{_e(label)}">'
    )


def _text(x: float, y: float, text: str, cls: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}"{extra}>{_e(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"{extra}/>'
    )


# -- estimates ---------------------------------------------------------------------------


def estimates_svg(rows: Sequence[OutputRow], epsilon: float | None) -> str:
    """Per-output err_hat, interval (clipped at 0) and certified bound; lines at 0 and epsilon.

    The x axis is err in squared output units, with round ticks, a title, a
    zero line and a dashed line at epsilon (every certified bound of an
    accepted output lies below it).  The y axis names each output.
    """
    if not rows:
        return "<p class='note'>No estimates: the audit stopped before the decision.</p>"
    W, L, R, T, row_h = 900, 100, 30, 50, 30
    plot_h = row_h * len(rows)
    H = T + plot_h + 62
    values = [v for r in rows for v in (r.estimate, r.low, r.high, r.certified)]
    if epsilon is not None:
        values.append(epsilon)
    ticks = nice_ticks(min(0.0, *values), max(values), target=8)
    x = _Axis(ticks[0], ticks[-1], L, W - R)
    bottom = T + plot_h
    out = [_svg_open(W, H, "err per output: estimate, interval, certified upper bound")]
    for t in ticks:  # grid and tick labels
        out.append(_line(x(t), T, x(t), bottom, "#e6e6e6"))
        out.append(_line(x(t), bottom, x(t), bottom + 5, _AXIS))
        out.append(_text(x(t), bottom + 19, num(t), "tick x-tick", text_anchor="middle"))
    # the two reference labels share the line above the plot unless epsilon sits close
    # to 0 on this scale; then the zero label moves up a line and epsilon's reads rightwards
    crowded = epsilon is not None and x(epsilon) - x(0.0) < 170
    zero_y = T - 28 if crowded else T - 10
    out.append(_line(x(0.0), zero_y + 4, x(0.0), bottom, _AXIS, stroke_width="1.5"))
    out.append(_text(x(0.0) + 4, zero_y, "0 (err >= 0)", "ref-label"))
    if epsilon is not None:
        out.append(_line(x(epsilon), T - 6, x(epsilon), bottom, _EPS, stroke_dasharray="6,4"))
        out.append(
            _text(
                x(epsilon) + (4 if crowded else -4),
                T - 10,
                f"epsilon = {num(epsilon)}",
                "ref-label",
                fill=_EPS,
                text_anchor="start" if crowded else "end",
            )
        )
    for k, r in enumerate(rows):
        y = T + row_h * k + row_h / 2
        colour = _ACCEPT if r.accept else _REJECT
        out.append(_text(L - 10, y + 4, f"output {r.output}", "tick y-tick", text_anchor="end"))
        out.append(_line(x(r.low), y, x(r.high), y, colour, stroke_width="3"))
        out.append(_line(x(r.certified), y - 8, x(r.certified), y + 8, _AXIS, stroke_width="2"))
        out.append(f'<circle cx="{x(r.estimate):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>')
    out.append(_line(L, bottom, W - R, bottom, _AXIS))
    out.append(_line(L, T - 6, L, bottom, _AXIS))
    out.append(
        _text(
            (L + W - R) / 2,
            H - 12,
            "err (mean squared error beyond the best linear datamodel, squared output units)",
            "axis-title x-title",
            text_anchor="middle",
        )
    )
    out.append(
        _text(
            18,
            T + plot_h / 2,
            "output",
            "axis-title y-title",
            text_anchor="middle",
            transform=f"rotate(-90 18 {T + plot_h / 2:.1f})",
        )
    )
    out.append("</svg>")
    return "".join(out)


_ESTIMATES_LEGEND = (
    "<div class='legend'>"
    f"<span><b style='color:{_ACCEPT}'>&#9679;</b> err_hat (the estimate; may fall below 0)"
    "</span> "
    f"<span><b style='color:{_ACCEPT}'>&#9473;</b> sampling interval, clipped at 0</span> "
    "<span><b>|</b> certified upper bound on err</span> "
    f"<span><b style='color:{_EPS}'>&#9478;</b> epsilon</span> "
    f"<span style='color:{_REJECT}'>red: output rejected</span></div>"
)


# -- spot checks -------------------------------------------------------------------------


def _decades(lo: float, hi: float) -> list[int]:
    """Decade exponents from ``lo`` to ``hi``, thinned to at most 8 labels."""
    first, last = math.floor(lo), math.ceil(hi)
    if last - first < 2:
        first, last = first - 1, last + 1
    every = max(1, math.ceil((last - first + 1) / 8))
    last += -(last - first) % every  # the top label at or above hi
    return list(range(first, last + 1, every))


def spot_check_summary(diffs: Sequence[float], tolerance: float | None) -> str:
    """``378 spot checks: 378 agree exactly (difference 0), ...`` for the plot's caption."""
    n = len(diffs)
    zero = sum(1 for d in diffs if d == 0.0)
    parts = [f"{num(n)} spot checks: {num(zero)} agree exactly (difference 0)"]
    if tolerance is not None:
        beyond = sum(1 for d in diffs if d > tolerance)
        parts.append(f"{num(n - zero - beyond)} differ by at most tau = {num(tolerance)}")
        parts.append(f"{num(beyond)} differ by more than tau")
    else:
        parts.append(f"{num(n - zero)} differ")
    return ", ".join(parts) + "."


def spot_checks_svg(diffs: Sequence[float], tolerance: float | None) -> str:
    """Worst output difference of each spot check on a log axis, against tau.

    Exact zeros (the Verifier's retraining reproduced the Prover's output bit
    for bit) cannot sit on a log axis: they get their own row, labelled 0,
    below a break.
    """
    if not diffs:
        return (
            "<p class='note'>No spot-check data: the unsigned details file "
            "(<code>REPORT.details.json</code>, written by <code>pacda-verifier audit</code> "
            "beside the report) is absent or holds none.</p>"
        )
    W, L, R, T, B = 900, 100, 30, 34, 64
    plot_h, zero_gap = 220, 34
    H = T + plot_h + zero_gap + B
    nonzero = [math.log10(d) for d in diffs if d > 0.0]
    anchors = [*nonzero]
    if tolerance:
        anchors.append(math.log10(tolerance))
    decades = _decades(min(anchors), max(anchors)) if anchors else [-1, 0, 1]
    y = _Axis(decades[0] - 0.2, decades[-1] + 0.2, T + plot_h, T)  # headroom for dots
    y_zero = float(T + plot_h + zero_gap)
    x_ticks = [t for t in nice_ticks(0, max(len(diffs) - 1, 1)) if t == int(t)]
    x = _Axis(x_ticks[0], x_ticks[-1], L, W - R)
    out = [_svg_open(W, H, "spot checks: Prover output minus Verifier retraining, log scale")]
    for d in decades:
        out.append(_line(L, y(d), W - R, y(d), "#e6e6e6"))
        out.append(_line(L - 5, y(d), L, y(d), _AXIS))
        out.append(_text(L - 9, y(d) + 4, f"1e{d}", "tick y-tick", text_anchor="end"))
    out.append(_line(L, y_zero, W - R, y_zero, "#e6e6e6"))
    out.append(_line(L - 5, y_zero, L, y_zero, _AXIS))
    out.append(_text(L - 9, y_zero + 4, "0", "tick y-tick", text_anchor="end"))
    # axis break between the log scale and the zero row
    yb = T + plot_h + zero_gap / 2
    out.append(_line(L - 7, yb + 2, L + 7, yb - 4, _AXIS))
    out.append(_line(L - 7, yb + 6, L + 7, yb, _AXIS))
    out.append(_text(L + 12, yb + 4, "axis break: exactly 0 below", "ref-label", fill=_MUTED))
    if tolerance:  # the line across the plot, its key above the plot (never under dots)
        yt = y(math.log10(tolerance))
        out.append(_line(L, yt, W - R, yt, _EPS, stroke_dasharray="6,4"))
        key = f"tau = {num(tolerance)} (tolerance)"
        out.append(_line(W - R - 200, T - 14, W - R - 176, T - 14, _EPS, stroke_dasharray="6,4"))
        out.append(_text(W - R - 170, T - 10, key, "ref-label", fill=_EPS))
    for t in x_ticks:
        out.append(_line(x(t), y_zero + 8, x(t), y_zero + 13, _AXIS))
        out.append(_text(x(t), y_zero + 27, num(int(t)), "tick x-tick", text_anchor="middle"))
    drawn: set[str] = set()  # thousands of spot checks: one dot per visible position
    for k, diff in enumerate(diffs):
        beyond = tolerance is not None and diff > tolerance
        cy = y_zero if diff == 0.0 else y(math.log10(diff))
        fill = _REJECT if beyond else "#036"
        cx = round(2 * x(k)) / 2  # half a pixel: dots 4.4 px wide overlap anyway
        dot = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{fill}"/>'
        if dot not in drawn:
            drawn.add(dot)
            out.append(dot)
    out.append(_line(L, T, L, y_zero + 8, _AXIS))
    out.append(_line(L, y_zero + 8, W - R, y_zero + 8, _AXIS))
    out.append(
        _text(
            (L + W - R) / 2,
            H - 12,
            "spot check (in point-index order)",
            "axis-title x-title",
            text_anchor="middle",
        )
    )
    mid = T + (plot_h + zero_gap) / 2
    out.append(
        _text(
            18,
            mid,
            "max over outputs |Prover - Verifier| (log)",
            "axis-title y-title",
            text_anchor="middle",
            transform=f"rotate(-90 18 {mid:.1f})",
        )
    )
    out.append("</svg>")
    return "".join(out)


# -- page --------------------------------------------------------------------------------


def _signature_banner(signature: str | None) -> str:
    if signature is None:
        return (
            "<div id='unverified' class='banner'>UNVERIFIED: the signature of this report "
            "was not checked; anyone could have written it. Render it with "
            "<code>pacda-verifier show --public-key KEY.pub</code> or check it with "
            "<code>pacda-verifier check-report</code>.</div>"
        )
    return f"<div id='verified' class='banner'>{_e(signature)}</div>"


def _kv(rows: Sequence[tuple[str, str]], *, raw: bool = False) -> str:
    cells = "".join(
        f"<tr><th scope='row'>{_e(k)}</th><td>{v if raw else _e(v)}</td></tr>" for k, v in rows
    )
    return f"<table class='kv'>{cells}</table>"


def _hex(value: str) -> str:
    return f"<code class='hex'>{_e(value)}</code>" if value else "<i>none</i>"


def _summary(report: AuditReport) -> str:
    plan = report.plan or {}
    rows: list[tuple[str, str]] = []
    eps = epsilon_text(report)
    if eps is not None:
        rows.append(("epsilon", eps))
        rows.append(("delta", num(get(plan, "delta"))))
    if report.certified_upper_bound is not None:
        rows.append(("certified upper bound on err", num(report.certified_upper_bound)))
    completeness = completeness_text(report)
    if completeness is not None:
        rows.append(("completeness", completeness))
    rows.append(("mode, planning", f"{report.mode}, {report.planning}"))
    devices = devices_text(report)
    if devices is not None:
        rows.append(("devices", devices))
    provenance = provenance_text(report)
    if provenance is not None:
        rows.append(("scores", provenance))
    parts = cost_parts(report)
    if parts:
        rows.append(("costs", ", ".join(parts)))
    return _kv(rows)


def _outputs_table(rows: Sequence[OutputRow]) -> str:
    if not rows:
        return ""
    head = (
        "<tr><th>output</th><th>verdict</th><th class='n'>err_hat</th>"
        "<th class='n'>interval (err &gt;= 0)</th><th class='n'>certified upper bound</th></tr>"
    )
    body = "".join(
        f"<tr><td>{r.output}</td>"
        f"<td class='{'accept' if r.accept else 'reject'}'>"
        f"{'accepted' if r.accept else 'rejected'}</td>"
        f"<td class='n'>{num(r.estimate)}</td><td class='n'>[{num(r.low)}, {num(r.high)}]</td>"
        f"<td class='n'>{num(r.certified)}</td></tr>"
        for r in rows
    )
    return f"<table id='outputs'>{head}{body}</table>"


def _budget(report: AuditReport) -> str:
    rows = budget_rows(report)
    if not rows:
        return "<p class='note'>No budget: the audit stopped before planning.</p>"
    eps = num(get(report.plan or {}, "epsilon"))
    body = "".join(
        f"<tr><td>{_e(b.name)}</td><td class='n'>{_e(b.value_text)}</td>"
        f"<td class='n'>{_e(b.share_text)}</td><td>{_e(b.note)}</td></tr>"
        for b in rows
    )
    return (
        f"<p>epsilon = {_e(eps)} is split into the room left for the estimate err_hat and the "
        "terms every certified upper bound charges; the parts add up to epsilon (values "
        "below 1e-9 of epsilon are floating-point round-off, shown as 0).</p>"
        "<table id='budget'><tr><th>part</th><th class='n'>value</th>"
        "<th class='n'>share of epsilon</th><th>what it covers</th></tr>"
        f"{body}</table>"
    )


_PLAN_FIELDS = (
    ("estimator", "estimator"),
    ("n_outputs", "outputs Z"),
    ("bound", "output bound b"),
    ("tolerance", "tolerance tau"),
    ("p", "inclusion probability p"),
    ("threshold", "err_hat threshold"),
    ("nodes", "nodes rho_j"),
    ("weights", "weights w_j"),
    ("pairs_per_node", "pairs per node"),
    ("prover_evaluations", "Prover evaluations"),
    ("spot_checks", "spot checks (at most)"),
    ("local_trainings", "Verifier local trainings"),
)


def _plan(report: AuditReport) -> str:
    plan = report.plan
    if not plan:
        return (
            "<p id='no-plan'><b>No plan was made:</b> the audit stopped before the Verifier "
            "planned its challenge (see the reason above), so nothing was committed to, no "
            "challenge was sent and nothing was estimated.</p>"
        )
    rows = []
    for key, label in _PLAN_FIELDS:
        if key not in plan:
            continue
        value = plan[key]
        text = ", ".join(num(v) for v in value) if isinstance(value, list) else num(value)
        rows.append((label, text))
    lead = "What the Verifier committed to before the challenge" + (
        " (the audit then aborted for the reason above)." if report.decision != "accept" else "."
    )
    return f"<p>{lead}</p>" + _kv(rows)


def _record(report: AuditReport) -> str:
    rows = [
        ("task digest", _hex(report.task_digest)),
        ("attribution digest", _hex(report.attribution_digest)),
        ("Merkle root", _hex(report.merkle_root)),
        ("challenge seed", _hex(report.challenge_seed)),
        ("Prover public key", _hex(report.prover_public_key)),
        ("Prover commitment signature", _hex(report.prover_commitment_signature)),
        ("Prover root signature", _hex(report.prover_root_signature)),
        ("created", _e(report.created_at)),
        ("versions", _e(f"{report.version}, pacda {report.pacda_version}")),
        ("soundness", _e(report.soundness_basis)),
    ]
    return _kv(rows, raw=True)


def render_html(
    report: AuditReport, spot_check_diffs: Sequence[float] = (), *, signature: str | None = None
) -> str:
    """A self-contained HTML page: verdict, plots, budget, plan and the signed record.

    Args:
        report: the report.
        spot_check_diffs: per spot check ``max_z |f_prover - f_own|`` (from the
            unsigned ``<report>.details.json`` the audit writes beside the report).
        signature: what the caller verified about the signature (shown in a
            green band); ``None``: nothing was verified, and a red UNVERIFIED
            banner heads the page.
    """
    plan = report.plan or {}
    eps = get(plan, "epsilon")
    diffs = [float(d) for d in spot_check_diffs]
    tol = get(plan, "tolerance")
    word = verdict_word(report)
    cls = "accept" if report.decision == "accept" else "reject"
    reason = (
        f"<p class='reason'><b>Reason</b> (as signed): {_e(report.reason)}</p>"
        if report.reason
        else ""
    )
    spot_caption = (
        f"<figcaption>{_e(spot_check_summary(diffs, tol))} Each dot is one spot check: the "
        "largest difference over the outputs between the Prover's signed result and the "
        "Verifier's own retraining of the same point. Differences above tau are red.</figcaption>"
        if diffs
        else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>pacda audit report: {word}</title><style>{_CSS}</style></head><body>"
        + _signature_banner(signature)
        + f"<h1>pacda audit: <span class='{cls}'>{word}</span></h1>"
        f"<p class='verdict' id='verdict'>{_e(verdict_sentence(report))}</p>"
        + reason
        + "<section id='summary'>"
        + _summary(report)
        + "</section><section id='estimates'><h2>Estimates per output</h2><figure>"
        + estimates_svg(output_rows(report), eps)
        + (_ESTIMATES_LEGEND if report.outputs else "")
        + "</figure>"
        + _outputs_table(output_rows(report))
        + "</section><section id='epsilon-budget'><h2>Where epsilon goes</h2>"
        + _budget(report)
        + "</section><section id='spot-checks'><h2>Spot-check agreement</h2><figure>"
        + (
            "<p class='note'>No spot checks: the audit ended before the Verifier retrained "
            "any point.</p>"
            if not diffs and (report.costs or {}).get("spot_checks") == 0
            else spot_checks_svg(diffs, tol)
        )
        + spot_caption
        + "</figure></section><section id='plan'><h2>Plan</h2>"
        + _plan(report)
        + "</section><section id='record'><h2>Signed record</h2>"
        + _record(report)
        + "</section>"
        # the plain-text rendering, for copying: the same words and numbers
        + "<details><summary>plain text (as printed by <code>pacda-verifier show</code>)"
        f"</summary><pre style='white-space:pre-wrap;overflow-wrap:anywhere'>"
        f"{_e(render_text(report))}</pre></details>"
        "</body></html>\n"
    )
