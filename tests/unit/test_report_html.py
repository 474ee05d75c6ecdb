"""``show --html`` at string level: axes, rounding, verdict, budget, plan, spot checks.

The same page in a real browser (layout at 1280 px, screenshots) is
tests/integration/test_report_html_browser.py (``make test-browser``).
"""

from __future__ import annotations

import dataclasses
import html
import re
from functools import cache
from typing import Any

import pytest

from protocol.plan import PlanRequest, make_plan
from protocol.report import SOUNDNESS_RIGOROUS, AuditReport, OutputResult, plan_summary
from verifier.render import render_html, render_text, verdict_sentence
from verifier.render_html import estimates_svg, nice_ticks, spot_check_summary, spot_checks_svg
from verifier.render_text import budget_rows, completeness_text, num, output_rows

#: A float in visible text: with a decimal point or an exponent (not inside hex or after a dot).
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+(?:e[-+]?\d+)?|e[-+]?\d+)(?![\w.])", re.IGNORECASE)


@cache
def _plan() -> dict[str, Any]:
    return plan_summary(make_plan(PlanRequest(epsilon=0.5, delta=0.1, bound=1.0, n_outputs=2)))


def _output(z: int, estimate: float, upper: float, *, accept: bool = True) -> OutputResult:
    return OutputResult(
        output=z,
        estimate=estimate,
        standard_error=0.002,
        interval_low=estimate - 0.0712345678,
        interval_high=estimate + 0.0712345678,
        certified_upper=upper,
        accept=accept,
        reason="" if accept else f"output {z}: estimated err too large",
    )


def _accepted() -> AuditReport:
    return AuditReport(
        pacda_version="0.1.0",
        created_at="2025-01-31T12:00:00Z",
        task_digest="sha256:" + "ab" * 32,
        attribution_digest="sha256:" + "cd" * 32,
        mode="committed",
        planning="rigorous",
        plan=_plan(),
        outputs=(_output(0, -0.0229612345, 0.2209123456), _output(1, 0.0790512345, 0.291512345)),
        certified_upper_bound=0.291512345,
        decision="accept",
        reason="",
        merkle_root="01" * 32,
        challenge_seed="02" * 32,
        prover_public_key="03" * 32,
        prover_commitment_signature="04" * 64,
        prover_root_signature="05" * 64,
        variance_verified=0.8075123456,
        epsilon_relative=0.5 / 0.8075123456,
        costs={
            "verifier_retrainings": 578,
            "prover_evaluations": 378,
            "bytes_received": 152738,
            "spot_checks": 378,
            "wall_seconds": 1.2923456,
        },
        soundness_basis=SOUNDNESS_RIGOROUS,
    )


def _aborted_before_planning(
    reason: str = "transport failure: <Prover> unreachable",
) -> AuditReport:
    return AuditReport(
        pacda_version="0.1.0",
        created_at="2025-01-31T12:00:00Z",
        task_digest="sha256:" + "ab" * 32,
        attribution_digest="",
        mode="committed",
        planning="practical",
        plan=None,
        outputs=(),
        certified_upper_bound=None,
        decision="abort",
        reason=reason,
        merkle_root="",
        challenge_seed="",
        prover_public_key="",
        prover_commitment_signature="",
        prover_root_signature="",
        variance_verified=None,
        epsilon_relative=None,
        costs={
            "verifier_retrainings": 0,
            "prover_evaluations": 0,
            "bytes_received": 0,
            "spot_checks": 0,
            "wall_seconds": 0.001,
        },
        soundness_basis="practical: variance-based; soundness rests on the adversarial suite",
    )


def _visible_text(page: str) -> str:
    """The page's text as a reader sees it: no tags, no style, no SVG attributes."""
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def _significant_digits(number: str) -> int:
    mantissa = number.lower().lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0.0, 0.3) == [0.0, 0.1, 0.2, 0.3]
    assert nice_ticks(-0.023, 0.3, target=8) == [-0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    ticks = nice_ticks(0, 377)
    assert ticks[0] == 0 and ticks[-1] >= 377 and all(t == int(t) for t in ticks)
    assert nice_ticks(2.0, 2.0)[0] <= 2.0 <= nice_ticks(2.0, 2.0)[-1]
    with pytest.raises(ValueError, match="finite range"):
        nice_ticks(0.0, float("inf"))


def test_the_page_states_the_verdict_in_one_sentence_and_rounds_every_number() -> None:
    report = _accepted()
    page = render_html(report, [0.0] * 5 + [3.796405077356795e-17], signature="signed by X")
    text = _visible_text(page)
    assert html.escape(verdict_sentence(report), quote=True) in page
    assert "with probability >= 0.9 over the Verifier's own randomness" in text
    assert "at most 0.2915 (the certified upper bound)" in text
    long = [n for n in NUMBER.findall(text) if _significant_digits(n) > 6]
    assert long == [], long
    assert "3.796405077356795e-17" not in page and "0.291512345" not in page
    assert "0.6192 x Var(f) = 0.8075" in text  # epsilon_relative and the verified variance


def test_err_intervals_are_clipped_at_zero_in_both_renderings() -> None:
    report = _accepted()
    rows = output_rows(report)
    assert [r.low for r in rows] == [0.0, pytest.approx(0.0790512345 - 0.0712345678)]
    page, text = render_html(report), render_text(report)
    assert "[0, 0.04827]" in page and "[0, 0.04827]" in text
    assert "-0.09" not in page  # the raw lower end -0.0942 never shows


def test_estimates_plot_has_labelled_axes_ticks_a_zero_line_and_epsilon() -> None:
    svg = estimates_svg(output_rows(_accepted()), 0.5)
    assert svg.count('class="axis-title x-title"') == 1
    assert "err (mean squared error beyond the best linear datamodel" in svg
    assert svg.count('class="axis-title y-title"') == 1
    ticks = re.findall(r'class="tick x-tick"[^>]*>([^<]+)<', svg)
    assert ticks == ["-0.1", "0", "0.1", "0.2", "0.3", "0.4", "0.5"], ticks
    assert re.findall(r'class="tick y-tick"[^>]*>([^<]+)<', svg) == ["output 0", "output 1"]
    assert "0 (err &gt;= 0)" in svg and "epsilon = 0.5" in svg
    assert 'viewBox="0 0 900 ' in svg


def test_spot_check_zeros_sit_on_a_labelled_zero_row_not_a_floor_band() -> None:
    diffs = [0.0] * 10
    svg = spot_checks_svg(diffs, 1e-12)
    y_labels = re.findall(r'class="tick y-tick"[^>]*>([^<]+)<', svg)
    assert y_labels[-1] == "0" and "1e-19" not in svg and "1e-18" not in svg
    assert "axis break: exactly 0 below" in svg and "tau = 1e-12 (tolerance)" in svg
    zero_row = re.search(r'class="tick y-tick" x="[\d.]+" y="([\d.]+)"[^>]*>0<', svg)
    assert zero_row is not None
    cys = {float(c) for c in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)}
    assert cys == {float(zero_row.group(1)) - 4}  # every exact zero on the 0 row
    assert "spot check (in point-index order)" in svg
    assert "max over outputs |Prover - Verifier| (log)" in svg
    assert spot_check_summary([0.0, 1e-16, 2e-12], 1e-12) == (
        "3 spot checks: 1 agree exactly (difference 0), 1 differ by at most tau = 1e-12, "
        "1 differ by more than tau."
    )


def test_spot_checks_beyond_tau_are_red_and_decades_are_labelled() -> None:
    svg = spot_checks_svg([1e-16, 1e-13, 5e-3], 1e-12)
    labels = re.findall(r'class="tick y-tick"[^>]*>([^<]+)<', svg)
    assert labels == ["1e-16", "1e-14", "1e-12", "1e-10", "1e-8", "1e-6", "1e-4", "1e-2", "0"]
    assert svg.count('fill="#b00"') == 1


def test_where_epsilon_goes_adds_up_and_both_renderings_show_it() -> None:
    report = _accepted()
    rows = budget_rows(report)
    assert rows[0].name == "err_hat threshold"
    assert sum(r.value for r in rows) == pytest.approx(0.5, abs=1e-9)
    assert sum(r.share for r in rows) == pytest.approx(1.0, abs=1e-9)
    page, text = render_html(report), render_text(report)
    assert "where epsilon = 0.5 goes (share of epsilon):" in text
    for r in rows:
        cells = f"<td>{html.escape(r.name)}</td><td class='n'>{r.value_text}</td>"
        assert cells in page, r
        assert html.escape(r.note, quote=True) in page and r.note in text
    completeness = completeness_text(report)
    assert completeness is not None
    radius = (report.plan or {}).get("completeness_radius")
    if radius is None:  # reports from before the plan recorded it: an upper bound
        assert completeness.startswith("completeness radius: at most ")
    else:
        assert completeness.startswith(f"completeness radius: {num(float(radius))}.")
    assert html.escape(completeness, quote=True) in page and completeness in text


def test_a_recorded_completeness_radius_is_shown_as_such() -> None:
    report = _accepted()
    plan = {**_plan(), "completeness_radius": 0.1234567}
    object.__setattr__(report, "plan", plan)  # a future report format that records it
    assert completeness_text(report) == (
        "completeness radius: 0.1235. Honest scores with err up to it pass with probability >= 0.9."
    )


def test_an_abort_before_planning_says_no_plan_was_made() -> None:
    report = _aborted_before_planning()
    page = render_html(report)
    plan = page.split("<section id='plan'>")[1].split("</section>")[0]
    assert "No plan was made:" in plan and "<table" not in plan
    assert "&lt;Prover&gt; unreachable" in page and "<Prover>" not in page
    assert "No estimates: the audit stopped before the decision." in page
    assert "No budget: the audit stopped before planning." in page
    assert "No spot checks: the audit ended before the Verifier retrained any point." in page
    # spot checks were run, but the details file with their differences is missing
    assert "No spot-check data: the unsigned details file" in render_html(_accepted())
    assert "plan: none (the audit stopped before planning)" in render_text(report)


def test_an_abort_after_planning_shows_the_plan_it_committed_to() -> None:
    report = dataclasses.replace(
        _accepted(),
        decision="abort",
        reason="output 1: estimated err too large",
        outputs=(_output(0, 0.01, 0.2), _output(1, 0.4, 0.6, accept=False)),
        certified_upper_bound=0.6,
    )
    page = render_html(report)
    plan = page.split("<section id='plan'>")[1].split("</section>")[0]
    assert "the audit then aborted for the reason above" in plan
    assert "<th scope='row'>pairs per node</th>" in plan
    assert "class='reject'>rejected<" in page and "output 1: estimated err too large" in page


def test_the_page_is_self_contained_and_wraps_long_strings() -> None:
    page = render_html(_accepted(), [0.0, 1e-15])
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * 2
    assert "overflow-wrap:anywhere" in page and "word-break:break-all" in page
    assert "<code class='hex'>" + "05" * 64 + "</code>" in page
    assert page.count("<svg") == 2 and "svg{display:block;width:100%" in page


def test_the_unverified_banner_heads_an_unchecked_page() -> None:
    page = render_html(_accepted())
    assert page.index("id='unverified'") < page.index("<h1>")
    assert "id='verified'" not in page
    assert "id='verified'" in render_html(_accepted(), signature="signed by ed25519:ab")


def test_num_is_the_one_rounding() -> None:
    assert num(3.796405077356795e-17) == "3.796e-17"
    assert num(6.0) == "6" and num(152738) == "152,738" and num(0.05) == "0.05"
    assert num(None) == "None" and num("lp") == "lp"


def test_reference_labels_stay_apart_when_epsilon_is_close_to_zero_on_the_axis() -> None:
    far = [dataclasses.replace(r, estimate=5.0, low=4.5, high=5.5, certified=6.0, accept=False)
           for r in output_rows(_accepted())]  # fmt: skip
    for rows, crowded in ((output_rows(_accepted()), False), (far, True)):
        svg = estimates_svg(rows, 0.3)
        zero = re.search(r'y="([\d.]+)"[^>]*>0 \(err &gt;= 0\)<', svg)
        eps = re.search(r'y="([\d.]+)"[^>]*>epsilon = 0.3<', svg)
        assert zero is not None and eps is not None
        assert (zero.group(1) != eps.group(1)) is crowded


def test_thousands_of_spot_checks_draw_one_dot_per_position() -> None:
    svg = spot_checks_svg([0.0] * 20000, 1e-12)
    assert 0 < svg.count("<circle") <= 2 * 900  # half-pixel positions on 900 px
    assert "20,000" in svg  # the last x tick


def test_devices_and_declared_provenance_are_shown_in_both_renderings() -> None:
    report = dataclasses.replace(
        _accepted(),
        devices={"prover": "cuda", "prover_name": "cuda:0 NVIDIA H200", "verifier": "cpu",
                 "verifier_name": "cpu"},
        scores_provenance={
            "method": "imported-trak",
            "calibration": {"tool": "trak", "source": "import-scores", "samples": 300,
                            "seed": 7, "scale": [0.91234567, 1.1], "intercept": [0.0, 0.0],
                            "r2": [0.8123456, 0.9]},
        },
    )  # fmt: skip
    text, page = render_text(report), render_html(report)
    devices = "Prover cuda (cuda:0 NVIDIA H200), Verifier cpu"
    provenance = (
        "method imported-trak (declared by the Prover, not verified); calibrated by "
        "import-scores on 300 retrainings, seed 7, scale 0.9123 to 1.1, intercept 0, "
        "R^2 0.8123 to 0.9"
    )
    assert f"devices: {devices}" in text and f"scores: {provenance}" in text
    assert html.escape(devices) in page and html.escape(provenance) in page
    assert "devices:" not in render_text(_accepted())
