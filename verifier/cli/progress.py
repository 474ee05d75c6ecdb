"""A small stderr progress display for the Verifier CLI (no dependencies)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """``progress(stage, done, total)`` callback: one updating line per stage on a tty,
    one line per stage (and its completion) otherwise.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.stage = ""
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        new = stage != self.stage
        if new and self.tty and self.stage:
            self.stream.write("\n")
        if new:
            self.stage = stage
        finished = total > 0 and done >= total
        if not (new or finished or (self.tty and now - self.last > 0.2)):
            return
        self.last = now
        count = f" {done:,d}/{total:,d}" if total else ""
        line = f"[{now - self.t0:7.1f}s] {stage}{count}"
        if self.tty:
            self.stream.write("\r" + line)
        elif new or finished:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.stage:
            self.stream.write("\n")
            self.stream.flush()
