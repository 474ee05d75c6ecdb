"""The Verifier ends its session with ``Close`` when an audit is over (accepted or not)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from protocol.scores import Scores
from protocol.signing import generate_private_key
from prover.service import Ed25519Signer, ServerOptions, start_server
from prover.tasks.base import Task
from tests.adversarial._audit import VERIFIER_SEED, OneThreadHandlers, armed
from tests.adversarial.conftest import SYNTHETIC_TOML
from verifier import AuditConfig, Auditor


@pytest.mark.parametrize("scores_kind", ["honest", "scaled"])
def test_session_is_closed_after_the_audit(
    scores_kind: str, synthetic: Task, synthetic_honest: Scores
) -> None:
    scores = (
        synthetic_honest
        if scores_kind == "honest"
        else armed(synthetic, synthetic_honest, "scale:0.5").scores
    )
    handlers = OneThreadHandlers(
        source=synthetic,
        task_toml=SYNTHETIC_TOML.read_text(encoding="utf-8"),
        scores=scores,
        signer=Ed25519Signer(generate_private_key()),
        policy=None,
    )
    server = start_server(handlers, ServerOptions(host="127.0.0.1", port=0))
    try:
        config = AuditConfig(epsilon=0.3 if scores_kind == "honest" else 0.05, delta=0.05)
        auditor = Auditor(
            synthetic, config, key=generate_private_key(), rng=np.random.default_rng(VERIFIER_SEED)
        )
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            result = auditor.run(channel)
        expected = "accept" if scores_kind == "honest" else "abort"
        assert result.report.decision == expected, result.report.reason
        assert len(handlers.sessions) == 0  # freed by Close, not left to the idle deadline
        assert handlers.sessions.memory_bytes == 0
    finally:
        server.stop(grace_s=None)
