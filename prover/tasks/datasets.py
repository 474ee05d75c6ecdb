"""Datasets of the built-in tasks, as float64 numpy arrays with a content hash.

* ``breast_cancer`` (scikit-learn, 569 x 30, shipped with scikit-learn: no
  download): a permutation drawn from ``split_seed`` picks N training points and
  Z test points; labels map to +-1 (malignant = -1, benign = +1).
* a user ``.npz`` with arrays ``X_train (N0, d)``, ``y_train (N0,)``,
  ``X_test (Z0, d)``, ``y_test (Z0,)`` and exactly two label values (the
  smaller maps to -1): the first N training rows and first Z test rows are used.
* ``digits`` (scikit-learn, 1797 x 64, pixels 0..16 scaled to [0, 1]): a
  permutation from ``split_seed`` picks N training and Z test images; labels 0..9.

* images (``cnn``): ``digits`` as ``(n, 8, 8, 1)`` uint8 images (values
  0..16, scaled by 1/16), or a CIFAR-10-layout ``.npz`` with ``X_train uint8
  (N0, H, W, C)``, ``y_train (N0,)`` integer labels, ``X_test uint8 (Z0, H, W,
  C)``, ``y_test (Z0,)`` (pixels scaled by 1/255); the first N training and Z
  test rows are used.  Images are returned channel-first, ``(n, C, H, W)``
  float64 in [0, 1]; the hash covers the selected uint8 images in the
  ``(n, H, W, C)`` layout and the labels as int64.

Standardisation (``logreg``) uses the mean and standard deviation of the N
training rows (population std; a constant feature is left unscaled), applied
to training and test rows alike.  The content hash covers the selected arrays
*before* standardisation (exact copies of the source values, so the hash is the
same on every platform; the standardisation is code, pinned by the version).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import array_digest

__all__ = ["Dataset", "load_digits_split", "load_image_data", "load_logreg_data"]

_NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """Training and test arrays of a task.

    Attributes:
        x_train: float64 ``(N, d)`` features.
        y_train: labels ``(N,)``: float64 +-1 (binary) or int64 classes.
        x_test: float64 ``(Z, d)``.
        y_test: labels ``(Z,)``, same encoding as ``y_train``.
        digest: content hash of the four arrays before any floating-point
            preprocessing.
    """

    x_train: NDArray[np.float64]
    y_train: NDArray[np.generic]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.generic]
    digest: str


def _raw_digest(
    x_train: NDArray[np.float64],
    y_train: NDArray[np.generic],
    x_test: NDArray[np.float64],
    y_test: NDArray[np.generic],
) -> str:
    return array_digest(
        {"X_train": x_train, "y_train": y_train, "X_test": x_test, "y_test": y_test}
    )


def _split(
    n_total: int, n_train: int, n_test: int, split_seed: int, rows: str
) -> tuple[NDArray[np.intp], ...]:
    """Seeded disjoint train/test row indices; ``rows`` names the rows in the error."""
    if n_train + n_test > n_total:
        raise InvalidArgument(
            f"task.data.n_train: n_train + n_outputs must be <= {n_total} "
            f"({rows}), got {n_train} + {n_test}"
        )
    perm = np.random.default_rng(np.random.SeedSequence(split_seed)).permutation(n_total)
    return perm[:n_train], perm[n_train : n_train + n_test]


def _standardize(
    x_train: NDArray[np.float64], x_test: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def _pm_labels(y: NDArray[np.generic], classes: NDArray[np.generic]) -> NDArray[np.float64]:
    return np.where(y == classes[1], 1.0, -1.0)


def _load_npz(path: Path, n_train: int, n_test: int) -> tuple[NDArray[np.float64], ...]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise InvalidArgument(f"task.data.source: {path} lacks arrays {missing}")
            x_tr, y_tr, x_te, y_te = (np.asarray(npz[k]) for k in _NPZ_KEYS)
    except OSError as err:
        raise InvalidArgument(f"task.data.source: cannot read {path}: {err}") from err
    if x_tr.ndim != 2 or x_te.ndim != 2 or x_tr.shape[1] != x_te.shape[1]:
        raise InvalidArgument(
            f"task.data.source: X_train and X_test must be 2-D with equal widths, "
            f"got {x_tr.shape} and {x_te.shape}"
        )
    if y_tr.shape != (len(x_tr),) or y_te.shape != (len(x_te),):
        raise InvalidArgument("task.data.source: y_train/y_test must be 1-D, one label per row")
    if n_train > len(x_tr):
        raise InvalidArgument(
            f"task.data.n_train: expected an integer <= {len(x_tr)} (rows of X_train in "
            f"{path.name}), got {n_train}"
        )
    if n_test > len(x_te):
        raise InvalidArgument(
            f"task.n_outputs: expected an integer <= {len(x_te)} (rows of X_test in "
            f"{path.name}), got {n_test}"
        )
    classes = np.unique(np.concatenate([y_tr, y_te]))
    if len(classes) != 2:
        raise InvalidArgument(
            f"task.data.source: logreg needs exactly two label values, got {len(classes)}"
        )
    x_tr = x_tr[:n_train].astype(np.float64)
    x_te = x_te[:n_test].astype(np.float64)
    if not (np.isfinite(x_tr).all() and np.isfinite(x_te).all()):
        raise InvalidArgument(f"task.data.source: {path.name} has non-finite features")
    return x_tr, _pm_labels(y_tr[:n_train], classes), x_te, _pm_labels(y_te[:n_test], classes)


def load_logreg_data(
    *,
    source: str,
    n_train: int,
    n_test: int,
    split_seed: int,
    standardize: bool,
    base_dir: Path | None,
) -> Dataset:
    """Binary-classification data of ``logreg``: labels float64 +-1."""
    if source == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x_all, y_all = load_breast_cancer(return_X_y=True)
        tr, te = _split(len(x_all), n_train, n_test, split_seed, "breast_cancer rows")
        x_tr, x_te = x_all[tr].astype(np.float64), x_all[te].astype(np.float64)
        classes = np.array([0, 1])
        y_tr, y_te = _pm_labels(y_all[tr], classes), _pm_labels(y_all[te], classes)
    else:
        path = Path(source) if base_dir is None else base_dir / source
        x_tr, y_tr, x_te, y_te = _load_npz(path, n_train, n_test)
    digest = _raw_digest(x_tr, y_tr, x_te, y_te)
    if standardize:
        x_tr, x_te = _standardize(x_tr, x_te)
    return Dataset(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, digest=digest)


def load_digits_split(*, n_train: int, n_test: int, split_seed: int) -> Dataset:
    """scikit-learn digits: features float64 in [0, 1] ``(., 64)``, labels int64 0..9."""
    from sklearn.datasets import load_digits

    x_all, y_all = load_digits(return_X_y=True)
    tr, te = _split(len(x_all), n_train, n_test, split_seed, "digits images")
    x_all = x_all.astype(np.float64)
    y_all = y_all.astype(np.int64)
    digest = _raw_digest(x_all[tr], y_all[tr], x_all[te], y_all[te])
    return Dataset(
        x_train=x_all[tr] / 16.0,  # exact: division by a power of two
        y_train=y_all[tr],
        x_test=x_all[te] / 16.0,
        y_test=y_all[te],
        digest=digest,
    )


def _int_labels(where: str, y: NDArray[np.generic], n: int, n_classes: int) -> NDArray[np.int64]:
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise InvalidArgument(
            f"task.data.source: {where} must be integer labels of shape ({n},), "
            f"got {y.dtype} {y.shape}"
        )
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise InvalidArgument(
            f"task.data.n_classes: {where} has labels in [{y.min()}, {y.max()}], "
            f"outside [0, {n_classes})"
        )
    return y.astype(np.int64)


def _load_image_npz(
    path: Path, n_train: int, n_test: int, n_classes: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = list(npz.files)
            arrays = {k: np.asarray(npz[k]) for k in _NPZ_KEYS if k in files}
    except (OSError, ValueError, EOFError) as err:
        raise InvalidArgument(f"task.data.source: cannot read {path}: {err}") from err
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise InvalidArgument(f"task.data.source: {path} lacks arrays {missing}")
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in _NPZ_KEYS)
    for name, x in (("X_train", x_tr), ("X_test", x_te)):
        if x.ndim != 4 or x.dtype != np.uint8 or min(x.shape[1:]) < 1:
            raise InvalidArgument(
                f"task.data.source: {name} in {path.name} must be uint8 images (n, H, W, C) "
                f"as in CIFAR-10's (n, 32, 32, 3), got {x.dtype} {x.shape}"
            )
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise InvalidArgument(
            f"task.data.source: X_train and X_test in {path.name} must have the same image "
            f"shape, got {x_tr.shape[1:]} and {x_te.shape[1:]}"
        )
    y_tr = _int_labels("y_train", y_tr, len(x_tr), n_classes)
    y_te = _int_labels("y_test", y_te, len(x_te), n_classes)
    if n_train > len(x_tr):
        raise InvalidArgument(
            f"task.data.n_train: expected an integer <= {len(x_tr)} (rows of X_train in "
            f"{path.name}), got {n_train}"
        )
    if n_test > len(x_te):
        raise InvalidArgument(
            f"task.n_outputs: expected an integer <= {len(x_te)} (rows of X_test in "
            f"{path.name}), got {n_test}"
        )
    return x_tr[:n_train], y_tr[:n_train], x_te[:n_test], y_te[:n_test]


def load_image_data(
    *,
    source: str,
    n_train: int,
    n_test: int,
    split_seed: int,
    n_classes: int,
    base_dir: Path | None,
) -> Dataset:
    """Image-classification data of ``cnn``.

    Returns:
        a :class:`Dataset` with ``x_train (N, C, H, W)`` and ``x_test (Z, C, H,
        W)`` float64 in [0, 1] (channel-first) and int64 labels; its digest
        covers the selected uint8 images ``(n, H, W, C)`` and int64 labels.

    Raises:
        InvalidArgument: unreadable file, missing arrays, wrong shapes or dtypes
            (images must be uint8 ``(n, H, W, C)``), labels outside
            ``[0, n_classes)``, or too few rows; the message names the field.
    """
    if source == "digits":
        from sklearn.datasets import load_digits

        x_all, y_all = load_digits(return_X_y=True)
        tr, te = _split(len(x_all), n_train, n_test, split_seed, "digits images")
        images = x_all.reshape(-1, 8, 8, 1).astype(np.uint8)  # exact: values 0..16
        x_tr, x_te = images[tr], images[te]
        y_tr = _int_labels("digits labels", y_all[tr], len(tr), n_classes)
        y_te = _int_labels("digits labels", y_all[te], len(te), n_classes)
        scale = 16.0
    else:
        path = Path(source) if base_dir is None else base_dir / source
        x_tr, y_tr, x_te, y_te = _load_image_npz(path, n_train, n_test, n_classes)
        scale = 255.0
    digest = array_digest({"X_train": x_tr, "y_train": y_tr, "X_test": x_te, "y_test": y_te})
    return Dataset(  # channel-first and C-contiguous (torch reads the strides)
        x_train=np.ascontiguousarray(x_tr.transpose(0, 3, 1, 2), dtype=np.float64) / scale,
        y_train=y_tr,
        x_test=np.ascontiguousarray(x_te.transpose(0, 3, 1, 2), dtype=np.float64) / scale,
        y_test=y_te,
        digest=digest,
    )
