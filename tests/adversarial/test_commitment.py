"""Commitment manipulations against the real Verifier: caught by commitment checks.

These checks are deterministic (no statistics): a leaf, proof or signature
either verifies or it does not, so each adversary is caught with certainty
as soon as one spot check is opened (or, for ``replay``, at the root).
"""

from __future__ import annotations

import pytest

from protocol.scores import Scores
from prover.tasks.base import Task
from tests.adversarial._audit import armed, audit
from tests.adversarial.conftest import LOGREG_SMALL_TOML, SYNTHETIC_TOML

EPSILON = {"synthetic": 1.0, "logreg": 0.6}
TASKS = ["synthetic", "logreg"]


def _setup(
    which: str, synthetic: Task, synthetic_honest: Scores, logreg: Task, logreg_honest: Scores
) -> tuple[Task, Scores]:
    if which == "synthetic":
        return synthetic, synthetic_honest
    return logreg, logreg_honest


@pytest.mark.parametrize("which", TASKS)
@pytest.mark.parametrize(
    ("adversary", "reason"),
    [
        ("rewrite-after-root", "outputs differ from the streamed ones"),
        ("bad-proof", "bad Merkle proof"),
    ],
)
def test_opening_manipulation_is_caught(
    which: str,
    adversary: str,
    reason: str,
    synthetic: Task,
    synthetic_honest: Scores,
    logreg: Task,
    logreg_honest: Scores,
) -> None:
    """The first opening contradicts the signed root.

    ``rewrite-after-root`` commits g_a(x) everywhere (the scores look optimal)
    and opens the honest outputs, which retraining would confirm; the leaf is
    rebuilt from the streamed values, so the opening is refused before any
    retraining.  ``bad-proof`` opens honest values with a corrupted audit path.
    """
    task, honest = _setup(which, synthetic, synthetic_honest, logreg, logreg_honest)
    toml = SYNTHETIC_TOML if which == "synthetic" else LOGREG_SMALL_TOML
    a = armed(task, honest, adversary)
    result = audit(task, toml, a.scores, a.policy, epsilon=EPSILON[which])[0]
    assert result.report.decision == "abort"
    assert result.report.reason.startswith("CommitmentError: opening of point"), (
        result.report.reason
    )
    assert reason in result.report.reason
    assert result.spot_checks is None  # refused before any retraining


@pytest.mark.parametrize("which", TASKS)
def test_replay_is_caught(
    which: str, synthetic: Task, synthetic_honest: Scores, logreg: Task, logreg_honest: Scores
) -> None:
    """The second audit gets the first session's results, root and root signature.

    Without a challenge record (each audit spends the whole delta) the Verifier's
    seeded pilot makes both plans the same size, so the replayed results rebuild
    exactly the replayed root; only the signature, which binds the session id
    and the fresh challenge seed, can (and must) fail.  (With the record the
    second plan is smaller, at delta / 6, and the root's leaf count already differs.)
    """
    task, honest = _setup(which, synthetic, synthetic_honest, logreg, logreg_honest)
    toml = SYNTHETIC_TOML if which == "synthetic" else LOGREG_SMALL_TOML
    a = armed(task, honest, "replay")
    first, second = audit(
        task, toml, a.scores, a.policy, epsilon=EPSILON[which], audits=2, challenge_log="none"
    )
    assert first.report.decision == "accept", first.report.reason  # recorded, answered honestly
    assert second.report.decision == "abort"
    assert second.report.reason.startswith(
        "SignatureError: the Prover's root signature is invalid"
    ), second.report.reason
    assert first.report.challenge_seed != second.report.challenge_seed
