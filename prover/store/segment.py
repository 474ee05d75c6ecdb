"""Immutable segments: one zarr v3 group per committed chunk of results.

A segment is written completely under ``tmp/``, flushed to disk, then renamed
into ``segments/`` in one ``rename(2)``.  The rename is the commit point: a
directory under ``segments/`` is always a complete segment, and a crash before
the rename leaves only garbage under ``tmp/``, which the next writer deletes.

Arrays of a segment with ``m`` rows (all C order, little-endian):

=================  ===========  ================================================
``subsets``        uint8        ``(m, ceil(N/8))`` packed mask bits, LSB first
``seeds``          uint64       ``(m,)`` training seeds
``keys``           uint8        ``(m, 32)`` result keys (:mod:`prover.store.keys`)
``outputs``        float64      ``(m, Z)`` clipped outputs
``weight_digests`` uint8        ``(m, 32)`` SHA-256 of the float64 LE weights
``weights``        float64      ``(m, P)`` trained weights (only if kept)
=================  ===========  ================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.errors
from numpy.typing import NDArray
from zarr.storage import LocalStore

from protocol.atomic import fsync_dir
from protocol.errors import ProverError

__all__ = ["SEGMENT_FORMAT", "Segment", "SegmentData", "fsync_dir", "write_segment"]

SEGMENT_FORMAT = "pacda-result-segment/1"
_WEIGHT_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True, kw_only=True)
class SegmentData:
    """Rows of one segment, ready to write (shapes in the module docstring)."""

    subsets: NDArray[np.uint8]
    seeds: NDArray[np.uint64]
    keys: NDArray[np.uint8]
    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]
    weights: NDArray[np.float64] | None


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def write_segment(data: SegmentData, *, tmp_dir: Path, final_dir: Path, durable: bool) -> None:
    """Write ``data`` under ``tmp_dir`` and atomically rename it to ``final_dir``.

    Args:
        data: the rows.
        tmp_dir: scratch location on the same filesystem as ``final_dir``.
        final_dir: the segment's committed path (must not exist).
        durable: fsync every file and both directories (survives power loss,
            not only a killed process).
    """
    m = len(data.seeds)
    n_weights = None if data.weights is None else int(data.weights.shape[1])
    group = zarr.open_group(
        store=LocalStore(tmp_dir),
        mode="w",
        attributes={"format": SEGMENT_FORMAT, "rows": m, "n_weights": n_weights},
    )
    arrays: dict[str, NDArray[np.generic]] = {
        "subsets": data.subsets,
        "seeds": data.seeds,
        "keys": data.keys,
        "outputs": data.outputs,
        "weight_digests": data.weight_digests,
    }
    if data.weights is not None:
        arrays["weights"] = data.weights
    for name, values in arrays.items():
        rows = m
        if name == "weights" and values.shape[1] > 0:
            rows = max(1, min(m, _WEIGHT_CHUNK_BYTES // (8 * values.shape[1])))
        chunks = (max(rows, 1), *values.shape[1:])
        arr = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=chunks)
        if m:
            arr[...] = values
    if durable:
        _fsync_tree(tmp_dir)
    os.rename(tmp_dir, final_dir)
    if durable:
        fsync_dir(final_dir.parent)


class Segment:
    """Read access to one committed segment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._group = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
        except (OSError, ValueError, zarr.errors.BaseZarrError) as exc:
            raise ProverError(f"cannot read store segment {path}: {exc}") from exc
        attrs: dict[str, Any] = dict(self._group.attrs)
        if attrs.get("format") != SEGMENT_FORMAT:
            raise ProverError(
                f"{path}: not a {SEGMENT_FORMAT} segment (format {attrs.get('format')!r})"
            )
        self.rows = int(attrs["rows"])
        n_weights = attrs.get("n_weights")
        self.n_weights: int | None = None if n_weights is None else int(n_weights)

    def read(self, name: str) -> NDArray[np.generic]:
        """The whole array ``name`` of this segment."""
        values = np.asarray(self._group[name][...])  # type: ignore[index]
        if values.shape[0] != self.rows:
            raise ProverError(
                f"{self.path}: array {name!r} has {values.shape[0]} rows, expected {self.rows}"
            )
        return values

    def read_rows(self, name: str, rows: NDArray[np.intp]) -> NDArray[np.generic]:
        """Rows ``rows`` of array ``name`` (orthogonal selection, any order)."""
        arr = self._group[name]
        return np.asarray(arr.get_orthogonal_selection((rows,)))  # type: ignore[union-attr]
