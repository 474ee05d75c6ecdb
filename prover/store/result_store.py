"""A persistent, crash-safe store of training results keyed by (subset, seed).

Layout of a store directory (details and the atomicity argument in
``docs/store.md``)::

    <root>/store.json       StoreConfig: task digest, N, Z, weight policy
    <root>/writer.lock      flock(2) held by the single writer
    <root>/segments/<seq>-<token>/   committed zarr v3 groups (immutable)
    <root>/tmp/             segments being written; deleted by the next writer

Every committed result stays committed: segments are only ever added, each by
one atomic ``rename(2)``.  A writer killed at any instant leaves the store
holding exactly the segments renamed before the kill.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from protocol.atomic import atomic_write
from protocol.errors import InvalidArgument, ProverError
from prover.store.config import StoreConfig
from prover.store.keys import (
    DIGEST_BYTES,
    check_seeds,
    check_subsets,
    pack_subsets,
    result_keys,
    weight_digests,
)
from prover.store.segment import Segment, SegmentData, write_segment
from prover.tasks.base import Task, TrainedBatch

__all__ = ["Lookup", "ResultStore"]

_CONFIG = "store.json"
_LOCK = "writer.lock"
_SEGMENTS = "segments"
_TMP = "tmp"
_SEGMENT_RE = re.compile(r"^(\d{10})-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Lookup:
    """Answer of :meth:`ResultStore.lookup` for ``n`` queried runs.

    Attributes:
        found: bool ``(n,)``, True where the run is stored.
        outputs: float64 ``(n, Z)``; NaN where not found.
        weight_digests: uint8 ``(n, 32)``; zeros where not found.
    """

    found: NDArray[np.bool_]
    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]


class ResultStore:
    """Results of one task, keyed by (subset, seed); see the module docstring.

    Open with :meth:`open` (or :meth:`open_for_task`); use as a context manager
    or call :meth:`close` to release the writer lock.
    """

    def __init__(
        self, root: Path, config: StoreConfig, *, lock_fd: int | None, durable: bool
    ) -> None:
        self.path = root
        self.config = config
        self._lock_fd = lock_fd
        self._durable = durable
        self._segments: list[Segment] = []
        self._loaded: set[str] = set()
        self._index: dict[bytes, tuple[int, int]] = {}
        self._next_seq = 0
        self._n_weights: int | None = None
        self.refresh()

    # ------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        task_digest: str,
        n_items: int,
        n_outputs: int,
        store_weights: bool = False,
        mode: Literal["a", "r"] = "a",
        durable: bool = True,
    ) -> ResultStore:
        """Open (mode ``"a"``: create if needed, single writer) or read (``"r"``) a store.

        Args:
            path: the store directory.
            task_digest: digest of the task whose results it holds.
            n_items: N.
            n_outputs: Z.
            store_weights: keep full weights, not only their digests.
            mode: ``"a"`` takes the writer lock; ``"r"`` is a lock-free reader
                that sees the segments committed so far (see :meth:`refresh`).
            durable: fsync each segment before and after its commit rename.

        Raises:
            InvalidArgument: the store holds another task or config, or the
                directory is not a result store.
            ProverError: another process holds the writer lock.
        """
        wanted = StoreConfig(
            task_digest=task_digest,
            n_items=n_items,
            n_outputs=n_outputs,
            store_weights=store_weights,
        )
        if mode not in ("a", "r"):
            raise InvalidArgument(f"mode must be 'a' or 'r', got {mode!r}")
        root = Path(path)
        if mode == "r":
            stored = cls.read_config(root)
            _check_same(root, stored, wanted)
            return cls(root, stored, lock_fd=None, durable=durable)
        root.mkdir(parents=True, exist_ok=True)
        if not (root / _CONFIG).exists():
            strangers = sorted(
                p.name
                for p in root.iterdir()
                if p.name not in {_LOCK, _TMP} and not p.name.startswith(f".{_CONFIG}.")
            )
            if strangers:
                raise InvalidArgument(
                    f"{root} is not empty and is not a pacda result store "
                    f"(no {_CONFIG}; found {strangers[:5]})"
                )
        lock_fd = _acquire_lock(root / _LOCK)
        try:
            if (root / _CONFIG).exists():
                _check_same(root, cls.read_config(root), wanted)
            else:
                _atomic_write_text(root / _CONFIG, wanted.to_json())
            (root / _SEGMENTS).mkdir(exist_ok=True)
            tmp = root / _TMP
            if tmp.exists():
                shutil.rmtree(tmp)  # leftovers of a killed writer: never committed
            tmp.mkdir()
            return cls(root, wanted, lock_fd=lock_fd, durable=durable)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open_for_task(
        cls, path: str | os.PathLike[str], task: Task, **kwargs: object
    ) -> ResultStore:
        """:meth:`open` with the digest and shape of ``task``; ``kwargs`` as in :meth:`open`."""
        return cls.open(
            path,
            task_digest=task.digest,
            n_items=task.n_items,
            n_outputs=task.n_outputs,
            **kwargs,  # type: ignore[arg-type]
        )

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds a result store (its ``store.json``)."""
        return (Path(path) / _CONFIG).is_file()

    @staticmethod
    def read_config(path: str | os.PathLike[str]) -> StoreConfig:
        """The :class:`StoreConfig` of an existing store.

        Raises:
            InvalidArgument: ``path`` has no readable ``store.json``.
        """
        config_path = Path(path) / _CONFIG
        try:
            text = config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidArgument(f"{path} is not a pacda result store (no {_CONFIG})") from None
        return StoreConfig.from_json(text, source=config_path)

    # ----------------------------------------------------------- lifecycle
    @property
    def writable(self) -> bool:
        """True when this handle holds the writer lock."""
        return self._lock_fd is not None

    def close(self) -> None:
        """Release the writer lock (idempotent)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        """Number of distinct results committed (as of the last refresh)."""
        return len(self._index)

    def refresh(self) -> int:
        """Load segments committed since the last call; returns how many new results."""
        seg_dir = self.path / _SEGMENTS
        if not seg_dir.exists():
            return 0
        before = len(self._index)
        for name in sorted(os.listdir(seg_dir)):
            match = _SEGMENT_RE.match(name)
            if match is None or name in self._loaded:
                continue
            self._add_segment(Segment(seg_dir / name))
            self._loaded.add(name)
            self._next_seq = max(self._next_seq, int(match.group(1)) + 1)
        return len(self._index) - before

    def _add_segment(self, segment: Segment) -> None:
        if segment.n_weights is not None:
            if self._n_weights is not None and self._n_weights != segment.n_weights:
                raise ProverError(
                    f"{segment.path}: {segment.n_weights} weights per model, "
                    f"other segments have {self._n_weights}"
                )
            self._n_weights = segment.n_weights
        keys = segment.read("keys")
        idx = len(self._segments)
        self._segments.append(segment)
        for row in range(segment.rows):
            self._index.setdefault(keys[row].tobytes(), (idx, row))

    # --------------------------------------------------------------- reads
    def keys_for(
        self, x: NDArray[np.integer], seeds: NDArray[np.integer]
    ) -> tuple[NDArray[np.int8], NDArray[np.uint64], NDArray[np.uint8]]:
        """Validate ``(x, seeds)`` for this store and compute their result keys."""
        xs = check_subsets(x, self.config.n_items)
        ss = check_seeds(seeds, xs.shape[0])
        return xs, ss, result_keys(xs, ss)

    def contains_keys(self, keys: NDArray[np.uint8]) -> NDArray[np.bool_]:
        """bool ``(n,)``: which of the result keys ``(n, 32)`` are stored."""
        return np.fromiter((k.tobytes() in self._index for k in keys), bool, len(keys))

    def lookup(
        self,
        x: NDArray[np.integer],
        seeds: NDArray[np.integer],
        *,
        keys: NDArray[np.uint8] | None = None,
    ) -> Lookup:
        """Stored outputs and weight digests of the runs ``(x, seeds)``.

        Args:
            x: pm-encoded subsets, ``(n, N)``.
            seeds: uint64 ``(n,)``.
            keys: their result keys, if already computed.
        """
        if keys is None:
            _, _, keys = self.keys_for(x, seeds)
        n = len(keys)
        found = self.contains_keys(keys)
        outputs = np.full((n, self.config.n_outputs), np.nan)
        digests = np.zeros((n, DIGEST_BYTES), dtype=np.uint8)
        for seg, query_rows, seg_rows in self._locate(keys, found):
            outputs[query_rows] = seg.read_rows("outputs", seg_rows)
            digests[query_rows] = seg.read_rows("weight_digests", seg_rows)
        return Lookup(found=found, outputs=outputs, weight_digests=digests)

    def weights(
        self,
        x: NDArray[np.integer],
        seeds: NDArray[np.integer],
        *,
        keys: NDArray[np.uint8] | None = None,
    ) -> NDArray[np.float64] | None:
        """Stored weights ``(n, P)`` of the runs; ``None`` for a task without weights.

        Raises:
            ProverError: the store keeps no weights, or a run is not stored.
        """
        if not self.config.store_weights:
            raise ProverError(f"store {self.path} keeps only weight digests (store_weights=false)")
        if keys is None:
            _, _, keys = self.keys_for(x, seeds)
        found = self.contains_keys(keys)
        if not found.all():
            raise ProverError(f"{int((~found).sum())} of {len(keys)} runs are not in the store")
        if self._n_weights is None:
            return None
        out = np.empty((len(keys), self._n_weights))
        for seg, query_rows, seg_rows in self._locate(keys, found):
            out[query_rows] = seg.read_rows("weights", seg_rows)
        return out

    def _locate(
        self, keys: NDArray[np.uint8], found: NDArray[np.bool_]
    ) -> list[tuple[Segment, NDArray[np.intp], NDArray[np.intp]]]:
        """Group the found queries by segment: ``(segment, query rows, segment rows)``."""
        query = np.flatnonzero(found)
        if not len(query):
            return []
        locs = np.array([self._index[keys[i].tobytes()] for i in query], dtype=np.intp)
        out = []
        for seg_idx in np.unique(locs[:, 0]):
            sel = locs[:, 0] == seg_idx
            out.append((self._segments[int(seg_idx)], query[sel], locs[sel, 1]))
        return out

    # -------------------------------------------------------------- writes
    def write(
        self,
        x: NDArray[np.integer],
        seeds: NDArray[np.integer],
        batch: TrainedBatch,
        *,
        keys: NDArray[np.uint8] | None = None,
        digests: NDArray[np.uint8] | None = None,
    ) -> int:
        """Commit the results of ``n`` runs as one segment; returns how many were new.

        Runs already stored (and repeats within the call) are skipped, so
        writing is idempotent.  On return the new results are committed.

        Args:
            x: pm-encoded subsets ``(n, N)``.
            seeds: uint64 ``(n,)``.
            batch: ``outputs`` float64 ``(n, Z)``; ``weights`` ``(n, P)`` or None.
                Weights are required when the store keeps them, unless the task
                has none.
            keys: result keys ``(n, 32)``, if already computed.
            digests: weight digests ``(n, 32)``, if already computed; required
                when ``batch.weights`` is None for a task that has weights.

        Raises:
            ProverError: this handle is read-only.
            InvalidArgument: shapes, non-finite outputs or missing weights.
        """
        if not self.writable:
            raise ProverError(f"store {self.path} is open read-only")
        xs = check_subsets(x, self.config.n_items)
        ss = check_seeds(seeds, xs.shape[0])
        n = xs.shape[0]
        outputs = np.asarray(batch.outputs, dtype=np.float64)
        if outputs.shape != (n, self.config.n_outputs):
            raise InvalidArgument(
                f"outputs must have shape ({n}, {self.config.n_outputs}), got {outputs.shape}"
            )
        if not np.all(np.isfinite(outputs)):
            raise InvalidArgument("outputs must be finite")
        if keys is None:
            keys = result_keys(xs, ss)
        if digests is None:
            digests = weight_digests(batch.weights, n)
        if self.config.store_weights and batch.weights is None and self._n_weights:
            raise InvalidArgument("this store keeps weights, but the batch has none")
        new = self._new_rows(keys)
        if not len(new):
            return 0
        weights = None
        if self.config.store_weights and batch.weights is not None:
            weights = np.ascontiguousarray(batch.weights[new], dtype=np.float64)
            if self._n_weights is not None and weights.shape[1] != self._n_weights:
                raise InvalidArgument(
                    f"weights have {weights.shape[1]} columns, store has {self._n_weights}"
                )
        data = SegmentData(
            subsets=pack_subsets(xs[new]),
            seeds=ss[new],
            keys=np.ascontiguousarray(keys[new]),
            outputs=np.ascontiguousarray(outputs[new]),
            weight_digests=np.ascontiguousarray(digests[new]),
            weights=weights,
        )
        name = f"{self._next_seq:010d}-{secrets.token_hex(4)}"
        final = self.path / _SEGMENTS / name
        write_segment(data, tmp_dir=self.path / _TMP / name, final_dir=final, durable=self._durable)
        self._next_seq += 1
        self._add_segment(Segment(final))
        self._loaded.add(name)
        return len(new)

    def _new_rows(self, keys: NDArray[np.uint8]) -> NDArray[np.intp]:
        """Rows whose key is neither stored nor repeated earlier in ``keys``."""
        seen: set[bytes] = set()
        rows = []
        for i, k in enumerate(keys):
            b = k.tobytes()
            if b not in self._index and b not in seen:
                seen.add(b)
                rows.append(i)
        return np.array(rows, dtype=np.intp)


def _check_same(root: Path, stored: StoreConfig, wanted: StoreConfig) -> None:
    diffs = stored.mismatches(wanted)
    if diffs:
        raise InvalidArgument(
            f"result store {root} was made for a different task or config; refusing to mix "
            f"results ({'; '.join(diffs)})"
        )


def _acquire_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ProverError(
            f"result store {path.parent} is open for writing by another process"
        ) from None
    return fd


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"), sync_dir=True)
