"""The messages of ``pacda.v1.Prover`` as frozen domain objects: one set for both sides.

One dataclass per message of ``protos/pacda/v1/prover.proto`` that carries
data, with the proto's name and its fields in field-number order (so positional
construction follows the proto).  Fields hold plain numbers, strings, bytes,
tuples and float64 numpy arrays, never protobuf objects: the Prover's handlers
yield them and the Verifier's checks consume them.  The conversion to and from
the generated ``pacda.v1`` classes, both directions for every message, is
:mod:`protocol.messages_proto` (the Prover's servicer and the Verifier's
client are the two halves of that one serde).  This module imports neither
protobuf, grpc nor torch.

Encodings (docs/wire.md): attributions in the pm encoding, outputs float64,
weights float64 little-endian bytes, digests raw 32-byte SHA-256.  The
messages mirror the wire as sent, not as checked: a :class:`ResultBatch`
carries ``n_points`` and its flat outputs separately, because a hostile Prover
may send them inconsistent and the Verifier must see that
(:mod:`verifier.results`).

Equality is by value: two messages are equal when their fields are, arrays
compared bit for bit (arrays by dtype, shape and bytes, floats by their IEEE 754
bits: ``-0.0 != 0.0``, a NaN equals the same NaN), so ``from_proto(to_proto(m))
== m`` states an exact round trip.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AttributionCommitment",
    "AttributionHeader",
    "AttributionValues",
    "ChallengeRequest",
    "CloseRequest",
    "CommitItem",
    "CommitRequest",
    "Message",
    "OpenRequest",
    "Opening",
    "ResultBatch",
    "ResultItem",
    "ResultRoot",
    "TaskDescription",
]


def _key(value: object) -> object:
    """A hashable, exactly comparable stand-in for a field value (arrays by their bits)."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, tuple):
        return tuple(_key(v) for v in value)
    return value


class Message:
    """Base of the domain messages: equality and hashing by field values, arrays bitwise."""

    def _keys(self) -> tuple[object, ...]:
        return tuple(_key(getattr(self, f.name)) for f in dataclasses.fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Message)
        return self._keys() == other._keys()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._keys()))


def _float64(values: ArrayLike) -> NDArray[np.float64]:
    """``values`` as a float64 array (no copy when it already is one)."""
    return np.asarray(values, dtype=np.float64)


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


@dataclass(frozen=True, eq=False)
class TaskDescription(Message):
    """Answer of ``DescribeTask``.

    Attributes:
        task_toml: the task file text as the Prover loaded it.
        task_digest: ``sha256:<hex>`` (:mod:`protocol.taskspec`).
        pacda_version: the Prover's pacda version.
        prover_public_key: raw 32-byte Ed25519 public key.
        modes: protocol modes served, e.g. ``("committed", "paper")``.
    """

    task_toml: str
    task_digest: str
    pacda_version: str
    prover_public_key: bytes
    modes: tuple[str, ...]

    def __post_init__(self) -> None:
        _set(self, "modes", tuple(self.modes))


@dataclass(frozen=True, eq=False)
class CommitRequest(Message):
    """Request of ``Commit``: the task both sides agreed on and the protocol mode.

    Attributes:
        task_digest: must equal the Prover's.
        mode: ``"committed"`` or ``"paper"``.
    """

    task_digest: str
    mode: str


@dataclass(frozen=True, eq=False)
class AttributionHeader(Message):
    """First message of ``Commit``: the fresh session, the matrix shape (Z, N) and the device.

    Attributes:
        session_id: fresh, random, unique per Commit call.
        n_outputs: Z.
        n_items: N.
        method: the attribution method, e.g. ``"datamodel"``.
        meta_json: the scores file's ``meta`` as canonical JSON.
        session_token: 32 random bytes, a secret of the Verifier that opened the
            session: its Challenge, Open and Close requests must carry it.
        device_class: where the Prover trains challenge points, ``"cpu"`` or
            ``"cuda"``; ``""`` (the proto default, older Provers) means ``"cpu"``.
            It sets the tolerance the Verifier charges; not signed.
        device_name: a description of that device (``"cpu"``, ``"cuda:0 NVIDIA H200"``).
    """

    session_id: str
    n_outputs: int
    n_items: int
    method: str
    meta_json: str
    session_token: bytes = b""
    device_class: str = ""
    device_name: str = ""


@dataclass(frozen=True, eq=False)
class AttributionValues(Message):
    """A row-major slice of the ``Z x (N+1)`` matrix ``[theta0 | theta]``.

    Attributes:
        offset: flat index of the first value (element (z, j) is at ``z (N+1) + j``).
        values: float64 ``(k,)``; may be empty.
    """

    offset: int
    values: NDArray[np.float64]

    def __post_init__(self) -> None:
        _set(self, "values", _float64(self.values).reshape(-1))


@dataclass(frozen=True, eq=False)
class AttributionCommitment(Message):
    """Last message of ``Commit``: the attribution digest and the Prover's signature.

    Attributes:
        attribution_digest: ``sha256:<hex>`` (:func:`protocol.digests.attribution_digest`).
        signature: Ed25519 over :func:`protocol.signing.commitment_statement`.
    """

    attribution_digest: str
    signature: bytes


#: One message of the ``Commit`` stream (a ``CommitChunk``'s body).
CommitItem = AttributionHeader | AttributionValues | AttributionCommitment


@dataclass(frozen=True, eq=False)
class ChallengeRequest(Message):
    """Request of ``Challenge`` (validated by the Prover's ``plan_from_request``).

    Attributes:
        session_id: from the Commit header.
        seed: the 32-byte challenge seed.
        p: inclusion probability; must equal the task's.
        nodes: rho_j, one per node.
        pairs_per_node: pairs at each node; pairs are interleaved (:mod:`protocol.challenge`).
        start_point: first point to stream (resume), ``0 <= start_point <= n_points``.
        chunk_points: points per result batch wanted; 0 means the server default.
        session_token: the token of the session's Commit header.
    """

    session_id: str
    seed: bytes
    p: float
    nodes: tuple[float, ...]
    pairs_per_node: tuple[int, ...]
    start_point: int = 0
    chunk_points: int = 0
    session_token: bytes = b""

    def __post_init__(self) -> None:
        _set(self, "nodes", tuple(float(r) for r in self.nodes))
        _set(self, "pairs_per_node", tuple(int(n) for n in self.pairs_per_node))


@dataclass(frozen=True, eq=False)
class ResultBatch(Message):
    """Results of points ``first_point .. first_point + n_points - 1``, as sent.

    Attributes:
        first_point: index of the first point.
        n_points: points in the batch, as the Prover states it.
        outputs: float64, flat, point-major: ``n_points x Z`` values when well
            formed (the Verifier checks and reshapes it).
        weight_digests: one 32-byte digest per point when well formed.
    """

    first_point: int
    n_points: int
    outputs: NDArray[np.float64]
    weight_digests: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _set(self, "outputs", _float64(self.outputs).reshape(-1))
        _set(self, "weight_digests", tuple(bytes(d) for d in self.weight_digests))

    @classmethod
    def of_points(
        cls, first_point: int, outputs: ArrayLike, weight_digests: ArrayLike
    ) -> ResultBatch:
        """The batch of ``n`` points from their outputs ``(n, Z)`` and digests uint8 ``(n, 32)``."""
        out = _float64(outputs)
        digests = np.asarray(weight_digests, dtype=np.uint8)
        if out.ndim != 2 or digests.shape != (len(out), 32):
            raise ValueError(
                f"outputs must be (n, Z) and weight digests (n, 32), got {out.shape} "
                f"and {digests.shape}"
            )
        return cls(
            first_point=first_point,
            n_points=len(out),
            outputs=out.reshape(-1).copy(),
            weight_digests=tuple(row.tobytes() for row in digests),
        )


@dataclass(frozen=True, eq=False)
class ResultRoot(Message):
    """Last message of ``Challenge``: the Merkle root over all results and its signature.

    Attributes:
        merkle_root: RFC 6962 root over :func:`protocol.merkle.result_leaf` of every point.
        n_leaves: the number of points.
        signature: Ed25519 over :func:`protocol.signing.root_statement`.
    """

    merkle_root: bytes
    n_leaves: int
    signature: bytes


#: One message of the ``Challenge`` stream (a ``ResultChunk``'s body).
ResultItem = ResultBatch | ResultRoot


@dataclass(frozen=True, eq=False)
class OpenRequest(Message):
    """Request of ``Open``: the spot-checked points of a session.

    Attributes:
        session_id: from the Commit header.
        point_indices: the points to open, in the order their openings come back.
        session_token: the token of the session's Commit header.
    """

    session_id: str
    point_indices: tuple[int, ...]
    session_token: bytes = b""

    def __post_init__(self) -> None:
        _set(self, "point_indices", tuple(int(i) for i in self.point_indices))


@dataclass(frozen=True, eq=False)
class Opening(Message):
    """One opened spot check.

    Attributes:
        point_index: the point.
        outputs: float64 ``(Z,)``, as in its batch.
        weight_digest: 32 bytes.
        weights: float64 little-endian bytes of the ``P`` trained weights (empty if P = 0).
        proof: RFC 6962 audit path, leaf sibling first.
    """

    point_index: int
    outputs: NDArray[np.float64]
    weight_digest: bytes
    weights: bytes
    proof: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _set(self, "outputs", _float64(self.outputs).reshape(-1))
        _set(self, "proof", tuple(bytes(h) for h in self.proof))


@dataclass(frozen=True, eq=False)
class CloseRequest(Message):
    """Request of ``Close``: the audit is over, the Prover may free the session.

    Attributes:
        session_id: from the Commit header.
        session_token: the token of the session's Commit header.
    """

    session_id: str
    session_token: bytes = b""
