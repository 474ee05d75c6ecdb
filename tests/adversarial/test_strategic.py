"""A strategic liar that knows the Verifier's plan, over real gRPC, against the real Verifier.

The Prover commits scores with exact err >= epsilon (synthetic task) and then
lies on the challenge evaluations whose change lowers the clipped direct gap
(``--statistic clipped-gap``; the default statistic's liar:
``test_ustat_strategic.py``) most
(:class:`prover.adversaries.strategic.StrategicPolicy`): ``MULT`` times
the number of corrupted pairs the plan tolerates, with the plan's clip levels
and node weights.  It learns the plan the way no real Prover can: the
Verifier's private generator is seeded in this suite, so the test replays the
Verifier's own pilot and planning (:mod:`verifier.core`) before the audit and
checks afterwards that the audit used that very plan.

MULT = 1 is the hardest case for the spot checks (few lies, each missed with
probability close to 1 - k/n) and tests the corruption accounting: if every
lie is missed the statistic must still reject.  MULT = 20 is caught by the
spot checks.  Each audit aborts, so none of these runs is accepted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from protocol.scores import Scores
from prover.adversaries.strategic import StrategicPolicy
from prover.tasks.base import Task
from tests.adversarial._audit import VERIFIER_SEED, armed, audit
from tests.adversarial.conftest import SYNTHETIC_TOML
from verifier.challenge_log import delta_for_audit
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import pilot_from_runs, plan_audit
from verifier.planning import task_p
from verifier.retrain import private_points, train_points

#: err(a) = epsilon / MARGIN.
MARGIN = 0.9


def _replayed_plan(task: Task, scores: Scores, config: AuditConfig, seed: int):  # type: ignore[no-untyped-def]
    """The plan the seeded Verifier will make (its generator's first draws are the pilot).

    The audit is the first of these scores in its test's challenge record
    (``tests/conftest.py``), so it plans with ``delta_for_audit(delta, 1)``.
    """
    config = replace(config, delta=delta_for_audit(config.delta, 1))
    rng = np.random.default_rng(seed)
    x, seeds = private_points(rng, config.pilot_trainings, n_items=task.n_items, p=task_p(task))
    out = train_points(task, x, seeds, chunk_size=config.train_chunk_size).outputs
    commitment = Commitment.unsigned(scores.theta0, scores.theta, source="replay")
    return plan_audit(config, task, commitment, pilot_from_runs(config, task, commitment, x, out))


@pytest.mark.parametrize("mult", [1.0, 5.0, 20.0])
@pytest.mark.parametrize("seed_offset", [0, 1])
def test_strategic_liar_with_the_plan_is_not_accepted(
    mult: float, seed_offset: int, synthetic: Task, synthetic_honest: Scores
) -> None:
    bad = armed(synthetic, synthetic_honest, "scale:0.5").scores
    err = np.asarray(synthetic.function.err(bad.theta0, bad.theta))  # type: ignore[attr-defined]
    epsilon = MARGIN * float(err.max())
    config = AuditConfig(epsilon=epsilon, delta=0.05, statistic="clipped-gap")
    seed = VERIFIER_SEED + seed_offset
    plan = _replayed_plan(synthetic, bad, config, seed)
    assert plan.clip_levels is not None  # the clipped gap
    policy = StrategicPolicy(
        mult,
        tolerated=plan.tolerated_corruptions,
        clip_levels=plan.clip_levels,
        weights=plan.functional.weights,
        scores=bad,
        n_items=synthetic.n_items,
        bound=synthetic.bound,
    )
    result = audit(
        synthetic, SYNTHETIC_TOML, bad, policy, epsilon=epsilon, verifier_seed=seed,
        statistic="clipped-gap",
    )[0]  # fmt: skip
    assert result.plan is not None and result.plan.spot_checks == plan.spot_checks
    assert result.plan.tolerated_corruptions == plan.tolerated_corruptions
    assert result.report.decision == "abort", result.report.reason
    reason = result.report.reason
    assert "SpotCheckMismatch" in reason or "is not below epsilon" in reason, reason
