"""Soundness and completeness of practical committed-mode plans (clipped direct gap), measured.

Run::

    .venv/bin/pytest -m bench -s tests/bench/test_bench_soundness.py

About 30 minutes on 2 busy cores (measured 1,814 s: ~0.9 s per audit and
worker; 20 points x 200 runs; the issue asks for at least 200 runs per point).

Environment: ``PACDA_SOUNDNESS_RUNS`` (audits per point, default 200),
``PACDA_SOUNDNESS_MULTS`` (liar multiples, default ``1,2,5,20``),
``PACDA_SOUNDNESS_COMPLETENESS`` (``0`` skips the honest points),
``PACDA_SOUNDNESS_EPS`` (epsilon as a fraction of the exact Var(f), default
0.1), ``PACDA_SOUNDNESS_OUT`` (default ``out/soundness``), ``PACDA_WORKERS``
(processes, default 2).  Writes ``soundness.csv`` to the output directory.

Every audit calls the Verifier's transport-free core (:mod:`verifier.core`)
in the order of :class:`verifier.driver.Auditor` (``_plan``, ``_challenge``,
``_spot_checks``, ``_decide``), in-process, without gRPC, Merkle proofs or
openings, with ``AuditConfig(epsilon, delta=0.05)`` defaults (committed mode,
practical planning, estimator ``auto`` = ``lp``, the clipped direct gap):

1. pilot: :func:`verifier.retrain.private_points` and
   :func:`verifier.retrain.train_points` (200 runs),
   :func:`verifier.core.pilot_from_runs`, :func:`verifier.core.check_pilot`
   (a :class:`StatisticalRejection` is the pilot's abort);
2. :func:`verifier.core.plan_audit` (a :class:`StatisticalRejection` — over
   the evaluation cap — or an :class:`InvalidArgument` — no plan fits — is an
   abort, as in the driver);
3. a fresh 32-byte seed, :func:`protocol.prg.expand_pairs`, the honest
   outputs in the challenge layout (point ``2i`` = first of pair i, ``2i + 1``
   = its partner);
4. the strategic liar (:func:`prover.adversaries.strategic.strategic_lies`,
   ``ceil(MULT * max(tolerated, 1))`` lies; MULT = 0 is an honest Prover);
5. :func:`verifier.core.spot_check_and_decide` on the (possibly lied)
   outputs, as the driver calls it: spot checks drawn from the private
   generator, checked by :func:`verifier.spotcheck.retrain_and_compare` (the
   Verifier retrains them; a disagreement beyond ``output_tolerance`` aborts
   the audit: "caught"), :func:`verifier.core.verified_residuals` (pilot and
   spot checks), :func:`verifier.core.decide_committed_audit`, and after a
   first-stage rejection the second stage (:func:`verifier.core.plan_escalation`,
   more spot checks, the decision again; column ``esc`` counts those audits;
   column ``early`` counts the audits rejected before any spot check because
   no outcome of them could accept, :func:`protocol.decision.hopeless_output`).

Tasks (exact err, :mod:`protocol.synthetic`): ``p0.5`` is the acceptance
bench's task (N = 8, B_1 = 0.8, one degree-2 term of weight 0.2, seed noise
0.3); ``heavy-p0.3`` has N = 10, B_1 = 0.8 and ONE degree-6 term of weight
0.2 at p = 0.3: the character is 1.53^6 = 12.7 on the 0.07 % of subsets
holding all six items, so the residual is heavy-tailed (|q| up to ~5.7 against
sd ~0.5; a 200-run pilot sees that subset with probability ~14 %).

Commitments ``a = a* + t u``: the top contributor's score grows by ``t /
sigma`` and theta_0 moves so that E[g_a] is unchanged (no mean shift for the
pilot to see; err is pure degree-1 weight), ``err(a) = t^2`` exactly.

epsilon = 0.1 Var(f) by default, not 0.2: at 0.2 Var(f) the planner spots-checks
every one of the few hundred challenge points (``spot_checks ==
prover_evaluations``, ``tolerated_corruptions == 0``), so every lie is caught
and the liar is not exercised; at 0.1 the plans use ~20k (p = 0.5) and ~60k
(p = 0.3) Prover evaluations with ~2k / ~6k spot checks and ~40 tolerated
corruptions.

Claims checked: soundness (err >= eps, any MULT): accept rate <= delta + 3 SE;
completeness (honest, err = 0 and err = the completeness radius of a
reference plan): accept rate >= 1 - delta - 3 SE (SE binomial at the nominal
rate).  Column ``uncaught`` (MULT = 1 rows only, i.e. exactly
``max(tolerated, 1)`` lies): the accept rate of the same liar when the spot
checks are ignored (the decision runs even when a lie was caught); it tests
the statistic's corruption accounting (``tolerated x leverage``) by itself and
must also be <= delta + 3 SE.  For completeness rows with statistical
rejections the mean of each certified term of the rejected runs (estimate,
sampling, clipping, corruption, the rest; recomputed from the plan with
:mod:`protocol.clipped_gap`) is printed next to that of the accepted ones.
The table is printed and written before anything is asserted.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from protocol import clipped_gap as cg
from protocol.decision import Decision, Escalation
from protocol.errors import (
    InvalidArgument,
    SpotCheckMismatch,
    StatisticalRejection,
    VerificationError,
)
from protocol.hypercube import bias_moments
from protocol.plan import Plan
from protocol.prg import ExpandedPairs, expand_pairs
from protocol.synthetic import PlantedSpectrum, SyntheticFunction
from prover.adversaries.strategic import strategic_lies
from prover.tasks.registry import load_task_text
from prover.tasks.synthetic import SyntheticTask
from verifier.commitment import Commitment
from verifier.config import AuditConfig
from verifier.core import (
    Pilot,
    Screen,
    check_pilot,
    pilot_from_runs,
    plan_audit,
    spot_check_and_decide,
    verified_residuals,
)
from verifier.planning import task_p
from verifier.results import ChallengeResults
from verifier.retrain import private_points, train_points
from verifier.spotcheck import SpotCheckResult, retrain_and_compare

#: Longer than the suite-wide 600 s limit (pyproject.toml): a full run takes tens of minutes.
pytestmark = [pytest.mark.bench, pytest.mark.timeout(4 * 3600)]

FloatArray = NDArray[np.float64]
DELTA = 0.05
ROOT_SEED = 20260507
MULTS = (1, 2, 5, 20)
SOUND_RATIOS = (1.0, 1.5)  # err / eps
NOISE = 0.3

#: name -> (p, N, degree weights, terms per degree)
TASKS: dict[str, tuple[float, int, tuple[float, ...], tuple[int, ...]]] = {
    "p0.5": (0.5, 8, (0.0, 0.8, 0.2), (0, 1, 1)),
    "heavy-p0.3": (0.3, 10, (0.0, 0.8, 0.0, 0.0, 0.0, 0.0, 0.2), (0, 2, 0, 0, 0, 0, 1)),
}


@functools.cache
def load(name: str) -> SyntheticTask:
    """The synthetic task ``name`` with its provable bound (rounded up to 1e-3)."""
    p, n, weights, terms = TASKS[name]
    spectrum = PlantedSpectrum(
        n_items=n,
        p=p,
        degree_weights=weights,
        terms_per_degree=terms,
        noise=NOISE,
        structure_seed=3,
    )
    bound = math.ceil(SyntheticFunction.from_spec(spectrum).bound * 1000) / 1000
    toml = (
        f'[task]\nkind = "synthetic"\np = {p}\nbound = {bound}\noutput_tolerance = 1e-12\n'
        f"weight_tolerance = 0.0\nn_outputs = 1\n\n[task.spectrum]\nn_items = {n}\n"
        f"degree_weights = {list(weights)}\nterms_per_degree = {list(terms)}\n"
        f"noise = {NOISE}\nstructure_seed = 3\n"
    )
    task = load_task_text(toml)
    if not isinstance(task, SyntheticTask):
        raise TypeError("expected a synthetic task")
    return task


def commitment(task: SyntheticTask, err: float) -> Commitment:
    """``a* + t u`` with exact ``err(a) = err`` and E[g_a] unchanged (see module docstring)."""
    fn = task.function
    theta0, theta = fn.optimal_attribution()
    mu, sigma = bias_moments(fn.p)
    top = int(np.argmax(np.abs(theta[0])))
    step = (1.0 if theta[0, top] >= 0 else -1.0) * math.sqrt(err) / sigma
    theta = theta.copy()
    theta0 = theta0.copy()
    theta[0, top] += step
    theta0[0] -= mu * step
    exact = float(fn.err(theta0, theta)[0])
    if not math.isclose(exact, err, rel_tol=1e-9, abs_tol=1e-12):
        raise AssertionError(f"err {exact} misses its target {err}")
    return Commitment.unsigned(theta0, theta, source="planted")


def evaluate(task: SyntheticTask, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> FloatArray:
    """The Prover's honest outputs ``f(x; r)`` (the task's own training)."""
    return np.asarray(task.train_batch(x, seeds).outputs, dtype=np.float64)


#: Names of the certified terms of :func:`certified_terms`, in order (they add up to the
#: certified upper bound), and of the planned clipping term it reports after them.
TERMS = ("estimate", "sampling", "clipping", "corruption", "rest")
PLANNED_CLIPPING = "planned clipping"


@dataclass(frozen=True)
class Outcome:
    """One simulated audit."""

    accept: bool
    caught: bool  # a spot check (either stage) hit a lied point
    pilot_rejected: bool  # verifier.core.check_pilot
    no_plan: bool  # plan_audit: no plan fits (InvalidArgument) or over the evaluation cap
    prover_evaluations: int
    verifier_retrainings: int  # pilot + spot checks of both stages
    spot_checks: int  # planned (first stage)
    tolerated: int  # planned (first stage)
    lies: int
    certified_upper: float  # max over outputs (nan when no decision)
    completeness_radius: float  # of the plan (nan without one)
    escalated: bool = False  # the decision is the second stage's
    early: bool = False  # rejected before any spot check (no outcome of them could accept)
    beyond: bool = False  # MULT = 1: decided at a stage tolerating fewer than the lies told
    accept_uncaught: bool | None = None  # MULT = 1: the decision with the spot checks ignored
    terms: tuple[float, ...] | None = None  # honest runs: certified_terms of the worst output


def pilot_and_plan(
    task: SyntheticTask, cfg: AuditConfig, com: Commitment, rng: np.random.Generator
) -> tuple[Pilot, Plan | None, bool]:
    """``Auditor._plan`` through :mod:`verifier.core`: pilot, pilot rejection, plan.

    Returns (the pilot, the plan or None, whether the pilot rejected).
    """
    x, seeds = private_points(rng, cfg.pilot_trainings, n_items=task.n_items, p=task_p(task))
    out = train_points(task, x, seeds, chunk_size=cfg.train_chunk_size).outputs
    pilot = pilot_from_runs(cfg, task, com, x, out)
    try:
        check_pilot(cfg, task, pilot)
    except StatisticalRejection:
        return pilot, None, True
    try:
        return pilot, plan_audit(cfg, task, com, pilot), False
    except (StatisticalRejection, InvalidArgument):
        return pilot, None, False


def certified_terms(
    plan: Plan,
    com: Commitment,
    pairs: ExpandedPairs,
    outputs: FloatArray,
    verified: FloatArray | None,
    z: int,
    esc: Escalation | None,
) -> tuple[float, ...]:
    """Output z's certified upper bound split into :data:`TERMS`, then the planned clipping.

    Diagnostic only: recomputed from the plan with :mod:`protocol.clipped_gap`,
    as ``protocol.decision_clipped.clipped_verdict`` does at the stage in force
    (``esc``: the second stage's clip multiple, tolerated count and failure
    probabilities); the caller checks that the :data:`TERMS` add up to the
    decision's ``certified_upper``.  The last value is the clipping term at the
    plan's own tail (``planned_tails``, first stage), before the verified runs
    (pilot and spot checks) raise it.
    """
    assert plan.clip_levels is not None and plan.planned_tails is not None
    assert plan.planned_variances is not None
    multiple, tolerated = 1.0, plan.tolerated_corruptions
    d_sampling, d_tail = plan.delta_sampling, plan.delta_tail
    if esc is not None:
        multiple, tolerated = esc.multiple, esc.tolerated
        _, d_sampling, d_tail = esc.deltas(plan)
    clip, w = plan.clip_levels[z] * multiple, plan.functional.weights
    q1 = outputs[0::2, z] - com.predict(pairs.first)[:, z]
    q2 = outputs[1::2, z] - com.predict(pairs.second)[:, z]
    value, _, node_var = cg.node_estimate(cg.clipped_products(q1, q2, clip), plan.node_of_pair(), w)
    observed = cg.observed_variance_sum(node_var, w, plan.pairs_per_node)
    dev = float(cg.deviation(plan.planned_variances[z], d_sampling, observed))
    tail = plan.planned_tails[z] if multiple == 1.0 else 0.0
    if verified is not None and verified.size:
        tail = max(tail, cg.tail_mean_upper(verified[:, z] ** 2, clip, d_tail))
    bias = float(cg.clip_bias(w, tail))
    corruption = tolerated * float(cg.leverage(w, plan.pairs_per_node, clip))
    rest = plan.tolerance_slack + abs(plan.bias_lower)
    planned = float(cg.clip_bias(w, plan.planned_tails[z]))
    return (value, dev, bias, corruption, rest, planned)


def _upper(decision: Decision) -> tuple[float, int]:
    """The largest certified upper bound over outputs and its output."""
    z = int(np.argmax([o.certified_upper for o in decision.outputs]))
    return float(decision.outputs[z].certified_upper), z


class SpotChecker:
    """The ``check`` of :func:`verifier.core.spot_check_and_decide`, in-process.

    Retrains the points with :func:`verifier.spotcheck.retrain_and_compare` (the
    driver's check 5; no openings or Merkle proofs) against the outputs the
    Prover sent.  ``strict``: a disagreement raises, ending the audit, as in the
    driver.  Otherwise (the "uncaught" variant) it is only recorded in
    :attr:`caught` and the Verifier's own outputs are returned all the same.
    """

    def __init__(
        self,
        task: SyntheticTask,
        cfg: AuditConfig,
        plan: Plan,
        seed: bytes,
        sent: FloatArray,
        honest: FloatArray,
        *,
        strict: bool,
    ) -> None:
        self.task, self.cfg, self.plan, self.seed = task, cfg, plan, seed
        self.sent, self.honest, self.strict = sent, honest, strict
        self.caught = False
        self.retrained = 0  # points retrained, a failing stage's included
        self.stages: list[SpotCheckResult] = []

    def _compare(self, indices: NDArray[np.int64], outputs: FloatArray) -> SpotCheckResult:
        return retrain_and_compare(
            self.task,
            seed=self.seed,
            indices=indices,
            opened={int(i): np.zeros(0) for i in indices},  # synthetic tasks have no weights
            results=ChallengeResults(outputs, (), b"", b"", None),  # type: ignore[arg-type]
            p=task_p(self.task),
            rho_of_pair=self.plan.rho_of_pair(),
            chunk_size=self.cfg.train_chunk_size,
        )

    def __call__(self, indices: NDArray[np.int64]) -> SpotCheckResult:
        self.retrained += len(indices)
        try:
            result = self._compare(indices, self.sent)
        except SpotCheckMismatch:
            self.caught = True
            if self.strict:
                raise
            result = self._compare(indices, self.honest)  # the Verifier's own outputs
        self.stages.append(result)
        return result


def audit_once(
    task: SyntheticTask,
    com: Commitment,
    epsilon: float,
    mult: float,
    rng: np.random.Generator,
) -> Outcome:
    """One audit; the liar lies ``ceil(mult * max(tolerated, 1))`` times (mult 0: honest)."""
    cfg = AuditConfig(epsilon=epsilon, delta=DELTA)
    pilot_n = cfg.pilot_trainings
    pilot, plan, rejected = pilot_and_plan(task, cfg, com, rng)
    if plan is None:
        nan = float("nan")
        uncaught = False if mult == 1 else None
        return Outcome(
            False, False, rejected, not rejected, 0, pilot_n, 0, 0, 0, nan, nan, False, uncaught
        )
    # challenge: a fresh seed, only after the commitment and the plan
    seed = rng.bytes(32)
    pairs = expand_pairs(
        seed, np.arange(plan.n_pairs), task.n_items, task_p(task), plan.rho_of_pair()
    )
    # challenge layout: point 2i = x of pair i, 2i + 1 = its partner
    x = np.stack([pairs.first, pairs.second], axis=1).reshape(-1, task.n_items)
    seeds = np.stack([pairs.first_seeds, pairs.second_seeds], axis=1).reshape(-1)
    honest = evaluate(task, x, seeds)
    sent, lies = honest, np.zeros(0, dtype=np.int64)
    if mult > 0:
        assert plan.clip_levels is not None
        lied = strategic_lies(
            honest[0::2],
            honest[1::2],
            com.predict(pairs.first),
            com.predict(pairs.second),
            node_of_pair=plan.node_of_pair(),
            weights=plan.functional.weights,
            clip_levels=plan.clip_levels,
            n_lies=math.ceil(mult * max(plan.tolerated_corruptions, 1)),
            bound=task.bound,
        )
        sent = np.empty_like(honest)
        sent[0::2], sent[1::2], lies = lied.first_outputs, lied.second_outputs, lied.points
    # spot checks (private randomness, only after the results), decision, second stage
    check = SpotChecker(task, cfg, plan, seed, sent, honest, strict=mult != 1)
    notes: list[str] = []
    base = Outcome(
        accept=False,
        caught=False,
        pilot_rejected=False,
        no_plan=False,
        prover_evaluations=plan.prover_evaluations,
        verifier_retrainings=pilot_n,
        spot_checks=plan.spot_checks,
        tolerated=plan.tolerated_corruptions,
        lies=int(lies.size),
        certified_upper=float("nan"),
        completeness_radius=plan.completeness_radius,
    )
    screened = Screen(cfg, plan, com, pairs).observe(sent, len(sent))
    if screened is not None:  # the driver stops the stream here and aborts
        return dataclasses.replace(
            base,
            prover_evaluations=2 * screened.pairs,
            spot_checks=0,
            accept_uncaught=False if mult == 1 else None,
        )
    try:
        decision, _ = spot_check_and_decide(
            cfg, plan, com, pairs, sent, pilot=pilot, rng=rng, check=check, note=notes.append
        )
    except SpotCheckMismatch:  # strict: the driver's abort
        return dataclasses.replace(
            base, caught=True, verifier_retrainings=pilot_n + check.retrained
        )
    except VerificationError:  # e.g. outputs out of range
        return dataclasses.replace(
            base,
            caught=check.caught,
            verifier_retrainings=pilot_n + check.retrained,
            accept_uncaught=False if mult == 1 else None,
        )
    early = not check.stages  # rejected before any spot check (verifier.core)
    drawn = np.concatenate([s.indices for s in check.stages]) if check.stages else np.zeros(0)
    assert check.caught == bool(np.isin(lies, drawn).any())
    upper, z = _upper(decision)
    terms = None
    if mult == 0 and not early:
        verified = verified_residuals(
            com,
            pairs,
            pilot=pilot,
            spot_indices=drawn,
            spot_outputs=np.concatenate([s.own_outputs for s in check.stages]),
        )
        terms = certified_terms(plan, com, pairs, sent, verified, z, decision.stage)
        if not math.isclose(sum(terms[: len(TERMS)]), upper, rel_tol=1e-9, abs_tol=1e-12):
            raise AssertionError(f"certified terms {terms} do not add up to {upper}")
    return dataclasses.replace(
        base,
        accept=decision.accept and not check.caught,
        caught=check.caught,
        verifier_retrainings=pilot_n + check.retrained,
        certified_upper=upper if not check.caught else float("nan"),
        escalated=decision.stage is not None and decision.stage.stage >= 2,
        early=early,
        # the corruption accounting claim: the deciding stage tolerated every lie told;
        # a later stage tolerating fewer rests on its spot checks alone (column beyond)
        accept_uncaught=decision.accept
        if mult == 1 and (decision.stage is None or decision.stage.tolerated >= lies.size)
        else None,
        beyond=mult == 1 and decision.stage is not None and decision.stage.tolerated < lies.size,
        terms=terms,
    )


@dataclass(frozen=True)
class Point:
    """One row of the experiment."""

    claim: str  # soundness or completeness
    task: str
    err_over_eps: float
    mult: float
    index: int  # for seeding


def run_chunk(point: Point, epsilon: float, seeds: list[np.random.SeedSequence]) -> list[Outcome]:
    """Independent audits of one point, one per seed."""
    task = load(point.task)
    com = commitment(task, point.err_over_eps * epsilon)
    return [audit_once(task, com, epsilon, point.mult, np.random.default_rng(s)) for s in seeds]


def eps_of(task: SyntheticTask, fraction: float) -> float:
    """Absolute epsilon: ``fraction`` x the exact Var(f)."""
    return fraction * float(task.function.variance()[0])


def reference_radius(name: str, epsilon: float) -> float:
    """``plan.completeness_radius`` of a reference plan (honest a*, a fixed pilot seed)."""
    task = load(name)
    cfg = AuditConfig(epsilon=epsilon, delta=DELTA)
    for attempt in range(20):  # a pilot that sees the heavy tail may leave no plan: retry
        rng = np.random.default_rng([ROOT_SEED, 99, attempt])
        _, plan, _ = pilot_and_plan(task, cfg, commitment(task, 0.0), rng)
        if plan is not None:
            return float(plan.completeness_radius)
    raise AssertionError(f"{name}: no reference plan in 20 pilots")


@dataclass(frozen=True, kw_only=True)
class Row:
    """One CSV row."""

    claim: str
    task: str
    p: float
    epsilon: float
    err_over_eps: float
    mult: float
    runs: int
    accepted: int
    accept_rate: float
    caught: int
    rejected_statistic: int
    pilot_rejected: int
    no_plan: int
    escalated: int  # audits decided by the second stage
    rejected_early: int  # audits rejected before any spot check (verifier.core: cheap rejection)
    beyond_tolerance: int  # MULT = 1: decided at a later stage tolerating fewer than the lies
    bound_rate: float  # the asserted limit
    holds: bool  # the rate and, where measured, the uncaught rate are within their limits
    uncaught_accepted: int  # MULT = 1 soundness rows; -1 where not measured
    uncaught_rate: float  # nan where not measured
    mean_verifier_retrainings: float
    mean_prover_evaluations: float
    mean_spot_checks: float
    mean_tolerated: float
    mean_lies: float
    mean_certified_upper_over_eps: float
    mean_radius_over_eps: float


def tabulate(point: Point, epsilon: float, outs: list[Outcome]) -> Row:
    """Counts and means of one point's audits, with its claim checked."""
    n = len(outs)
    k = sum(o.accept for o in outs)
    se = math.sqrt(DELTA * (1.0 - DELTA) / n)
    uncaught = [o.accept_uncaught for o in outs if o.accept_uncaught is not None]
    ku = sum(uncaught) if uncaught and point.claim == "soundness" else -1
    u_rate = ku / len(uncaught) if ku >= 0 else float("nan")
    if point.claim == "soundness":
        limit = DELTA + 3.0 * se
        holds = k / n <= limit and (ku < 0 or u_rate <= limit)
    else:
        limit, holds = 1.0 - DELTA - 3.0 * se, k / n >= 1.0 - DELTA - 3.0 * se
    caught = sum(o.caught for o in outs)
    pilot = sum(o.pilot_rejected for o in outs)
    none = sum(o.no_plan for o in outs)
    planned = [o for o in outs if not (o.pilot_rejected or o.no_plan)]
    uppers = [o.certified_upper for o in outs if math.isfinite(o.certified_upper)]

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return Row(
        claim=point.claim,
        task=point.task,
        p=TASKS[point.task][0],
        epsilon=epsilon,
        err_over_eps=point.err_over_eps,
        mult=point.mult,
        runs=n,
        accepted=k,
        accept_rate=k / n,
        caught=caught,
        rejected_statistic=n - k - caught - pilot - none,
        pilot_rejected=pilot,
        no_plan=none,
        escalated=sum(o.escalated for o in outs),
        rejected_early=sum(o.early for o in outs),
        beyond_tolerance=sum(o.beyond for o in outs),
        bound_rate=limit,
        holds=holds,
        uncaught_accepted=ku,
        uncaught_rate=u_rate,
        mean_verifier_retrainings=mean([o.verifier_retrainings for o in outs]),
        mean_prover_evaluations=mean([o.prover_evaluations for o in outs]),
        mean_spot_checks=mean([o.spot_checks for o in planned]),
        mean_tolerated=mean([o.tolerated for o in planned]),
        mean_lies=mean([o.lies for o in planned]),
        mean_certified_upper_over_eps=mean(uppers) / epsilon if uppers else float("nan"),
        mean_radius_over_eps=mean([o.completeness_radius for o in planned]) / epsilon,
    )


def _rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def print_terms(point: Point, epsilon: float, outs: list[Outcome]) -> None:
    """Mean certified terms (units of eps) of an honest point's rejected and accepted runs.

    Grouped by the stage whose decision is final (1: first; 2: after the second stage).
    """
    decided = [o for o in outs if o.terms is not None]
    if all(o.accept for o in decided):
        return
    print(
        f"certified terms / eps, {point.task} err/eps={point.err_over_eps:.3f} (honest), "
        "means of the final stage's: " + ", ".join((*TERMS, PLANNED_CLIPPING)) + "; upper"
    )
    for accept in (False, True):
        for stage in (1, 2):
            group = [o for o in decided if o.accept == accept and o.escalated == (stage == 2)]
            if not group:
                continue
            terms = np.array([o.terms for o in group]) / epsilon
            means = " ".join(f"{v:>8.4f}" for v in terms.mean(axis=0))
            upper = np.mean([o.certified_upper for o in group]) / epsilon
            name = "accepted" if accept else "rejected"
            print(f"  {name} stage {stage} {len(group):>4} runs: {means}  upper {upper:.4f}")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _chunks(
    points: list[Point], eps: dict[str, float], runs: int, size: int
) -> Iterator[tuple[Point, float, list[np.random.SeedSequence]]]:
    for point in points:
        seeds = np.random.SeedSequence([ROOT_SEED, point.index]).spawn(runs)
        for i in range(0, runs, size):
            yield point, eps[point.task], seeds[i : i + size]


def test_soundness_and_completeness() -> None:
    runs = int(_env("PACDA_SOUNDNESS_RUNS", "200"))
    fraction = float(_env("PACDA_SOUNDNESS_EPS", "0.1"))
    workers = int(_env("PACDA_WORKERS", "2"))
    out_dir = Path(_env("PACDA_SOUNDNESS_OUT", "out/soundness"))
    out_dir.mkdir(parents=True, exist_ok=True)
    eps = {name: eps_of(load(name), fraction) for name in TASKS}
    radius = {name: reference_radius(name, eps[name]) for name in TASKS}
    points: list[Point] = []
    mults = [float(m) for m in _env("PACDA_SOUNDNESS_MULTS", ",".join(map(str, MULTS))).split(",")]
    for name in TASKS:
        for ratio in SOUND_RATIOS:
            for mult in mults:
                points.append(Point("soundness", name, ratio, mult, len(points)))
    for name in TASKS if _env("PACDA_SOUNDNESS_COMPLETENESS", "1") == "1" else ():
        for ratio in (0.0, radius[name] / eps[name]):
            points.append(Point("completeness", name, ratio, 0, len(points)))
    print(
        f"\nsoundness/completeness of practical committed plans (clipped gap, estimator lp): "
        f"eps = {fraction:g} Var(f), delta = {DELTA}, {runs} runs per point, {workers} workers"
    )
    for name in TASKS:
        task = load(name)
        print(
            f"  {name}: p={task_p(task)}, N={task.n_items}, b={task.bound}, "
            f"Var(f)={float(task.function.variance()[0]):.4f}, eps={eps[name]:.4g}, "
            f"reference completeness radius = {radius[name]:.4g} "
            f"({radius[name] / eps[name]:.3f} eps)"
        )
    t0 = time.perf_counter()
    results: dict[int, list[Outcome]] = {pt.index: [] for pt in points}
    jobs = list(_chunks(points, eps, runs, size=max(1, min(25, runs))))
    if workers == 1:
        for point, e, seeds in jobs:
            results[point.index].extend(run_chunk(point, e, seeds))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            futures = [(pt, ex.submit(run_chunk, pt, e, s)) for pt, e, s in jobs]
            for done, (point, fut) in enumerate(futures, start=1):
                results[point.index].extend(fut.result())
                if done % 20 == 0 or done == len(futures):
                    print(f"  {done}/{len(futures)} chunks, {time.perf_counter() - t0:.0f}s")
    wall = time.perf_counter() - t0
    rows = [tabulate(pt, eps[pt.task], results[pt.index]) for pt in points]
    with (out_dir / "soundness.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in asdict(row).items()}
            )
    header = (
        f"{'claim':<12} {'task':<10} {'p':>4} {'err/eps':>7} {'MULT':>4} {'runs':>4} "
        f"{'acc':>4} {'rate':>6} {'limit':>6} {'caught':>6} {'rej.stat':>8} {'pilot':>5} "
        f"{'noplan':>6} {'esc':>4} {'early':>5} {'beyond':>6} {'uncaught':>8} {'V retrain':>9} "
        f"{'P evals':>9} {'spots':>7} "
        f"{'tol':>5} {'lies':>6} "
        f"{'U/eps':>6} {'r/eps':>6}"
    )
    print("\n" + header)
    for r in rows:
        print(
            f"{r.claim:<12} {r.task:<10} {r.p:>4} {r.err_over_eps:>7.3f} {r.mult:>4g} "
            f"{r.runs:>4} {r.accepted:>4} {r.accept_rate:>6.3f} {r.bound_rate:>6.3f} "
            f"{r.caught:>6} {r.rejected_statistic:>8} {r.pilot_rejected:>5} {r.no_plan:>6} "
            f"{r.escalated:>4} {r.rejected_early:>5} {r.beyond_tolerance:>6} "
            f"{_rate(r.uncaught_rate):>8} "
            f"{r.mean_verifier_retrainings:>9,.0f} "
            f"{r.mean_prover_evaluations:>9,.0f} "
            f"{r.mean_spot_checks:>7,.0f} {r.mean_tolerated:>5.1f} {r.mean_lies:>6.1f} "
            f"{r.mean_certified_upper_over_eps:>6.3f} {r.mean_radius_over_eps:>6.3f}"
            + ("" if r.holds else "  <-- FAILS")
        )
    print(
        "uncaught: accept rate of the MULT = 1 liar with the spot checks ignored, over the "
        "audits decided at a stage that tolerated every lie told (the corruption accounting; "
        "limit as for rate); beyond: audits decided at a later stage tolerating fewer lies "
        "than told, whose soundness rests on that stage's spot checks (see rate)"
    )
    for pt in points:
        if pt.claim == "completeness":
            print_terms(pt, eps[pt.task], results[pt.index])
    print(f"wall time {wall:.0f}s; wrote {out_dir / 'soundness.csv'}")
    failed = [
        f"{r.claim} {r.task} err/eps={r.err_over_eps:.3f} MULT={r.mult:g}: "
        f"rate {r.accept_rate:.3f} (uncaught {_rate(r.uncaught_rate)}) vs limit "
        f"{r.bound_rate:.3f}"
        for r in rows
        if not r.holds
    ]
    assert not failed, "claims missed: " + "; ".join(failed)
