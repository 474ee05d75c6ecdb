"""The attribution scores file: a versioned ``.npz`` read by Prover and Verifier.

A scores file holds one linear datamodel per output (docs/design.md §1): for output z,

    g_z(x) = theta0[z] + sum_i theta[z, i] x_i,    x in {-1, +1}^N (pm encoding),

where ``x_i = +1`` means training item i is used.  Format ``pacda-scores/1``
(``docs/scores.md``) is an uncompressed NumPy ``.npz`` (read with
``allow_pickle=False``) holding exactly these arrays:

=============== ================= ===================================================
key             dtype / shape     meaning
=============== ================= ===================================================
``format``      unicode, ``()``   ``"pacda-scores/1"``
``theta0``      float64, ``(Z,)`` intercepts
``theta``       float64, ``(Z,N)`` per-item scores in the pm encoding
``encoding``    unicode, ``()``   ``"pm"`` (the only encoding of version 1)
``task_digest`` unicode, ``()``   ``sha256:<64 hex>`` of the task the scores are for
``method``      unicode, ``()``   how the scores were computed, e.g. ``"datamodel"``
``meta``        unicode, ``()``   a JSON object (RFC 8785 canonical form when written)
=============== ================= ===================================================

Users who prefer the 0/1 mask encoding ``m = (x + 1)/2`` get
``g(m) = beta0 + beta . m`` with ``beta = 2 theta`` and ``beta0 = theta0 - sum_i theta_i``
from :meth:`Scores.mask_encoding`.

Loading validates every field and raises :class:`~protocol.errors.InvalidArgument`
with a message naming the file and the field.  Writing is atomic
(:func:`protocol.atomic.atomic_write`: temporary file, ``fsync``, ``rename``) and
refuses to replace an existing file unless asked.  This module is pure numpy:
both sides load scores without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from protocol.atomic import atomic_write
from protocol.canonical_json import canonical_json
from protocol.errors import InvalidArgument
from protocol.scores_provenance import CALIBRATION_FITTED, scores_provenance

__all__ = [
    "CALIBRATION_FITTED",
    "ENCODING",
    "SCORES_FORMAT",
    "Scores",
    "load_scores",
    "save_scores",
    "scores_provenance",
]

SCORES_FORMAT = "pacda-scores/1"
ENCODING = "pm"
_KEYS = ("format", "theta0", "theta", "encoding", "task_digest", "method", "meta")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_METHOD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class Scores:
    """Linear datamodels ``g_z(x) = theta0[z] + theta[z] . x`` for Z outputs (pm encoding).

    Attributes:
        theta0: float64 ``(Z,)`` intercepts, in output units.
        theta: float64 ``(Z, N)`` scores, pm encoding: half the change of
            ``g_z`` when item i goes from excluded (-1) to included (+1).
        task_digest: ``sha256:<hex>`` digest of the task (docs/design.md §2.1).
        method: name of the method that produced the scores.
        meta: JSON-serialisable details (method parameters, self-check, ...).
        encoding: always ``"pm"`` in format version 1.
    """

    theta0: FloatArray
    theta: FloatArray
    task_digest: str
    method: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    encoding: str = ENCODING

    def __post_init__(self) -> None:
        _check_arrays(self.theta0, self.theta, where="scores")
        _check_header(self.task_digest, self.method, self.encoding, where="scores")
        if not isinstance(self.meta, Mapping):
            raise InvalidArgument(f"scores: meta must be a mapping, got {type(self.meta).__name__}")
        canonical_json(dict(self.meta))  # raises InvalidArgument if not JSON-encodable
        # Own read-only copies: a frozen dataclass must not change under the caller.
        for name in ("theta0", "theta"):
            arr = np.array(getattr(self, name), dtype=np.float64, copy=True)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @property
    def n_outputs(self) -> int:
        """Z."""
        return int(self.theta.shape[0])

    @property
    def n_items(self) -> int:
        """N."""
        return int(self.theta.shape[1])

    def predict(self, x: NDArray[np.integer]) -> FloatArray:
        """``g(x)`` for pm-encoded subsets.

        Args:
            x: int ``(n, N)`` with entries -1/+1.

        Returns:
            float64 ``(n, Z)``.
        """
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[1] != self.n_items:
            raise InvalidArgument(f"x must have shape (n, {self.n_items}), got {a.shape}")
        if a.size and not np.all((a == 1) | (a == -1)):
            raise InvalidArgument("x must be in the pm encoding (entries -1 or +1)")
        return np.asarray(a.astype(np.float64) @ self.theta.T + self.theta0[None, :])

    def prediction_bound(self) -> FloatArray:
        """``|theta0| + ||theta||_1`` per output: a bound on ``|g(x)|`` for every x, ``(Z,)``."""
        return np.asarray(np.abs(self.theta0) + np.abs(self.theta).sum(axis=1))

    def mask_encoding(self) -> tuple[FloatArray, FloatArray]:
        """``(beta0 (Z,), beta (Z, N))`` with ``g(m) = beta0 + beta . m`` for 0/1 masks m."""
        return self.theta0 - self.theta.sum(axis=1), 2.0 * self.theta

    def digest(self) -> str:
        """``sha256:<hex>`` committing to the scores (not to ``meta``).

        SHA-256 over the canonical JSON of the header followed by the raw
        little-endian float64 bytes of ``theta0`` and then ``theta`` (row-major)::

            canonical_json({"format", "encoding", "task_digest", "method", "n_outputs",
                            "n_items"}) || theta0.tobytes("<f8") || theta.tobytes("<f8")
        """
        header = canonical_json(
            {
                "format": SCORES_FORMAT,
                "encoding": self.encoding,
                "task_digest": self.task_digest,
                "method": self.method,
                "n_outputs": self.n_outputs,
                "n_items": self.n_items,
            }
        )
        h = hashlib.sha256(header)
        h.update(np.ascontiguousarray(self.theta0, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.theta, dtype="<f8").tobytes())
        return "sha256:" + h.hexdigest()

    def check_task(self, task_digest: str, *, n_items: int | None = None) -> None:
        """Raise :class:`InvalidArgument` unless the scores are for this task (and N)."""
        if self.task_digest != task_digest:
            raise InvalidArgument(
                f"scores are for task {self.task_digest}, not for task {task_digest} "
                "(task digest mismatch)"
            )
        if n_items is not None and self.n_items != n_items:
            raise InvalidArgument(f"scores have N={self.n_items} items, the task has N={n_items}")


def _check_arrays(theta0: Any, theta: Any, *, where: str) -> None:
    for name, arr, ndim in (("theta0", theta0, 1), ("theta", theta, 2)):
        if not isinstance(arr, np.ndarray):
            raise InvalidArgument(
                f"{where}: {name} must be a numpy array, got {type(arr).__name__}"
            )
        if arr.dtype != np.float64:
            raise InvalidArgument(f"{where}: {name} must have dtype float64, got {arr.dtype}")
        if arr.ndim != ndim:
            want = "(Z,)" if ndim == 1 else "(Z, N)"
            raise InvalidArgument(f"{where}: {name} must have shape {want}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise InvalidArgument(f"{where}: {name} has {bad} non-finite value(s) (NaN or inf)")
    if theta.shape[0] < 1 or theta.shape[1] < 1:
        raise InvalidArgument(f"{where}: theta must have Z >= 1 and N >= 1, got {theta.shape}")
    if theta0.shape != (theta.shape[0],):
        raise InvalidArgument(
            f"{where}: theta0 must have shape ({theta.shape[0]},) to match theta "
            f"{theta.shape}, got {theta0.shape}"
        )


def _check_header(task_digest: Any, method: Any, encoding: Any, *, where: str) -> None:
    if not isinstance(task_digest, str) or not _DIGEST_RE.match(task_digest):
        raise InvalidArgument(
            f"{where}: task_digest must look like 'sha256:<64 hex digits>', got {task_digest!r}"
        )
    if not isinstance(method, str) or not _METHOD_RE.match(method):
        raise InvalidArgument(
            f"{where}: method must be a name of letters, digits and '_.+-' (at most 64), "
            f"got {method!r}"
        )
    if encoding != ENCODING:
        raise InvalidArgument(
            f"{where}: encoding must be {ENCODING!r} (format {SCORES_FORMAT}), got {encoding!r}"
        )


def save_scores(path: str | os.PathLike[str], scores: Scores, *, overwrite: bool = False) -> Path:
    """Write ``scores`` to ``path`` atomically (``.npz`` appended if missing).

    Args:
        path: destination file.
        scores: validated scores.
        overwrite: replace an existing file; otherwise an existing file is an error.

    Returns:
        The path written.

    Raises:
        InvalidArgument: the file exists and ``overwrite`` is False, or its
            directory does not exist.
    """
    dest = Path(path)
    if dest.suffix != ".npz":
        dest = dest.with_name(dest.name + ".npz")
    if dest.exists() and not overwrite:
        raise InvalidArgument(f"{dest} already exists; refusing to overwrite it (use --force)")
    if not dest.parent.is_dir():
        raise InvalidArgument(f"cannot write {dest}: directory {dest.parent} does not exist")
    arrays: dict[str, NDArray[Any]] = {
        "format": np.array(SCORES_FORMAT),
        "theta0": np.asarray(scores.theta0, dtype=np.float64),
        "theta": np.asarray(scores.theta, dtype=np.float64),
        "encoding": np.array(scores.encoding),
        "task_digest": np.array(scores.task_digest),
        "method": np.array(scores.method),
        "meta": np.array(canonical_json(dict(scores.meta)).decode("utf-8")),
    }
    atomic_write(dest, lambda fh: np.savez(fh, **arrays), mode=0o600)  # type: ignore[arg-type]
    return dest


def load_scores(
    path: str | os.PathLike[str],
    *,
    task_digest: str | None = None,
    n_items: int | None = None,
    n_outputs: int | None = None,
) -> Scores:
    """Read and validate a scores file.

    Args:
        path: a ``pacda-scores/1`` file.
        task_digest: if given, the scores must be for this task.
        n_items: if given, N must match.
        n_outputs: if given, Z must match.

    Raises:
        InvalidArgument: unreadable file, unknown format version, missing or
            unexpected keys, wrong dtype or shape, non-finite values, malformed
            header or meta, or a mismatch with the expected task, N or Z.
    """
    src = Path(path)
    where = str(src)
    theta0, theta, header, meta_text = _read_npz(src, where)
    _check_arrays(theta0, theta, where=where)
    _check_header(header["task_digest"], header["method"], header["encoding"], where=where)
    scores = Scores(
        theta0=theta0,
        theta=theta,
        task_digest=header["task_digest"],
        method=header["method"],
        meta=_parse_meta(meta_text, where),
        encoding=header["encoding"],
    )
    _check_expected(scores, where, task_digest=task_digest, n_items=n_items, n_outputs=n_outputs)
    return scores


def _read_npz(src: Path, where: str) -> tuple[Any, Any, dict[str, str], str]:
    """``(theta0, theta, header, meta text)`` of a ``pacda-scores/1`` archive, keys checked."""
    _check_zip_magic(src, where)
    try:
        with np.load(src, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [k for k in _KEYS if k not in keys]
            extra = sorted(keys - set(_KEYS))
            if "format" in keys:
                fmt = _string(npz, "format", where)
                if fmt != SCORES_FORMAT:
                    raise InvalidArgument(
                        f"{where}: unsupported scores format {fmt!r} (this pacda reads "
                        f"{SCORES_FORMAT!r})"
                    )
            if missing:
                raise InvalidArgument(f"{where}: not a pacda scores file, missing {missing}")
            if extra:
                raise InvalidArgument(f"{where}: unexpected arrays {extra} in {SCORES_FORMAT}")
            header = {k: _string(npz, k, where) for k in ("encoding", "task_digest", "method")}
            return (
                np.asarray(npz["theta0"]),
                np.asarray(npz["theta"]),
                header,
                _string(npz, "meta", where),
            )
    except FileNotFoundError:
        raise InvalidArgument(f"{where}: no such scores file") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise InvalidArgument(f"{where}: not a readable .npz scores file ({err})") from err
    except ValueError as err:
        if isinstance(err, InvalidArgument):
            raise
        raise InvalidArgument(f"{where}: not a readable .npz scores file ({err})") from err


def _parse_meta(meta_text: str, where: str) -> dict[str, Any]:
    """The ``meta`` string as a JSON object (no NaN or infinity)."""
    try:
        meta = json.loads(meta_text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, InvalidArgument) as err:
        raise InvalidArgument(f"{where}: meta is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise InvalidArgument(f"{where}: meta must be a JSON object, got {type(meta).__name__}")
    return meta


def _check_expected(
    scores: Scores,
    where: str,
    *,
    task_digest: str | None,
    n_items: int | None,
    n_outputs: int | None,
) -> None:
    """The loaded scores are for the expected task, N and Z (each when given)."""
    if task_digest is not None and scores.task_digest != task_digest:
        raise InvalidArgument(
            f"{where}: scores are for task {scores.task_digest}, not for task {task_digest} "
            "(task digest mismatch)"
        )
    if n_items is not None and scores.n_items != n_items:
        raise InvalidArgument(f"{where}: scores have N={scores.n_items} items, expected {n_items}")
    if n_outputs is not None and scores.n_outputs != n_outputs:
        raise InvalidArgument(
            f"{where}: scores have Z={scores.n_outputs} outputs, expected {n_outputs}"
        )


#: First bytes of a zip archive (an .npz) and of a plain .npy array.
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def _check_zip_magic(src: Path, where: str) -> None:
    """One clear error for the usual wrong files: a plain .npy array, a text file."""
    try:
        with src.open("rb") as fh:
            head = fh.read(6)
    except FileNotFoundError:
        raise InvalidArgument(f"{where}: no such scores file") from None
    except OSError as err:
        raise InvalidArgument(f"{where}: cannot read the scores file ({err})") from err
    if head.startswith(_NPY_MAGIC):
        raise InvalidArgument(
            f"{where}: a plain .npy array, not a pacda scores file; turn another tool's "
            "score matrix into one with pacda-prover import-scores (docs/scores.md)"
        )
    if not head.startswith(_ZIP_MAGIC):
        raise InvalidArgument(
            f"{where}: not a pacda scores file (a .npz zip archive; this file is not one)"
        )


def _string(npz: Any, key: str, where: str) -> str:
    arr = np.asarray(npz[key])
    if arr.shape != () or arr.dtype.kind != "U":
        raise InvalidArgument(
            f"{where}: {key} must be a unicode scalar, got dtype {arr.dtype} shape {arr.shape}"
        )
    return str(arr[()])


def _reject_constant(name: str) -> float:
    raise InvalidArgument(f"non-finite number {name} in JSON")
