"""Atomic file replacement: write a temporary file, ``fsync`` it, rename it over the target.

Readers see either the old file or the complete new one, never a partial
write; after a crash at most a hidden ``.<name>.<random>.tmp`` file is left
beside the target (and removed whenever the write fails in this process).
With ``sync_dir`` the directory entry is flushed too, so the rename itself
survives a power loss.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "fsync_dir"]

_ATTEMPTS = 100


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry (so a rename into it survives power loss)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(target: Path, mode: int | None) -> tuple[int, Path]:
    """Create a fresh hidden temporary file beside ``target``; return its fd and path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_ATTEMPTS):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"no free temporary file name beside {target}")


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | Callable[[BinaryIO], object],
    *,
    mode: int | None = None,
    sync_dir: bool = False,
) -> Path:
    """Atomically replace ``path`` with ``data``.

    Args:
        path: the file to create or replace; its directory must exist.
        data: the bytes to write, or a function that writes them to the
            (binary) file object it is given.
        mode: exact permission bits of the new file (e.g. ``0o600``); ``None``
            gives what a plain ``open(path, "w")`` would (``0o666`` less the umask).
        sync_dir: also ``fsync`` the directory after the rename.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the directory does not exist or cannot be written, or a write,
            ``fsync`` or the rename failed (the target is then unchanged).
    """
    target = Path(path)
    fd, tmp = _create_temp(target, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # exact, whatever the umask
            if isinstance(data, bytes | bytearray | memoryview):
                fh.write(data)
            else:
                data(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(target.parent)
    return target
