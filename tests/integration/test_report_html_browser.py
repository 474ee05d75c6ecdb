"""``pacda-verifier show --html`` in a real browser: headless Chromium at 1280 px wide.

Real reports (an accepted audit, an audit that aborts after planning, one that
aborts before planning) from real ``pacda-prover serve`` / ``pacda-verifier
audit`` processes, rendered by the real ``show --html`` CLI, then opened in
Debian's Chromium:

* a screenshot at 1280 x 2000 must be a non-blank PNG;
* a copy of the page with a small script appended writes layout facts
  (document width, axis titles and tick labels, the visible text, elements
  that stick out of the window) into the DOM, read back with ``--dump-dom``.

Marked ``browser`` (not in the default run): ``make test-browser`` installs
Chromium when missing and runs it.  Set ``PACDA_SCREENSHOT_DIR`` to keep the
screenshots.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protocol.report import AuditReport, verify_report
from protocol.signing import load_public_key
from tests.integration._cli import installed
from tests.integration.test_audit_real import SYNTHETIC, ProverProcess, write_scores
from verifier.render import verdict_sentence

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1280

#: Flags for a hermetic headless run: no sandbox (root in a container), no GPU,
#: nothing fetched from the network, a fresh profile per run.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Appended to a copy of the page: what the browser laid out, as JSON in <pre id="facts">.
PROBE = """<script>
(function () {
  var doc = document.documentElement, body = document.body;
  var texts = function (sel) {
    return Array.prototype.map.call(document.querySelectorAll(sel), function (e) {
      return e.textContent;
    });
  };
  var sticking = [];
  Array.prototype.forEach.call(document.querySelectorAll("body *"), function (e) {
    var r = e.getBoundingClientRect();
    if (r.width > 0 && (r.right > doc.clientWidth + 0.5 || r.left < -0.5)) {
      sticking.push(e.tagName + " " + (e.getAttribute("class") || "") + " " + r.right);
    }
  });
  var section = function (id) {
    var e = document.getElementById(id);
    return e ? e.innerText : null;
  };
  var facts = {
    innerWidth: window.innerWidth,
    clientWidth: doc.clientWidth,
    scrollWidth: doc.scrollWidth,
    bodyScrollWidth: body.scrollWidth,
    sticking: sticking.slice(0, 20),
    axisTitles: texts("svg .axis-title"),
    xTicks: texts("#estimates svg .x-tick"),
    yTicks: texts("#estimates svg .y-tick"),
    spotYTicks: texts("#spot-checks svg .y-tick"),
    svgWidths: Array.prototype.map.call(document.querySelectorAll("svg"), function (s) {
      return s.getBoundingClientRect().width;
    }),
    verdict: section("verdict"),
    plan: section("plan"),
    budget: section("epsilon-budget"),
    summary: section("summary"),
    text: body.innerText
  };
  var pre = document.createElement("pre");
  pre.id = "facts";
  pre.textContent = JSON.stringify(facts);
  body.appendChild(pre);
})();
</script>"""

#: A float in visible text: a decimal point or an exponent (hex digests never match).
FLOAT = re.compile(r"(?<![\w.])-?\d+(?:\.\d+(?:e[-+]?\d+)?|e[-+]?\d+)(?![\w.])", re.IGNORECASE)


def _significant_digits(number: str) -> int:
    return len(number.lower().lstrip("-").split("e")[0].replace(".", "").lstrip("0"))


@dataclass(frozen=True)
class Rendered:
    """A report rendered by ``show --html`` and what Chromium made of it."""

    report: AuditReport
    page: Path
    screenshot: Path
    facts: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is absent: run `make test-browser` (installs Debian's chromium "
            "with apt-get, then runs these tests)"
        )
    return CHROMIUM


def _browser(chromium: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(chromium), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _render(chromium: Path, report: Path, pub: Path, work: Path) -> Rendered:
    page = report.with_suffix(".html")
    shown = subprocess.run(
        [installed("pacda-verifier"), "show", str(report), "--public-key", str(pub),
         "--html", str(page)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    start = time.monotonic()
    shot = report.with_suffix(".png")
    _browser(
        chromium, work / f"profile-{report.stem}-shot",
        f"--screenshot={shot}", f"--window-size={WIDTH},2000", page.as_uri(),
    )  # fmt: skip
    probed = page.with_name(page.stem + "-probe.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dumped = _browser(
        chromium, work / f"profile-{report.stem}-dom",
        "--dump-dom", f"--window-size={WIDTH},2000", probed.as_uri(),
    )  # fmt: skip
    match = re.search(r'<pre id="facts">(.*?)</pre>', dumped.stdout, re.S)
    assert match is not None, dumped.stdout[-2000:]
    facts = json.loads(html.unescape(match.group(1)))
    keep = os.environ.get("PACDA_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    return Rendered(
        verify_report(report.read_bytes(), load_public_key(pub)),
        page,
        shot,
        facts,
        time.monotonic() - start,
    )


def _audit(report: Path, work: Path, prover: str, *extra: str) -> int:
    done = subprocess.run(
        [installed("pacda-verifier"), "audit", "--prover", prover, "--task", str(SYNTHETIC),
         "--epsilon", "0.3", "--delta", "0.05", "--key", str(work / "v.key"),
         "--report", str(report), *extra],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PACDA_HOME": str(work), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert report.exists(), done.stdout + done.stderr
    return done.returncode


@pytest.fixture(scope="module")
def rendered(
    chromium: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Rendered]]:
    """``accept``, ``abort`` (after planning) and ``unplanned`` (abort before planning)."""
    work = tmp_path_factory.mktemp("browser")
    keys = subprocess.run(
        [installed("pacda-verifier"), "keygen", "--out", str(work / "v")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert keys.returncode == 0, keys.stderr
    codes = {}
    # zero scores: err = 0.75 per output (exact), far above epsilon = 0.3
    for name, scale in (("accept", 1.0), ("abort", 0.0)):
        server = ProverProcess(SYNTHETIC, write_scores(work / f"{name}.npz", scale))
        try:
            codes[name] = _audit(work / f"{name}.json", work, server.address)
        finally:
            server.stop()
    # Port 1 on localhost: nothing listens, the audit aborts before it plans (exit 3).
    codes["unplanned"] = _audit(work / "unplanned.json", work, "127.0.0.1:1", "--timeout", "5")
    assert codes == {"accept": 0, "abort": 1, "unplanned": 3}
    yield {name: _render(chromium, work / f"{name}.json", work / "v.pub", work) for name in codes}


NAMES = ("accept", "abort", "unplanned")


@pytest.mark.parametrize("name", NAMES)
def test_the_screenshot_is_a_non_blank_png(rendered: dict[str, Rendered], name: str) -> None:
    from PIL import Image

    shot = rendered[name].screenshot
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(shot) as image:
        assert image.size == (WIDTH, 2000)
        grey = image.convert("L")
        histogram = grey.histogram()
        inked = sum(histogram[:200]) / (WIDTH * 2000)
        assert inked > 0.01, f"{name}: only {inked:.2%} of the page is drawn"
        rgb = image.convert("RGB")
        banner = sum(
            1
            for x in range(0, WIDTH, 4)
            for y in range(0, 120, 4)
            if rgb.getpixel((x, y)) == (0, 119, 0)  # the green "signature verified" band
        )
        assert banner > 100, f"{name}: no verified-signature banner at the top"
    assert rendered[name].seconds < 60


@pytest.mark.parametrize("name", NAMES)
def test_nothing_overflows_1280_px(rendered: dict[str, Rendered], name: str) -> None:
    facts = rendered[name].facts
    assert facts["innerWidth"] == WIDTH
    # clientWidth: the window less a vertical scroll bar, if any
    assert WIDTH - 20 <= facts["clientWidth"] <= WIDTH, facts
    assert facts["scrollWidth"] == facts["clientWidth"], facts  # no horizontal overflow
    assert facts["bodyScrollWidth"] <= facts["clientWidth"], facts
    assert facts["sticking"] == [], facts["sticking"]
    assert all(0 < w <= facts["clientWidth"] for w in facts["svgWidths"])


@pytest.mark.parametrize("name", NAMES)
def test_visible_numbers_are_rounded_and_the_verdict_is_one_sentence(
    rendered: dict[str, Rendered], name: str
) -> None:
    r = rendered[name]
    text = str(r.facts["text"])
    raw = [n for n in FLOAT.findall(text) if _significant_digits(n) > 6]
    assert raw == [], raw
    assert r.facts["verdict"] == verdict_sentence(r.report)


def test_the_accepted_report_has_labelled_axes_zero_line_budget_and_radius(
    rendered: dict[str, Rendered],
) -> None:
    facts = rendered["accept"].facts
    assert facts["axisTitles"] == [
        "err (mean squared error beyond the best linear datamodel, squared output units)",
        "output",
        "spot check (in point-index order)",
        "max over outputs |Prover - Verifier| (log)",
    ]
    x_ticks = facts["xTicks"]
    assert isinstance(x_ticks, list) and "0" in x_ticks and len(x_ticks) >= 4, x_ticks
    assert facts["yTicks"] == ["output 0", "output 1"]
    spot = facts["spotYTicks"]
    assert isinstance(spot, list) and spot[-1] == "0" and "1e-12" in spot, spot
    text = str(facts["text"])
    assert "0 (err >= 0)" in text and "epsilon = 0.3" in text
    assert "ACCEPT certifies that, with probability >= 0.95" in str(facts["verdict"])
    budget = str(facts["budget"])
    assert "err_hat threshold" in budget and "sampling (Prover)" in budget and "%" in budget
    assert "completeness radius" in str(facts["summary"])
    assert "agree exactly (difference 0)" in text


def test_the_plan_section_is_never_empty_on_abort(rendered: dict[str, Rendered]) -> None:
    planned = str(rendered["abort"].facts["plan"])
    assert "the audit then aborted for the reason above" in planned
    assert "pairs per node" in planned and "Prover evaluations" in planned
    unplanned = str(rendered["unplanned"].facts["plan"])
    assert "No plan was made:" in unplanned
    assert rendered["unplanned"].report.plan is None
    assert "The scores are not certified" in str(rendered["unplanned"].facts["verdict"])
