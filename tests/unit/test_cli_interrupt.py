"""Ctrl-C always ends a Prover command (:mod:`prover.cli._interrupt`), in a real subprocess.

A cleanup that blocks forever after the interrupt (as a store write cut off
mid-way could) no longer keeps the process alive: the watchdog prints the
command's line once and exits 130 after its grace period.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.integration._cli import sigint_default

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from prover.cli._interrupt import EXIT_INTERRUPTED, Interrupt, bounded

    interrupt = Interrupt("cmd: interrupted")
    hang = sys.argv[1] == "hang"
    with bounded(interrupt, grace_s=1.0):
        try:
            try:
                print("ready", flush=True)
                threading.Event().wait()  # the work, until Ctrl-C
            finally:
                if hang:
                    threading.Event().wait()  # a cleanup that never returns
            sys.exit(0)
        except KeyboardInterrupt:
            interrupt.say()
            sys.exit(EXIT_INTERRUPTED)
    """
)


@pytest.mark.parametrize("cleanup", ["returns", "hang"])
def test_ctrl_c_exits_130_with_one_line_even_when_cleanup_hangs(cleanup: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, cleanup],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=sigint_default,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["cmd: interrupted"]
    if cleanup == "hang":
        assert elapsed >= 1.0  # the watchdog's grace period, not the cleanup, ended it


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    """Started with SIGINT ignored (a background job, nohup): the command keeps running."""
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "returns"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):  # no watchdog was armed (grace 1 s)
            proc.wait(timeout=3)
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and err == ""
