"""A strategic liar against the default statistic (the degree-1 U-statistic), over real gRPC.

The Prover commits scores with exact err >= epsilon (synthetic task) and lies
on the challenge values whose change lowers U most
(:class:`prover.adversaries.ustat_liar.UStatLiePolicy`): ``MULT`` times the
altered points the plan tolerates, at the plan's clip levels.  It learns the
plan as in ``test_strategic.py``: the Verifier's generator is seeded here, so
the test replays the Verifier's pilot and planning before the audit.  The
Verifier sizes its spot checks from the (lied) results and charges the
alterations its draws may miss; every audit must abort — by a spot check
that disagrees, or by its certified bound.
"""

from __future__ import annotations

import numpy as np
import pytest

from protocol.scores import Scores
from protocol.stats.ustat import UStatPlan
from prover.adversaries.ustat_liar import UStatLiePolicy
from prover.tasks.base import Task
from tests.adversarial._audit import VERIFIER_SEED, armed, audit
from tests.adversarial.conftest import SYNTHETIC_TOML
from tests.adversarial.test_strategic import MARGIN, _replayed_plan
from verifier.config import AuditConfig


@pytest.mark.parametrize("mult", [1.0, 5.0, 20.0])
@pytest.mark.parametrize("seed_offset", [0, 1])
def test_ustat_liar_with_the_plan_is_not_accepted(
    mult: float, seed_offset: int, synthetic: Task, synthetic_honest: Scores
) -> None:
    bad = armed(synthetic, synthetic_honest, "scale:0.5").scores
    err = np.asarray(synthetic.function.err(bad.theta0, bad.theta))  # type: ignore[attr-defined]
    epsilon = MARGIN * float(err.max())
    config = AuditConfig(epsilon=epsilon, delta=0.05)
    seed = VERIFIER_SEED + seed_offset
    plan = _replayed_plan(synthetic, bad, config, seed)
    assert isinstance(plan.details, UStatPlan)  # the default statistic
    policy = UStatLiePolicy(
        mult,
        tolerated=plan.tolerated_corruptions,
        clip=plan.details.clip,
        scores=bad,
        n_items=synthetic.n_items,
        p=float(synthetic.p),
        bound=synthetic.bound,
    )
    result = audit(
        synthetic, SYNTHETIC_TOML, bad, policy, epsilon=epsilon, verifier_seed=seed,
        early_rejection=False,
    )[0]  # fmt: skip
    assert result.plan is not None and result.plan.prover_evaluations == plan.prover_evaluations
    assert result.report.decision == "abort", result.report.reason
    reason = result.report.reason
    assert "SpotCheckMismatch" in reason or "certified bound" in reason, reason
