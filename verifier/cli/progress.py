"""A small stderr progress display for the Verifier CLI (no dependencies)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressDisplay"]

#: Off a terminal, a line at least this often (seconds) while a stage is running.
LOG_INTERVAL_S = 10.0


class ProgressDisplay:
    """``progress(stage, done, total)`` callback with the stage's ETA.

    On a tty: one updating line per stage.  Otherwise (a log file, CI): one line
    when a stage starts, one every ``interval_s`` seconds while it runs, and one
    when it finishes, so a long audit is never silent.  The ETA extrapolates the
    stage's own rate so far: ``elapsed * (total - done) / done``.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool = True,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self.clock = clock
        self.stage = ""
        self.t0 = clock()
        self.stage_t0 = self.t0
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        new = stage != self.stage
        if new and self.tty and self.stage:
            self.stream.write("\n")
        if new:
            self.stage, self.stage_t0 = stage, now
        finished = total > 0 and done >= total
        every = 0.2 if self.tty else self.interval_s
        if not (new or finished or now - self.last >= every):
            return
        self.last = now
        line = f"[{now - self.t0:7.1f}s] {stage}"
        if total:
            line += f" {done:,d}/{total:,d}"
            if 0 < done < total:
                eta = (now - self.stage_t0) * (total - done) / done
                line += f" (ETA {_duration(eta)})"
        self.stream.write("\r" + line if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.stage:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
