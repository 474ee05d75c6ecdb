"""The documented guarantee matches the planner, and is stated in one place only.

``docs/protocol.md``, section "What an accept guarantees", states the
completeness radius of the default plans and of the other plans as
``about epsilon/N``.  These tests build real plans along the path
``pacda-verifier audit`` takes from its command-line defaults (argument
parser, :class:`~verifier.config.AuditConfig`, the pilot, ``plan_audit``) on
the example ``synthetic`` task, read ``plan.completeness_radius / epsilon``,
and check the stated fractions against it.  They also check that no other
page restates a completeness radius as a fraction of epsilon.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from protocol.plan import make_plan
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from verifier.cli import build_parser
from verifier.cli._plan_args import cap_prover_evaluations, epsilon_options, plan_options
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import Pilot, pilot_from_runs, plan_audit
from verifier.planning import plan_request, task_p
from verifier.retrain import private_points, train_points

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SYNTHETIC = ROOT / "examples" / "tasks" / "synthetic.toml"
SECTION = "## What an accept guarantees"

#: Absolute epsilons on the synthetic task (max Var(f) about 0.7): 0.07 to 0.57 Var(f).
EPSILONS = (0.4, 0.2, 0.1, 0.05)

#: Tolerance on "about epsilon/N": every measured ratio must lie in
#: [0.5, 2] x (1/N).  "About" is a rounded figure: the default plans keep
#: exactly the requested epsilon/10 or a little more (integer pair and
#: spot-check counts leave slack), the others keep what the threshold leaves
#: after terms that vary with epsilon (measured 0.125-0.155 epsilon).  A factor of two
#: either way accepts that rounding and still fails a wrong statement such as
#: the former "about epsilon/4" for default plans (ratio 0.1 < 0.5 x 0.25).
LOW, HIGH = 0.5, 2.0

_FRACTION = r"about epsilon ?/ ?(\d+(?:\.\d+)?)"


def _guarantee_section() -> str:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def _stated(kind: str) -> float:
    """``1/N`` from the section's bullet starting with ``- **{kind}**``."""
    section = _guarantee_section()
    bullet = re.search(
        r"^- \*\*" + re.escape(kind) + r"\*\*(.*?)(?=^- |\n\n)", section, re.M | re.S
    )
    assert bullet is not None, f"no bullet '- **{kind}**' in {SECTION!r} of docs/protocol.md"
    found = re.findall(_FRACTION, " ".join(bullet.group(1).split()))
    assert len(found) == 1, f"the {kind!r} bullet must state one 'about epsilon/N', got {found}"
    return 1.0 / float(found[0])


def _config(*extra: str) -> AuditConfig:
    """The AuditConfig ``pacda-verifier audit`` builds from these options (its ``run``)."""
    base = ["audit", "--prover", "localhost:1", "--task", str(SYNTHETIC), "--delta", "0.05"]
    args = build_parser().parse_args([*base, "--plan-only", *extra])
    config = AuditConfig(
        **epsilon_options(args),
        delta=args.delta,
        mode=args.mode,
        planning=args.planning,
        variance=args.variance,
        **plan_options(args),
        pilot_trainings=args.pilot,
        chunk_points=args.chunk_points,
        rpc_timeout_s=args.timeout,
        device=args.device,
    )
    return cap_prover_evaluations(config)


@lru_cache(maxsize=1)
def _setting() -> tuple[Task, Commitment, np.ndarray, np.ndarray]:
    """The synthetic task, its optimal scores and the Verifier's own pilot runs."""
    task = load_task(SYNTHETIC)
    theta0, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    commitment = Commitment.unsigned(theta0, theta, source="test")
    rng = np.random.default_rng(20260101)
    n = _config("--epsilon", "1").pilot_trainings
    x, seeds = private_points(rng, n, n_items=task.n_items, p=task_p(task))
    outputs = train_points(task, x, seeds, chunk_size=512).outputs
    return task, commitment, x, np.asarray(outputs, dtype=np.float64)


def _ratio(epsilon: float, *extra: str) -> float:
    """``completeness_radius / epsilon`` of the plan the CLI would make."""
    task, commitment, x, outputs = _setting()
    config = _config("--epsilon", repr(epsilon), *extra)
    pilot: Pilot | None = None
    if config.planning == "practical" and config.variance is None:
        pilot = pilot_from_runs(config, task, commitment, x, outputs)
    if config.planning == "rigorous":
        # Rigorous plans of this task exceed the Prover-evaluation cap that
        # plan_audit enforces; the radius is the planner's all the same.
        plan = make_plan(
            plan_request(config, task=task, commitment=commitment, variance=None, pilot=None)
        )
    else:
        plan = plan_audit(config, task, commitment, pilot)
    return plan.completeness_radius / epsilon


@pytest.mark.parametrize(
    "extra", [(), ("--tail-fraction", "0.02"), ("--tail-fraction", "0.3")], ids=str
)
def test_default_plans_keep_the_stated_radius(extra: tuple[str, ...]) -> None:
    """The U-statistic's radius; it takes no tail fraction, which must not move it."""
    stated = _stated("Default plans")
    ratios = [_ratio(eps, *extra) for eps in EPSILONS]
    assert all(LOW * stated <= r <= HIGH * stated for r in ratios), (stated, ratios)


@pytest.mark.parametrize(
    "extra", [(), ("--tail-fraction", "0.02"), ("--tail-fraction", "0.3")], ids=str
)
def test_clipped_gap_plans_keep_the_stated_radius(extra: tuple[str, ...]) -> None:
    stated = _stated("Clipped-gap plans")
    ratios = [_ratio(eps, "--statistic", "clipped-gap", *extra) for eps in EPSILONS]
    assert all(LOW * stated <= r <= HIGH * stated for r in ratios), (stated, ratios)


@pytest.mark.parametrize(
    "extra",
    [("--estimator", "chebyshev"), ("--mode", "paper"), ("--planning", "rigorous")],
    ids=str,
)
def test_other_plans_keep_the_stated_radius(extra: tuple[str, ...]) -> None:
    stated = _stated("Other plans")
    # Paper-mode plans at the smaller epsilons exceed the evaluation cap.
    epsilons = EPSILONS[:2] if "paper" in extra else EPSILONS
    ratios = [_ratio(eps, *extra) for eps in epsilons]
    assert all(LOW * stated <= r <= HIGH * stated for r in ratios), (stated, ratios)


def test_completeness_radius_option_sets_the_radius() -> None:
    """``--completeness-radius R`` is what the section says it is: the radius itself."""
    assert "--completeness-radius R" in _guarantee_section()
    assert _ratio(0.2, "--completeness-radius", "0.05") == pytest.approx(0.25, rel=0.05)


def test_no_other_page_restates_the_radius() -> None:
    """Outside the section, no page gives the completeness radius as epsilon/N."""
    radius = re.compile(r"complete|radius|honest|grey zone|in between|either verdict", re.I)
    fraction = re.compile(r"\b(?:epsilon|eps|ε) ?/ ?\d", re.I)
    section = _guarantee_section()
    offenders = []
    for path in sorted([*DOCS.glob("*.md"), ROOT / "README.md"]):
        text = path.read_text(encoding="utf-8")
        if path.name == "protocol.md":
            text = text.replace(section, "")
        for paragraph in re.split(r"\n\s*\n", text):
            if radius.search(paragraph) and fraction.search(paragraph):
                where = path.relative_to(ROOT)
                offenders.append(f"{where}: {' '.join(paragraph.split())[:160]}")
    assert offenders == [], "link to docs/protocol.md#what-an-accept-guarantees:\n" + "\n".join(
        offenders
    )
