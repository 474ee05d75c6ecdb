"""Ctrl-C that always ends the process: one line on stderr, exit 130, within a bound.

A command's ``except KeyboardInterrupt`` prints its line and returns 130 after
its ``finally`` blocks have closed the store and the executor.  An interrupt
that lands inside a store write or a worker pool's wait can leave that cleanup,
or the interpreter's wait for its threads at exit, blocked.  :func:`bounded`
therefore arms a watchdog at the first SIGINT: if the process is still alive
``grace_s`` seconds later it prints the command's line (unless already printed)
and leaves with ``os._exit(130)``.  A second Ctrl-C leaves at once.  Nothing
is lost by leaving early: the result store is crash-safe (a killed run keeps
every model it committed, docs/store.md).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_INTERRUPTED", "Interrupt", "bounded"]

#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


class Interrupt:
    """The line to print once, by whichever comes first: the command or the watchdog."""

    def __init__(self, line: str) -> None:
        self.line = line
        self._lock = threading.Lock()
        self._said = False

    def say(self) -> None:
        """Print the line on stderr (once)."""
        with self._lock:
            if self._said:
                return
            self._said = True
        print(self.line, file=sys.stderr, flush=True)

    def leave(self) -> None:
        """Print the line if needed and end the process now, with status 130."""
        self.say()
        os._exit(EXIT_INTERRUPTED)


@contextmanager
def bounded(interrupt: Interrupt, grace_s: float = 20.0) -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt as usual, and arms a ``grace_s`` watchdog.

    Only in the main thread (elsewhere signal handlers cannot be set), and not
    when SIGINT is ignored (a background job, ``nohup``): then nothing changes.
    The previous handler is restored on exit.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield
        return
    armed: list[threading.Timer] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if armed:  # a second Ctrl-C: leave now
            interrupt.leave()
        timer = threading.Timer(grace_s, interrupt.leave)
        timer.daemon = True
        timer.start()
        armed.append(timer)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
