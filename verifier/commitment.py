"""Receive and check the Prover's attribution commitment (docs/design.md §2, step 2).

The Commit stream is a header, row-major slices of the ``Z x (N+1)`` matrix
``[theta0 | theta]`` (pm encoding: ``g(x) = theta0 + sum_i theta_i x_i``) in
order without gaps or overlaps, and a final seal: the attribution digest and
the Prover's Ed25519 signature over
:func:`protocol.signing.commitment_statement`.  Every check raises a
:class:`protocol.errors.VerificationError` subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocol.digests import AttributionHasher, attribution_digest
from protocol.errors import CommitmentError, InvalidArgument, SignatureError, VerificationError
from protocol.messages import (
    AttributionCommitment,
    AttributionHeader,
    AttributionValues,
    CommitItem,
)
from protocol.signing import commitment_statement, public_key_from_bytes, verify_json
from prover.tasks.device import DEVICE_CLASSES

__all__ = ["Commitment", "attribution_bound", "receive_commitment"]


@dataclass(frozen=True)
class Commitment:
    """A verified attribution commitment.

    Attributes:
        session_id: the Prover's session.
        theta0: float64 ``(Z,)`` intercepts.
        theta: float64 ``(Z, N)`` scores, pm encoding.
        attribution_digest: ``sha256:<hex>`` (recomputed by the Verifier).
        signature: the Prover's 64-byte commitment signature.
        method: attribution method name the Prover declared.
        meta_json: its metadata (not trusted, recorded only).
        device_class: where the Prover trains challenge points, ``"cpu"`` or
            ``"cuda"`` (as it declares: unsigned; it sets the tolerance charged).
        device_name: the Prover's description of that device (recorded only).
    """

    session_id: str
    theta0: NDArray[np.float64]
    theta: NDArray[np.float64]
    attribution_digest: str
    signature: bytes
    method: str
    meta_json: str
    device_class: str = "cpu"
    device_name: str = "cpu"

    @classmethod
    def unsigned(
        cls, theta0: NDArray[np.float64], theta: NDArray[np.float64], *, source: str
    ) -> Commitment:
        """Scores the Verifier holds itself (local mode, replays, benchmarks): no Prover signed.

        ``source`` names where they come from (it is the session id and the method).
        """
        theta0 = np.asarray(theta0, dtype=np.float64)
        theta = np.asarray(theta, dtype=np.float64)
        digest = attribution_digest(theta0, theta)
        return cls(source, theta0, theta, digest, b"", source, "{}")

    def predict(self, x: NDArray[np.int8]) -> NDArray[np.float64]:
        """``g_a(x)`` for pm-encoded subsets ``x`` int8 ``(n, N)``: float64 ``(n, Z)``."""
        return np.asarray(self.theta0[None, :] + x.astype(np.float64) @ self.theta.T)


def attribution_bound(theta0: NDArray[np.float64], theta: NDArray[np.float64]) -> float:
    """``G = max_z (|theta0_z| + sum_i |theta_zi|) >= max |g_a(x)|`` over all of {-1,+1}^N."""
    return float(np.max(np.abs(theta0) + np.abs(theta).sum(axis=1)))


def receive_commitment(
    messages: Iterable[CommitItem],
    *,
    task_digest: str,
    mode: str,
    n_outputs: int,
    n_items: int,
    prover_public_key: bytes,
    max_values: int,
) -> Commitment:
    """Consume a Commit stream and verify it.

    Args:
        messages: the stream (``ProverClient.commit``).
        task_digest: the digest both sides agreed on.
        mode: the mode asked for (part of the signed statement).
        n_outputs, n_items: Z and N of the Verifier's own task.
        prover_public_key: raw 32-byte Ed25519 key from ``DescribeTask``.
        max_values: refuse a matrix larger than this before allocating it.

    Raises:
        CommitmentError: malformed stream, wrong shape, gaps, NaN/inf, digest mismatch.
        SignatureError: the signature does not verify.
    """
    it = iter(messages)
    header = _receive_header(it, n_outputs=n_outputs, n_items=n_items)
    total = n_outputs * (n_items + 1)
    if total > max_values:
        raise CommitmentError(f"Commit stream: {total} values exceed the limit {max_values}")
    matrix = np.empty(total, dtype=np.float64)
    hasher = AttributionHasher(n_outputs=n_outputs, n_items=n_items)
    seal = _receive_values(it, hasher, matrix)
    digest = _checked_digest(hasher, total, seal)
    _verify_signature(header.session_id, task_digest, digest, mode, seal, prover_public_key)
    device_class, device_name = _device(header)
    m = matrix.reshape(n_outputs, n_items + 1)
    return Commitment(
        session_id=header.session_id,
        theta0=m[:, 0].copy(),
        theta=m[:, 1:].copy(),
        attribution_digest=digest,
        signature=seal.signature,
        method=header.method,
        meta_json=header.meta_json,
        device_class=device_class,
        device_name=device_name,
    )


def _receive_header(
    it: Iterator[CommitItem],
    *,
    n_outputs: int,
    n_items: int,
) -> AttributionHeader:
    """The stream's first message: an attribution header of the task's shape."""
    header = next(it, None)
    if not isinstance(header, AttributionHeader):
        raise CommitmentError("Commit stream: the first message must be the attribution header")
    if (header.n_outputs, header.n_items) != (n_outputs, n_items):
        raise CommitmentError(
            f"Commit stream: attributions of shape Z={header.n_outputs}, N={header.n_items} "
            f"do not match the task (Z={n_outputs}, N={n_items})"
        )
    return header


def _receive_values(
    it: Iterator[CommitItem],
    hasher: AttributionHasher,
    matrix: NDArray[np.float64],
) -> AttributionCommitment:
    """The value chunks into ``matrix`` (hashed as they come), then the final seal."""
    seal: AttributionCommitment | None = None
    for msg in it:
        if seal is not None:
            raise CommitmentError("Commit stream: a message follows the commitment")
        if isinstance(msg, AttributionCommitment):
            seal = msg
        elif isinstance(msg, AttributionValues):
            _add_values(msg, hasher, matrix)
        else:
            raise CommitmentError("Commit stream: a second attribution header")
    if seal is None:
        raise CommitmentError("Commit stream ended without the signed commitment")
    return seal


def _checked_digest(hasher: AttributionHasher, total: int, seal: AttributionCommitment) -> str:
    """The digest of the complete matrix, which must equal the one the seal commits to."""
    if hasher.received != total:
        raise CommitmentError(
            f"Commit stream: attribution matrix incomplete ({hasher.received} of {total} values)"
        )
    digest = hasher.hexdigest()
    if seal.attribution_digest != digest:
        raise CommitmentError(
            f"attribution digest mismatch: the Prover committed to {seal.attribution_digest!r}, "
            f"the values received hash to {digest!r}"
        )
    return digest


#: Longest device description kept from a Commit header (the rest is cut).
MAX_DEVICE_NAME = 120


def _device(header: AttributionHeader) -> tuple[str, str]:
    """The Prover's device class (``""`` from older Provers: cpu) and a printable name."""
    cls = header.device_class or "cpu"
    if cls not in DEVICE_CLASSES:
        raise CommitmentError(
            f"Commit header: unknown device class {cls[:40]!r} (expected one of "
            f"{', '.join(DEVICE_CLASSES)})"
        )
    name = "".join(ch for ch in header.device_name if ch.isprintable())[:MAX_DEVICE_NAME]
    return cls, name or cls


def _add_values(
    msg: AttributionValues, hasher: AttributionHasher, matrix: NDArray[np.float64]
) -> None:
    if msg.offset != hasher.received:
        raise CommitmentError(
            f"Commit stream: values at offset {msg.offset}, expected {hasher.received} "
            "(chunks must be contiguous and in order)"
        )
    try:
        hasher.update(msg.values)
    except InvalidArgument as err:
        raise CommitmentError(f"Commit stream: {err}") from None
    matrix[msg.offset : msg.offset + msg.values.size] = msg.values


def _verify_signature(
    session_id: str,
    task_digest: str,
    digest: str,
    mode: str,
    seal: AttributionCommitment,
    prover_public_key: bytes,
) -> None:
    try:
        key = public_key_from_bytes(prover_public_key)
        statement = commitment_statement(
            session_id=session_id, task_digest=task_digest, attribution_digest=digest, mode=mode
        )
        verify_json(key, statement, seal.signature)
    except SignatureError as err:
        raise SignatureError(f"the Prover's commitment signature is invalid: {err}") from None
    except InvalidArgument as err:
        raise VerificationError(f"cannot check the commitment signature: {err}") from None
