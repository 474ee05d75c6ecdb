"""Unit tests of the Verifier's pure pieces: config validation, spot-check draws, receipt."""

from __future__ import annotations

import numpy as np
import pytest

from protocol.digests import attribution_digest
from protocol.errors import CommitmentError, InvalidArgument, SignatureError
from protocol.messages import AttributionCommitment, AttributionHeader, AttributionValues
from protocol.signing import commitment_statement, generate_private_key, public_key_bytes, sign_json
from verifier.commitment import attribution_bound, receive_commitment
from verifier.config import AuditConfig
from verifier.spotcheck import draw_spot_checks

DIGEST = "sha256:" + "ab" * 32


def test_config_rejects_bad_values() -> None:
    with pytest.raises(InvalidArgument, match="epsilon must be finite and > 0"):
        AuditConfig(epsilon=0.0, delta=0.1)
    with pytest.raises(InvalidArgument, match=r"delta must lie in \(0, 1\)"):
        AuditConfig(epsilon=1.0, delta=1.0)
    with pytest.raises(InvalidArgument, match="mode must be 'committed' or 'paper'"):
        AuditConfig(epsilon=1.0, delta=0.1, mode="local")  # type: ignore[arg-type]


def test_spot_checks_are_distinct_sorted_and_in_range() -> None:
    rng = np.random.default_rng(1)
    idx = draw_spot_checks(rng, 100, 40)
    assert len(set(idx.tolist())) == 40 and np.all(np.diff(idx) > 0)
    assert idx.min() >= 0 and idx.max() < 100
    with pytest.raises(InvalidArgument, match="cannot draw 101 spot checks from 100 points"):
        draw_spot_checks(rng, 100, 101)


def _stream(theta0, theta, key, *, sid="s1", mode="committed", tamper=None):  # type: ignore[no-untyped-def]
    m = np.concatenate([theta0[:, None], theta], axis=1).reshape(-1)
    digest = attribution_digest(theta0, theta)
    msgs: list[object] = [AttributionHeader(sid, theta.shape[0], theta.shape[1], "x", "{}")]
    msgs += [AttributionValues(o, m[o : o + 5]) for o in range(0, m.size, 5)]
    stmt = commitment_statement(
        session_id=sid, task_digest=DIGEST, attribution_digest=digest, mode=mode
    )
    msgs.append(AttributionCommitment(digest, sign_json(key, stmt)))
    if tamper is not None:
        msgs = tamper(msgs)
    return msgs


def _receive(msgs, key):  # type: ignore[no-untyped-def]
    return receive_commitment(
        msgs,
        task_digest=DIGEST,
        mode="committed",
        n_outputs=2,
        n_items=6,
        prover_public_key=public_key_bytes(key.public_key()),
        max_values=10_000,
    )


def test_commitment_round_trip_and_failures() -> None:
    key = generate_private_key()
    theta0 = np.array([0.5, -1.0])
    theta = np.arange(12, dtype=np.float64).reshape(2, 6) / 10
    c = _receive(_stream(theta0, theta, key), key)
    np.testing.assert_array_equal(c.theta, theta)
    assert attribution_bound(theta0, theta) == pytest.approx(1.0 + 5.1)
    with pytest.raises(CommitmentError, match="first message must be the attribution header"):
        _receive(_stream(theta0, theta, key, tamper=lambda m: m[1:]), key)
    with pytest.raises(CommitmentError, match="values at offset 5, expected 0"):
        _receive(_stream(theta0, theta, key, tamper=lambda m: [m[0], *m[2:]]), key)
    with pytest.raises(CommitmentError, match="without the signed commitment"):
        _receive(_stream(theta0, theta, key, tamper=lambda m: m[:-1]), key)
    with pytest.raises(SignatureError, match="commitment signature is invalid"):
        _receive(_stream(theta0, theta, generate_private_key()), key)
