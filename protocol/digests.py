"""Byte-exact digests of trained weights and of committed attribution matrices.

Both digests are part of the wire contract (``protos/pacda/v1/prover.proto``):

* the *weight digest* of one trained model is SHA-256 (FIPS 180-4) over its
  flat float64 parameter vector, shape ``(P,)``, in **little-endian** byte
  order — the exact bytes of ``Opening.weights``.  It is the same rule as
  :func:`prover.store.keys.weight_digests` (one row there is one digest here);
  ``P = 0`` gives SHA-256 of the empty string.
* the *attribution digest* names the Z x (N+1) matrix ``[theta0 | theta]``
  (pm encoding, docs/design.md §1: ``g(x) = theta0 + sum_i theta_i x_i`` with
  ``x_i in {-1, +1}``) that the Prover commits to before the challenge::

      "sha256:" + hex(SHA-256("pacda.v1.attributions\\x00" || u32be(Z) || u32be(N)
                              || float64 big-endian matrix, row-major))

  Element ``(z, j)`` sits at flat index ``z * (N + 1) + j``, ``j = 0`` being
  ``theta0[z]`` — the order of ``AttributionValues`` on the wire, so a
  Verifier can hash a streamed matrix chunk by chunk with
  :class:`AttributionHasher`.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument

__all__ = [
    "ATTRIBUTION_DOMAIN",
    "DIGEST_BYTES",
    "AttributionHasher",
    "attribution_digest",
    "attribution_matrix_digest",
    "weight_digest",
    "weights_from_bytes",
]

DIGEST_BYTES = 32
ATTRIBUTION_DOMAIN = b"pacda.v1.attributions\x00"
_U32_MAX = 2**32 - 1


def weight_digest(weights: NDArray[np.float64]) -> bytes:
    """SHA-256 of a model's flat weights as float64 little-endian bytes.

    Args:
        weights: float64 ``(P,)`` (any real dtype is converted to float64
            first, as in :func:`prover.store.keys.weight_digests`); ``P = 0``
            is allowed.

    Returns:
        The 32 raw digest bytes.

    Raises:
        InvalidArgument: ``weights`` is not one-dimensional or not real-valued.
    """
    arr = np.asarray(weights)
    if arr.ndim != 1:
        raise InvalidArgument(f"weights must be one-dimensional (P,), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise InvalidArgument(f"weights must be real numbers, got dtype {arr.dtype}")
    le = np.ascontiguousarray(arr, dtype="<f8")
    return hashlib.sha256(le.tobytes()).digest()


def weights_from_bytes(raw: bytes) -> NDArray[np.float64]:
    """Decode wire weights (float64 little-endian, ``Opening.weights``) to ``(P,)`` float64.

    Raises:
        InvalidArgument: the length is not a multiple of 8 bytes.
    """
    if len(raw) % 8:
        raise InvalidArgument(
            f"weights must be float64 little-endian: {len(raw)} bytes is not a multiple of 8"
        )
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


def _check_shape(n_outputs: int, n_items: int) -> None:
    if not 1 <= n_outputs <= _U32_MAX:
        raise InvalidArgument(f"number of outputs Z must lie in [1, 2^32 - 1], got {n_outputs}")
    if not 1 <= n_items <= _U32_MAX:
        raise InvalidArgument(f"number of items N must lie in [1, 2^32 - 1], got {n_items}")


def _finite_block(name: str, values: NDArray[np.float64]) -> None:
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise InvalidArgument(f"{name} contains NaN or infinite values (first at index {where})")


def attribution_matrix_digest(matrix: NDArray[np.float64]) -> str:
    """Attribution digest of the Z x (N+1) matrix ``[theta0 | theta]`` (see module docstring).

    Args:
        matrix: float64 ``(Z, N + 1)``, column 0 is ``theta0``, pm encoding.

    Returns:
        ``"sha256:<hex>"``.

    Raises:
        InvalidArgument: wrong shape, non-real dtype or a non-finite entry.
    """
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise InvalidArgument(
            f"attribution matrix must have shape (Z, N + 1) with N >= 1, got {arr.shape}"
        )
    if arr.dtype.kind not in "fiu":
        raise InvalidArgument(f"attributions must be real numbers, got dtype {arr.dtype}")
    hasher = AttributionHasher(n_outputs=arr.shape[0], n_items=arr.shape[1] - 1)
    hasher.update(arr.reshape(-1))
    return hasher.hexdigest()


def attribution_digest(theta0: NDArray[np.float64], theta: NDArray[np.float64]) -> str:
    """Attribution digest of intercepts ``theta0 (Z,)`` and scores ``theta (Z, N)``.

    The matrix hashed is ``[theta0 | theta]`` in float64 big-endian row-major
    order after the domain tag and ``u32be(Z) || u32be(N)`` (module docstring).

    Args:
        theta0: float64 ``(Z,)``, the intercepts of the linear datamodels.
        theta: float64 ``(Z, N)``, the attribution scores (pm encoding).

    Returns:
        ``"sha256:<hex>"``.

    Raises:
        InvalidArgument: shapes disagree, Z or N is zero, or an entry is not finite.
    """
    t0 = np.asarray(theta0)
    th = np.asarray(theta)
    if t0.ndim != 1:
        raise InvalidArgument(f"theta0 must have shape (Z,), got {t0.shape}")
    if th.ndim != 2 or th.shape[0] != t0.shape[0]:
        raise InvalidArgument(f"theta must have shape ({t0.shape[0]}, N), got {th.shape}")
    for name, arr in (("theta0", t0), ("theta", th)):
        if arr.dtype.kind not in "fiu":
            raise InvalidArgument(f"{name} must be real numbers, got dtype {arr.dtype}")
    _check_shape(th.shape[0], th.shape[1])
    t0f = t0.astype(np.float64)
    thf = th.astype(np.float64)
    _finite_block("theta0", t0f)
    _finite_block("theta", thf)
    return attribution_matrix_digest(np.concatenate([t0f[:, None], thf], axis=1))


class AttributionHasher:
    """Incremental attribution digest over a row-major stream of matrix values.

    Feed the flattened ``Z x (N + 1)`` matrix in order (e.g. the
    ``AttributionValues`` chunks of a ``Commit`` stream); :meth:`hexdigest`
    refuses to finish before exactly ``Z (N + 1)`` values arrived.

    Args:
        n_outputs: Z >= 1.
        n_items: N >= 1.
    """

    def __init__(self, *, n_outputs: int, n_items: int) -> None:
        _check_shape(n_outputs, n_items)
        self.n_outputs = n_outputs
        self.n_items = n_items
        self.total = n_outputs * (n_items + 1)
        self.received = 0
        self._hash = hashlib.sha256(ATTRIBUTION_DOMAIN + struct.pack(">II", n_outputs, n_items))

    def update(self, values: NDArray[np.float64]) -> None:
        """Hash the next ``len(values)`` flat values (one-dimensional, finite).

        Raises:
            InvalidArgument: not 1-D, non-finite, or more values than the matrix holds.
        """
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise InvalidArgument(f"attribution values must be one-dimensional, got {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise InvalidArgument(f"attributions must be real numbers, got dtype {arr.dtype}")
        if self.received + arr.size > self.total:
            raise InvalidArgument(
                f"too many attribution values: {self.received + arr.size} > Z (N + 1) = "
                f"{self.total}"
            )
        be = np.ascontiguousarray(arr, dtype=">f8")
        if not np.all(np.isfinite(be)):
            bad = int(np.argmax(~np.isfinite(be)))
            raise InvalidArgument(
                f"attribution value at flat index {self.received + bad} is NaN or infinite"
            )
        self._hash.update(be.tobytes())
        self.received += arr.size

    def hexdigest(self) -> str:
        """``"sha256:<hex>"`` of the complete matrix.

        Raises:
            InvalidArgument: fewer than ``Z (N + 1)`` values were fed.
        """
        if self.received != self.total:
            raise InvalidArgument(
                f"attribution matrix incomplete: {self.received} of {self.total} values"
            )
        return "sha256:" + self._hash.copy().hexdigest()
