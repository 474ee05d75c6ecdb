"""protocol.atomic: the one atomic file replacement (scores, reports, store config)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from protocol.atomic import atomic_write, fsync_dir
from protocol.scores import Scores, save_scores
from prover.store import segment
from verifier.cli import common


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    assert atomic_write(target, b"first") == target
    assert target.read_bytes() == b"first"
    atomic_write(str(target), b"second, longer", sync_dir=True)
    assert target.read_bytes() == b"second, longer"
    assert _leftovers(tmp_path) == []


def test_a_writer_function_streams_into_the_file(tmp_path: Path) -> None:
    def write(fh: BinaryIO) -> None:
        fh.write(b"a")
        fh.write(b"b")

    atomic_write(tmp_path / "w", write)
    assert (tmp_path / "w").read_bytes() == b"ab"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep"
    target.write_bytes(b"old")

    def broken(fh: BinaryIO) -> None:
        fh.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "nope" / "f", b"x")


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_mode_is_exact(tmp_path: Path, mode: int) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "m", b"x", mode=mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == mode


def test_default_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "u", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "u").stat().st_mode) == 0o640


def test_callers_share_it(tmp_path: Path) -> None:
    """Scores, Verifier CLI outputs and the store's fsync_dir all go through protocol.atomic."""
    assert segment.fsync_dir is fsync_dir
    fsync_dir(tmp_path)
    report = tmp_path / "deep" / "er" / "report.json"
    common.atomic_write(report, b"{}")  # creates missing parents
    assert report.read_bytes() == b"{}"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    scores = Scores(
        theta0=np.zeros(2), theta=np.ones((2, 3)), task_digest="sha256:" + "0" * 64, method="m"
    )
    dest = save_scores(tmp_path / "s", scores)
    assert dest == tmp_path / "s.npz" and dest.is_file()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert _leftovers(tmp_path) == [] and _leftovers(report.parent) == []
