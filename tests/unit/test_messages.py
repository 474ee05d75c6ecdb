"""protocol.messages and its serde: from_proto(to_proto(m)) == m for every message."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacda.v1 import prover_pb2 as pb
from protocol.errors import VerificationError
from protocol.messages import (
    AttributionCommitment,
    AttributionHeader,
    AttributionValues,
    ChallengeRequest,
    CloseRequest,
    CommitRequest,
    Message,
    Opening,
    OpenRequest,
    ResultBatch,
    ResultRoot,
    TaskDescription,
)
from protocol.messages_proto import (
    from_commit_chunk,
    from_proto,
    from_result_chunk,
    to_commit_chunk,
    to_proto,
    to_result_chunk,
)

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
TEXT = st.text(max_size=40)
BLOB = st.binary(max_size=64)
DOUBLES = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=30)
DIGEST = st.binary(min_size=32, max_size=32)
EMPTY = hashlib.sha256(b"").digest()


def _array(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        TaskDescription,
        task_toml=TEXT,
        task_digest=TEXT,
        pacda_version=TEXT,
        prover_public_key=BLOB,
        modes=st.lists(TEXT, max_size=3).map(tuple),
    ),
    st.builds(CommitRequest, task_digest=TEXT, mode=TEXT),
    st.builds(
        AttributionHeader,
        session_id=TEXT,
        n_outputs=U32,
        n_items=U32,
        method=TEXT,
        meta_json=TEXT,
        session_token=BLOB,
        device_class=st.sampled_from(["", "cpu", "cuda", "tpu"]),
        device_name=TEXT,
    ),
    st.builds(AttributionValues, offset=U64, values=DOUBLES.map(_array)),
    st.builds(AttributionCommitment, attribution_digest=TEXT, signature=BLOB),
    st.builds(
        ChallengeRequest,
        session_id=TEXT,
        seed=BLOB,
        p=st.floats(width=64),
        nodes=st.lists(st.floats(width=64), max_size=5).map(tuple),
        pairs_per_node=st.lists(U64, max_size=5).map(tuple),
        start_point=U64,
        chunk_points=U32,
        session_token=BLOB,
    ),
    st.builds(
        ResultBatch,
        first_point=U64,
        n_points=U32,
        outputs=DOUBLES.map(_array),
        weight_digests=st.lists(BLOB, max_size=4).map(tuple),
    ),
    st.builds(ResultRoot, merkle_root=BLOB, n_leaves=U64, signature=BLOB),
    st.builds(
        OpenRequest,
        session_id=TEXT,
        point_indices=st.lists(U64, max_size=6).map(tuple),
        session_token=BLOB,
    ),
    st.builds(
        Opening,
        point_index=U64,
        outputs=DOUBLES.map(_array),
        weight_digest=BLOB,
        weights=BLOB,
        proof=st.lists(DIGEST, max_size=4).map(tuple),
    ),
    st.builds(CloseRequest, session_id=TEXT, session_token=BLOB),
)


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_every_message_round_trips(msg: Message) -> None:
    wire = to_proto(msg)  # type: ignore[call-overload]
    assert type(wire).__name__ == type(msg).__name__
    back = from_proto(pb.__dict__[type(msg).__name__].FromString(wire.SerializeToString()))
    assert back == msg
    assert hash(back) == hash(msg)


#: Representative values of every message, with the edge cases spelled out.
EXAMPLES: list[Message] = [
    TaskDescription(
        task_toml='kind = "synthetic"\n',
        task_digest="sha256:" + "ab" * 32,
        pacda_version="0.1.0",
        prover_public_key=bytes(range(32)),
        modes=("committed", "paper"),
    ),
    TaskDescription(
        task_toml="", task_digest="", pacda_version="", prover_public_key=b"", modes=()
    ),
    CommitRequest(task_digest="sha256:00", mode="committed"),
    AttributionHeader("sid", 2, 5, "datamodel", "{}", b"t" * 32, "cuda", "cuda:0 NVIDIA H200"),
    AttributionHeader("sid", 2, 5, "datamodel", "{}"),  # older Prover: no token, no device
    AttributionValues(0, np.array([1.5, -0.0, 0.0, 1e-300, -1e300])),
    AttributionValues(7, np.zeros(0)),  # empty chunk
    AttributionCommitment("sha256:" + "cd" * 32, b"s" * 64),
    ChallengeRequest("sid", b"\x01" * 32, 0.5, (0.25, -0.5, 1.0), (3, 0, 2), 4, 16, b"t" * 32),
    ChallengeRequest("sid", b"", 0.0, (), ()),
    ResultBatch.of_points(
        10, np.arange(6.0).reshape(3, 2), np.arange(96, dtype=np.uint8).reshape(3, 32)
    ),
    ResultBatch(0, 0, np.zeros(0), ()),  # empty batch
    ResultBatch(5, 3, np.array([math.nan, math.inf]), (b"short",)),  # hostile: inconsistent
    ResultRoot(b"\x02" * 32, 26, b"s" * 64),
    ResultRoot(EMPTY, 0, b""),
    OpenRequest("sid", (3, 1, 2), b"t" * 32),
    OpenRequest("sid", ()),
    Opening(4, np.array([0.25, -1.0]), EMPTY, b"", ()),  # no weights, one-leaf tree
    Opening(
        9, np.array([1.0]), b"\x03" * 32, np.arange(4.0).astype("<f8").tobytes(), (b"\x04" * 32,)
    ),
    CloseRequest("sid", b"t" * 32),
    CloseRequest(""),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_representative_messages_round_trip(msg: Message) -> None:
    wire = to_proto(msg)  # type: ignore[call-overload]
    again = type(wire).FromString(wire.SerializeToString())
    assert from_proto(again) == msg
    assert to_proto(from_proto(again)).SerializeToString() == wire.SerializeToString()  # type: ignore[call-overload]


def test_commit_and_result_chunks_round_trip() -> None:
    for item in EXAMPLES:
        if isinstance(item, AttributionHeader | AttributionValues | AttributionCommitment):
            chunk = pb.CommitChunk.FromString(to_commit_chunk(item).SerializeToString())
            assert from_commit_chunk(chunk) == item
        if isinstance(item, ResultBatch | ResultRoot):
            chunk_r = pb.ResultChunk.FromString(to_result_chunk(item).SerializeToString())
            assert from_result_chunk(chunk_r) == item


def test_chunks_without_a_body_are_refused() -> None:
    with pytest.raises(VerificationError, match="CommitChunk has no body"):
        from_commit_chunk(pb.CommitChunk())
    with pytest.raises(VerificationError, match="ResultChunk has no body"):
        from_result_chunk(pb.ResultChunk())


def test_result_batch_of_points_is_the_wire_layout() -> None:
    outputs = np.array([[1.0, 2.0], [3.0, 4.0]])
    digests = np.stack([np.full(32, 1, np.uint8), np.full(32, 2, np.uint8)])
    batch = ResultBatch.of_points(6, outputs, digests)
    assert (batch.first_point, batch.n_points) == (6, 2)
    assert batch.outputs.tolist() == [1.0, 2.0, 3.0, 4.0]  # point-major
    assert batch.weight_digests == (b"\x01" * 32, b"\x02" * 32)
    wire = to_proto(batch)
    assert list(wire.outputs) == [1.0, 2.0, 3.0, 4.0] and wire.n_points == 2
    with pytest.raises(ValueError, match=r"\(n, 32\)"):
        ResultBatch.of_points(0, outputs, digests[:1])


def test_equality_is_exact_and_by_type() -> None:
    a = AttributionValues(0, np.array([0.0]))
    assert a != AttributionValues(0, np.array([-0.0]))  # bitwise, not numeric
    assert AttributionValues(0, np.array([math.nan])) == AttributionValues(0, np.array([math.nan]))
    assert a != AttributionValues(1, np.array([0.0]))
    assert CloseRequest("s") != OpenRequest("s", ())
    assert AttributionValues(0, [1, 2]).values.dtype == np.float64  # type: ignore[arg-type]


def test_messages_are_frozen() -> None:
    root = ResultRoot(b"r", 1, b"s")
    with pytest.raises(AttributeError):
        root.n_leaves = 2  # type: ignore[misc]


def test_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError):
        to_proto(object())  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        from_proto(pb.DescribeTaskRequest())  # type: ignore[call-overload]
