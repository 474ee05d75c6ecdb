"""The score files attribution libraries save themselves (``import-scores --format``).

* ``kronfluence``: ``compute_pairwise_scores`` saves a safetensors file
  ``OUTPUT_DIR/ANALYSIS/scores_NAME/pairwise_scores.safetensors`` holding
  ``(n_query, n_train)`` tensors, ``all_modules`` summed over layers (the
  default key here).  The path may be that file or any directory above it
  holding exactly one.
* ``trak``: ``TRAKer.finalize_scores(exp_name)`` saves ``SAVE_DIR/scores/EXP.mmap``,
  a NumPy ``.npy`` file of shape ``(n_train, n_targets)``.  The path may be that
  file or ``SAVE_DIR`` (the experiment named by the key, or the only one).
* ``dattri``: an attributor's ``attribute`` returns a ``(n_train, n_test)``
  tensor; saved with ``torch.save`` it is a ``.pt`` file (read as such).

Every format is in the mask encoding (effects of including an item) with the
library's own sign and scale: calibrate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument

__all__ = ["LIBRARY_FORMATS", "LibraryFormat", "find_one", "read_kronfluence", "read_trak"]

KRONFLUENCE_FILE = "pairwise_scores.safetensors"
KRONFLUENCE_KEY = "all_modules"


@dataclass(frozen=True)
class LibraryFormat:
    """What a library's saved scores are: their layout, encoding and tool name."""

    name: str
    layout: str
    encoding: str
    description: str


LIBRARY_FORMATS: dict[str, LibraryFormat] = {
    "kronfluence": LibraryFormat(
        "kronfluence", "ZN", "mask", f"{KRONFLUENCE_FILE} or a directory above it"
    ),
    "trak": LibraryFormat("trak", "NZ", "mask", "scores/EXP.mmap or TRAK's save directory"),
    "dattri": LibraryFormat("dattri", "NZ", "mask", "a .pt file of attribute()'s tensor"),
}


def find_one(path: Path, pattern: str, what: str) -> Path:
    """``path`` itself if a file, else the one file under it matching ``pattern``."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise InvalidArgument(f"{path}: no such file or directory")
    found = sorted(path.rglob(pattern))
    if len(found) != 1:
        listed = ", ".join(str(p.relative_to(path)) for p in found[:5]) or "none"
        raise InvalidArgument(f"{path}: holds {len(found)} {what} ({listed}); name the file itself")
    return found[0]


def read_kronfluence(path: Path, key: str | None = None) -> tuple[NDArray[np.float64], Path, str]:
    """kronfluence's pairwise scores ``(n_query, n_train)``, the file read and the key."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    file = find_one(path, KRONFLUENCE_FILE, "kronfluence pairwise score files")
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise InvalidArgument(f"{file}: not a readable safetensors file ({err})") from None
    if key is None:
        key = KRONFLUENCE_KEY if KRONFLUENCE_KEY in tensors else None
        if key is None and len(tensors) == 1:
            key = next(iter(tensors))
    if key is None or key not in tensors:
        raise InvalidArgument(
            f"{file}: no tensor {key or KRONFLUENCE_KEY!r} (--key); it holds "
            f"{', '.join(sorted(tensors)) or 'none'}"
        )
    arr = np.asarray(tensors[key])
    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise InvalidArgument(
            f"{file} [{key}]: expected a 2-d real matrix, got {arr.shape} {arr.dtype}"
        )
    return arr.astype(np.float64), file, key


def read_trak(path: Path, key: str | None = None) -> tuple[NDArray[np.float64], Path, str]:
    """TRAK's saved scores ``(n_train, n_targets)``, the file read and the experiment name."""
    if path.is_dir():
        scores_dir = path / "scores" if (path / "scores").is_dir() else path
        if key is not None:
            file = scores_dir / f"{key}.mmap"
            if not file.is_file():
                raise InvalidArgument(f"{path}: no TRAK experiment {key!r} ({file} is missing)")
        else:
            file = find_one(scores_dir, "*.mmap", "TRAK score files")
    elif path.is_file():
        if key is not None:
            raise InvalidArgument(f"{path}: --key names a TRAK experiment in a save directory")
        file = path
    else:
        raise InvalidArgument(f"{path}: no such file or directory")
    try:
        arr = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InvalidArgument(f"{file}: not a TRAK score file (a .npy memmap): {err}") from None
    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise InvalidArgument(f"{file}: expected a 2-d real matrix, got {arr.shape} {arr.dtype}")
    return np.asarray(arr, dtype=np.float64), file, file.stem
