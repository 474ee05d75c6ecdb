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

from collections.abc import Sequence

from protocol.report import AuditReport
from verifier._plots import ESTIMATES_LEGEND as _ESTIMATES_LEGEND
from verifier._plots import estimates_svg, spot_check_summary, spot_checks_svg
from verifier._svg import escape as _e
from verifier._svg import nice_ticks
from verifier.render_text import (
    OutputRow,
    budget_rows,
    completeness_text,
    cost_parts,
    delta_text,
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

__all__ = [
    "estimates_svg",
    "nice_ticks",
    "render_html",
    "spot_check_summary",
    "spot_checks_svg",
]

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
    rows: list[tuple[str, str]] = []
    eps = epsilon_text(report)
    if eps is not None:
        rows.append(("epsilon", eps))
        rows.append(("delta", delta_text(report) or ""))
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
    word = verdict_word(report)
    cls = "accept" if report.decision == "accept" else "reject"
    return (
        _head(word)
        + _signature_banner(signature)
        + f"<h1>pacda audit: <span class='{cls}'>{word}</span></h1>"
        f"<p class='verdict' id='verdict'>{_e(verdict_sentence(report))}</p>"
        + _reason(report)
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
        + _spot_check_figure(report, diffs, get(plan, "tolerance"))
        + "</figure></section><section id='plan'><h2>Plan</h2>"
        + _plan(report)
        + "</section><section id='record'><h2>Signed record</h2>"
        + _record(report)
        + "</section>"
        + _plain_text(report)
        + "</body></html>\n"
    )


def _head(word: str) -> str:
    """From the doctype to ``<body>``: the title names the verdict; the CSS is inline."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>pacda audit report: {word}</title><style>{_CSS}</style></head><body>"
    )


def _reason(report: AuditReport) -> str:
    """The signed reason of a report that has one, else nothing."""
    return (
        f"<p class='reason'><b>Reason</b> (as signed): {_e(report.reason)}</p>"
        if report.reason
        else ""
    )


def _spot_check_figure(report: AuditReport, diffs: Sequence[float], tol: float | None) -> str:
    """The spot-check plot (or why there is none) and, with data, its caption."""
    caption = (
        f"<figcaption>{_e(spot_check_summary(diffs, tol))} Each dot is one spot check: the "
        "largest difference over the outputs between the Prover's signed result and the "
        "Verifier's own retraining of the same point. Differences above tau are red.</figcaption>"
        if diffs
        else ""
    )
    plot = (
        "<p class='note'>No spot checks: the audit ended before the Verifier retrained "
        "any point.</p>"
        if not diffs and (report.costs or {}).get("spot_checks") == 0
        else spot_checks_svg(diffs, tol)
    )
    return plot + caption


def _plain_text(report: AuditReport) -> str:
    """The plain-text rendering, for copying: the same words and numbers, folded away."""
    return (
        "<details><summary>plain text (as printed by <code>pacda-verifier show</code>)"
        f"</summary><pre style='white-space:pre-wrap;overflow-wrap:anywhere'>"
        f"{_e(render_text(report))}</pre></details>"
    )
