"""The two inline SVG plots of the HTML report: estimates per output and spot checks.

Private to :mod:`verifier.render_html`, which re-exports :func:`estimates_svg`,
:func:`spot_checks_svg` and :func:`spot_check_summary` (the plots are
described in its module docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from verifier._svg import (
    ACCEPT,
    AXIS,
    EPS,
    MUTED,
    REJECT,
    Axis,
    decades,
    line,
    nice_ticks,
    svg_open,
    text,
)
from verifier.render_text import OutputRow, num

__all__ = ["ESTIMATES_LEGEND", "estimates_svg", "spot_check_summary", "spot_checks_svg"]

#: Width, left and right margins of both plots (pixels of the viewBox).
W, L, R = 900, 100, 30

# -- estimates ---------------------------------------------------------------------------


def estimates_svg(rows: Sequence[OutputRow], epsilon: float | None) -> str:
    """Per-output err_hat, interval (clipped at 0) and certified bound; lines at 0 and epsilon.

    The x axis is err in squared output units, with round ticks, a title, a
    zero line and a dashed line at epsilon (every certified bound of an
    accepted output lies below it).  The y axis names each output.
    """
    if not rows:
        return "<p class='note'>No estimates: the audit stopped before the decision.</p>"
    T, row_h = 50, 30
    plot_h = row_h * len(rows)
    H = T + plot_h + 62
    values = [v for r in rows for v in (r.estimate, r.low, r.high, r.certified)]
    if epsilon is not None:
        values.append(epsilon)
    ticks = nice_ticks(min(0.0, *values), max(values), target=8)
    x = Axis(ticks[0], ticks[-1], L, W - R)
    bottom = T + plot_h
    out = [svg_open(W, H, "err per output: estimate, interval, certified upper bound")]
    for t in ticks:  # grid and tick labels
        out.append(line(x(t), T, x(t), bottom, "#e6e6e6"))
        out.append(line(x(t), bottom, x(t), bottom + 5, AXIS))
        out.append(text(x(t), bottom + 19, num(t), "tick x-tick", text_anchor="middle"))
    out.extend(_reference_lines(x, epsilon, T, bottom))
    for k, r in enumerate(rows):
        out.extend(_estimate_row(r, x, T + row_h * k + row_h / 2))
    out.append(line(L, bottom, W - R, bottom, AXIS))
    out.append(line(L, T - 6, L, bottom, AXIS))
    out.extend(
        _axis_titles(
            H,
            "err (mean squared error beyond the best linear datamodel, squared output units)",
            T + plot_h / 2,
            "output",
        )
    )
    out.append("</svg>")
    return "".join(out)


def _reference_lines(x: Axis, epsilon: float | None, top: float, bottom: float) -> list[str]:
    """The zero line and the dashed epsilon line, with their labels above the plot.

    The two labels share the line above the plot unless epsilon sits close to 0
    on this scale; then the zero label moves up a line and epsilon's reads rightwards.
    """
    crowded = epsilon is not None and x(epsilon) - x(0.0) < 170
    zero_y = top - 28 if crowded else top - 10
    out = [
        line(x(0.0), zero_y + 4, x(0.0), bottom, AXIS, stroke_width="1.5"),
        text(x(0.0) + 4, zero_y, "0 (err >= 0)", "ref-label"),
    ]
    if epsilon is not None:
        out.append(line(x(epsilon), top - 6, x(epsilon), bottom, EPS, stroke_dasharray="6,4"))
        out.append(
            text(
                x(epsilon) + (4 if crowded else -4),
                top - 10,
                f"epsilon = {num(epsilon)}",
                "ref-label",
                fill=EPS,
                text_anchor="start" if crowded else "end",
            )
        )
    return out


def _estimate_row(r: OutputRow, x: Axis, y: float) -> list[str]:
    """One output's label, interval bar, certified-bound tick and estimate dot at height ``y``."""
    colour = ACCEPT if r.accept else REJECT
    return [
        text(L - 10, y + 4, f"output {r.output}", "tick y-tick", text_anchor="end"),
        line(x(r.low), y, x(r.high), y, colour, stroke_width="3"),
        line(x(r.certified), y - 8, x(r.certified), y + 8, AXIS, stroke_width="2"),
        f'<circle cx="{x(r.estimate):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>',
    ]


def _axis_titles(height: float, x_title: str, y_mid: float, y_title: str) -> list[str]:
    """The x-axis title along the bottom and the rotated y-axis title centred at ``y_mid``."""
    return [
        text((L + W - R) / 2, height - 12, x_title, "axis-title x-title", text_anchor="middle"),
        text(
            18,
            y_mid,
            y_title,
            "axis-title y-title",
            text_anchor="middle",
            transform=f"rotate(-90 18 {y_mid:.1f})",
        ),
    ]


ESTIMATES_LEGEND = (
    "<div class='legend'>"
    f"<span><b style='color:{ACCEPT}'>&#9679;</b> err_hat (the estimate; may fall below 0)"
    "</span> "
    f"<span><b style='color:{ACCEPT}'>&#9473;</b> sampling interval, clipped at 0</span> "
    "<span><b>|</b> certified upper bound on err</span> "
    f"<span><b style='color:{EPS}'>&#9478;</b> epsilon</span> "
    f"<span style='color:{REJECT}'>red: output rejected</span></div>"
)


# -- spot checks -------------------------------------------------------------------------


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
    T, B = 34, 64
    plot_h, zero_gap = 220, 34
    H = T + plot_h + zero_gap + B
    anchors = [math.log10(d) for d in diffs if d > 0.0]
    if tolerance:
        anchors.append(math.log10(tolerance))
    exps = decades(min(anchors), max(anchors)) if anchors else [-1, 0, 1]
    y = Axis(exps[0] - 0.2, exps[-1] + 0.2, T + plot_h, T)  # headroom for dots
    y_zero = float(T + plot_h + zero_gap)
    x_ticks = [t for t in nice_ticks(0, max(len(diffs) - 1, 1)) if t == int(t)]
    x = Axis(x_ticks[0], x_ticks[-1], L, W - R)
    out = [svg_open(W, H, "spot checks: Prover output minus Verifier retraining, log scale")]
    out.extend(_log_axis(exps, y, y_zero, T + plot_h + zero_gap / 2))
    if tolerance:  # the line across the plot, its key above the plot (never under dots)
        out.extend(_tolerance_line(tolerance, y, T))
    for t in x_ticks:
        out.append(line(x(t), y_zero + 8, x(t), y_zero + 13, AXIS))
        out.append(text(x(t), y_zero + 27, num(int(t)), "tick x-tick", text_anchor="middle"))
    out.extend(_spot_dots(diffs, tolerance, x, y, y_zero))
    out.append(line(L, T, L, y_zero + 8, AXIS))
    out.append(line(L, y_zero + 8, W - R, y_zero + 8, AXIS))
    out.extend(
        _axis_titles(
            H,
            "spot check (in point-index order)",
            T + (plot_h + zero_gap) / 2,
            "max over outputs |Prover - Verifier| (log)",
        )
    )
    out.append("</svg>")
    return "".join(out)


def _log_axis(exps: Sequence[int], y: Axis, y_zero: float, y_break: float) -> list[str]:
    """Decade grid lines and labels, the row of exact zeros, and the axis break between."""
    out: list[str] = []
    for d in exps:
        out.append(line(L, y(d), W - R, y(d), "#e6e6e6"))
        out.append(line(L - 5, y(d), L, y(d), AXIS))
        out.append(text(L - 9, y(d) + 4, f"1e{d}", "tick y-tick", text_anchor="end"))
    out.append(line(L, y_zero, W - R, y_zero, "#e6e6e6"))
    out.append(line(L - 5, y_zero, L, y_zero, AXIS))
    out.append(text(L - 9, y_zero + 4, "0", "tick y-tick", text_anchor="end"))
    # axis break between the log scale and the zero row
    out.append(line(L - 7, y_break + 2, L + 7, y_break - 4, AXIS))
    out.append(line(L - 7, y_break + 6, L + 7, y_break, AXIS))
    out.append(text(L + 12, y_break + 4, "axis break: exactly 0 below", "ref-label", fill=MUTED))
    return out


def _tolerance_line(tolerance: float, y: Axis, top: float) -> list[str]:
    """The dashed line at tau across the plot and its key above the plot."""
    yt = y(math.log10(tolerance))
    key = f"tau = {num(tolerance)} (tolerance)"
    return [
        line(L, yt, W - R, yt, EPS, stroke_dasharray="6,4"),
        line(W - R - 200, top - 14, W - R - 176, top - 14, EPS, stroke_dasharray="6,4"),
        text(W - R - 170, top - 10, key, "ref-label", fill=EPS),
    ]


def _spot_dots(
    diffs: Sequence[float], tolerance: float | None, x: Axis, y: Axis, y_zero: float
) -> list[str]:
    """One dot per spot check (red beyond tau), each visible position drawn once."""
    out: list[str] = []
    drawn: set[str] = set()  # thousands of spot checks: one dot per visible position
    for k, diff in enumerate(diffs):
        beyond = tolerance is not None and diff > tolerance
        cy = y_zero if diff == 0.0 else y(math.log10(diff))
        fill = REJECT if beyond else "#036"
        cx = round(2 * x(k)) / 2  # half a pixel: dots 4.4 px wide overlap anyway
        dot = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{fill}"/>'
        if dot not in drawn:
            drawn.add(dot)
            out.append(dot)
    return out
