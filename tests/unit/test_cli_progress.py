"""The Verifier CLI's progress lines: an ETA per stage, and never silent off a terminal."""

from __future__ import annotations

import io

from verifier.cli.progress import ProgressDisplay


class Clock:
    """A settable clock, so the test needs no sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_line_every_interval_with_an_eta() -> None:
    out, clock = io.StringIO(), Clock()
    show = ProgressDisplay(out, interval_s=10.0, clock=clock)
    show("results", 0, 1000)  # stage start
    clock.now += 5.0
    show("results", 100, 1000)  # within the interval: no line
    clock.now += 5.0
    show("results", 200, 1000)  # 10 s in, 200 done: 40 s to go
    clock.now += 30.0
    show("results", 1000, 1000)  # finished
    show("spot checks", 0, 50)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].endswith("results 0/1,000")
    assert lines[1].endswith("results 200/1,000 (ETA 40s)")
    assert lines[2].endswith("results 1,000/1,000")  # no ETA once done
    assert lines[3].endswith("spot checks 0/50")
    assert lines[1].startswith("[   10.0s]")


def test_long_etas_read_as_minutes_and_hours() -> None:
    out, clock = io.StringIO(), Clock()
    show = ProgressDisplay(out, interval_s=1.0, clock=clock)
    show("pilot", 0, 100)
    clock.now += 65.0
    show("pilot", 50, 100)  # 65 s for half: 1m05s to go
    clock.now += 3600.0
    show("pilot", 51, 100)  # 3665 s for 51: 3665 x 49 / 51 = 3521 s to go
    text = out.getvalue()
    assert "(ETA 1m05s)" in text
    assert "(ETA 58m41s)" in text


def test_disabled_writes_nothing() -> None:
    out = io.StringIO()
    show = ProgressDisplay(out, enabled=False)
    show("results", 1, 2)
    show.close()
    assert out.getvalue() == ""
