"""Helpers shared by the CLI commands (torch- and grpc-free)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import atomic
from protocol.errors import InvalidArgument
from protocol.signing import key_id, load_or_create_default_key, load_private_key

__all__ = [
    "atomic_write",
    "check_output",
    "check_scores_file",
    "details_document",
    "details_path",
    "load_signing_key",
    "read_details",
    "read_file",
]


def load_signing_key(path: Path | None) -> Ed25519PrivateKey:
    """The key at ``path``, or the per-user default key (created on first use; says where)."""
    if path is not None:
        return load_private_key(path)
    key, where, created = load_or_create_default_key()
    what = "created a new" if created else "using the"
    print(
        f"{what} per-user Verifier key {where} ({key_id(key)}); "
        f"its public key is {where.with_suffix('.pub')}",
        file=sys.stderr,
    )
    return key


def read_file(path: Path, what: str) -> bytes:
    """Read a file or raise :class:`InvalidArgument` naming it."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise InvalidArgument(f"cannot read {what} {path}: {err.strerror}") from None


def check_output(path: Path, *, force: bool, what: str) -> Path:
    """Refuse, before any work, an output path that cannot or must not be written.

    ``what`` names the option in messages (``--report``).  An existing file is
    replaced only with ``force``; a directory never; the nearest existing
    parent must be a writable directory (missing ones are created on writing).

    Raises:
        InvalidArgument: one line naming the option, the path and the remedy.
    """
    if path.is_dir():
        raise InvalidArgument(f"{what} {path} is a directory")
    if path.exists() and not force:
        raise InvalidArgument(
            f"{what} {path} already exists; refusing to overwrite it (use --force)"
        )
    parent = path.parent.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidArgument(f"cannot write {what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgument(f"cannot write {what} {path}: directory {parent} is not writable")
    return path


def check_scores_file(path: Path) -> Path:
    """Refuse, with one clear line, a ``--scores`` file that is not an ``.npz`` archive.

    :func:`protocol.scores.load_scores` checks everything inside the archive;
    this catches what NumPy would misreport: a plain ``.npy`` array, or a
    text (or other) file named ``.npz``.

    Raises:
        InvalidArgument: missing, unreadable, ``.npy`` or not a zip archive.
    """
    try:
        with path.open("rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise InvalidArgument(f"--scores {path}: no such file") from None
    except OSError as err:
        raise InvalidArgument(f"--scores {path}: cannot read it: {err.strerror}") from None
    remedy = (
        "a pacda-scores/1 .npz file is written by pacda-prover attribute, or by "
        "pacda-prover import-scores from another tool's score matrix (docs/scores.md)"
    )
    if head.startswith(b"\x93NUMPY"):
        raise InvalidArgument(
            f"--scores {path}: a plain NumPy array (.npy), not a scores file; {remedy}"
        )
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise InvalidArgument(f"--scores {path}: not an .npz (zip) archive; {remedy}")
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) via a temporary file and rename.

    Missing parent directories are created; :func:`protocol.atomic.atomic_write` does the rest.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write(path, data, mode=0o600)


def details_path(report: Path) -> Path:
    """Where the unsigned audit details go: ``<report>.details.json``."""
    return report.with_name(report.name + ".details.json")


def details_document(result: Any) -> bytes:
    """Unsigned per-spot-check agreement (for ``show --html``); not part of the signed report."""
    spot = result.spot_checks
    body: dict[str, Any] = {
        "note": "unsigned details of the audit; the signed record is the report"
    }
    if spot is not None:
        body["spot_checks"] = {
            "point_index": [int(i) for i in spot.indices],
            "output_diff": [_number(d) for d in spot.output_diff],
            # null: the weights were never opened (a Prover that refused to open)
            "weight_diff": [_number(d) for d in spot.weight_diff],
        }
    return (json.dumps(body, indent=1) + "\n").encode()


def _number(value: Any) -> float | None:
    x = float(value)
    return x if math.isfinite(x) else None


def read_details(report: Path) -> list[float]:
    """Spot-check output differences from ``<report>.details.json`` ([] if absent or unreadable)."""
    try:
        body = json.loads(details_path(report).read_text())
        return [float(d) for d in body["spot_checks"]["output_diff"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
