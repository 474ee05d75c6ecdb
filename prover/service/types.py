"""Domain messages of the Prover service: what handlers take and yield.

They mirror ``protos/pacda/v1/prover.proto`` field by field, but hold numpy
arrays and plain Python values; only :mod:`prover.service.servicer` converts
between them and protobuf.  Encodings: attributions pm (docs/design.md §1), outputs
float64, weights float64 little-endian bytes, digests raw 32-byte SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AttributionCommitment",
    "AttributionHeader",
    "AttributionValues",
    "ChallengeRequest",
    "CommitItem",
    "Opening",
    "ResultBatch",
    "ResultItem",
    "ResultRoot",
    "TaskDescription",
]


@dataclass(frozen=True, kw_only=True)
class TaskDescription:
    """Answer of DescribeTask.

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


@dataclass(frozen=True, kw_only=True)
class AttributionHeader:
    """First message of Commit: the fresh session id and token, and the matrix shape (Z, N).

    ``session_token`` is a secret of the Verifier that opened the session: its
    Challenge, Open and Close requests must carry it.  ``device_class``
    (``"cpu"`` or ``"cuda"``) is where the Prover trains challenge points, which
    sets the tolerance the Verifier charges; ``device_name`` describes it
    (``"cpu"``, ``"cuda:0 NVIDIA H200"``).
    """

    session_id: str
    session_token: bytes
    n_outputs: int
    n_items: int
    method: str
    meta_json: str
    device_class: str = "cpu"
    device_name: str = "cpu"


@dataclass(frozen=True, kw_only=True)
class AttributionValues:
    """A row-major slice of the Z x (N+1) matrix ``[theta0 | theta]`` from flat ``offset``."""

    offset: int
    values: NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class AttributionCommitment:
    """Last message of Commit: the attribution digest and the Prover's signature."""

    attribution_digest: str
    signature: bytes


CommitItem = AttributionHeader | AttributionValues | AttributionCommitment


@dataclass(frozen=True, kw_only=True)
class ChallengeRequest:
    """A challenge as received (validated by :func:`prover.service.plan.plan_from_request`).

    Attributes:
        session_id: from the Commit header.
        seed: the 32-byte challenge seed.
        p: inclusion probability; must equal the task's.
        nodes: rho_j, one per node.
        pairs_per_node: pairs at each node; pairs are interleaved (protocol.challenge).
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


@dataclass(frozen=True, kw_only=True)
class ResultBatch:
    """Results of points ``first_point .. first_point + n - 1``.

    Attributes:
        first_point: index of the first point.
        outputs: float64 ``(n, Z)``.
        weight_digests: uint8 ``(n, 32)``.
    """

    first_point: int
    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]


@dataclass(frozen=True, kw_only=True)
class ResultRoot:
    """Last message of Challenge: the Merkle root over all results and its signature."""

    merkle_root: bytes
    n_leaves: int
    signature: bytes


ResultItem = ResultBatch | ResultRoot


@dataclass(frozen=True, kw_only=True)
class Opening:
    """One spot-checked point.

    Attributes:
        point_index: the point.
        outputs: float64 ``(Z,)``, as in its batch.
        weight_digest: 32 bytes.
        weights: float64 little-endian bytes of the ``P`` trained weights (empty if P = 0).
        proof: RFC 6962 audit path, leaf to root.
    """

    point_index: int
    outputs: NDArray[np.float64]
    weight_digest: bytes
    weights: bytes
    proof: tuple[bytes, ...]
