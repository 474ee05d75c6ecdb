"""The Verifier's audit configuration: frozen, validated, keyword-only.

The fields that ``pacda-verifier audit`` / ``certify`` offer as options carry
their one-line help text in ``field(metadata={"help": ...})``; the CLI takes
the default and the help from the field
(:func:`verifier.cli._plan_args.add_config_option`), so the two cannot drift.
Pure at import time (only :mod:`protocol`): the CLI builds its parser from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from protocol.errors import InvalidArgument
from protocol.stats import check_named, default_estimator, get, resolve

__all__ = ["AuditConfig", "AuditMode", "AuditPlanning"]

AuditMode = Literal["committed", "paper"]
AuditPlanning = Literal["rigorous", "practical"]


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """What the Verifier asks for, and how it talks to the Prover.

    Give exactly one of ``epsilon`` and ``epsilon_relative``.

    Attributes:
        epsilon: accuracy, absolute, in squared output units (docs/design.md §1 "Units
            of epsilon"); the audit aborts if err(a) >= epsilon.  With
            ``epsilon_relative`` give ``None`` (the default; required):
            :meth:`with_pilot_variance` sets it from the Verifier's pilot.  Code that
            needs the number reads :meth:`require_epsilon` of the configuration
            that method returns.
        delta: failure probability.
        mode: ``committed`` (default) or ``paper`` (Karchmer et al.
            2025, Alg. 1: the Verifier also trains ``plan.local_trainings`` models).
        planning: ``rigorous`` (range-based) or ``practical`` (variance-based).
        estimator: the statistic's estimator (``auto``, ``degree-1``, ``lp``,
            ``chebyshev``, ``three-point``, ``three-point-nnls``; ``degree-1`` and
            ``lp`` only in committed mode with practical planning,
            ``three-point-nnls`` only in paper mode).  ``auto`` (default) is the
            default statistic's first estimator: ``degree-1`` (the u-statistic)
            for committed mode with practical planning, ``chebyshev`` otherwise.
        statistic: the audit's statistic by registered name (:mod:`protocol.stats`;
            ``pacda-verifier audit --help`` lists them); it must run in ``mode``.
            ``None`` (default): the one serving mode, planning and estimator
            (the registry's default, ``u-statistic``, for committed mode with
            practical planning).
        completeness_radius: u-statistic and ``lp`` plans: honest scores with
            err below this (absolute) are accepted w.p. ``>= 1 - delta``; ``None``:
            epsilon / 2 (u-statistic), epsilon / 10 (``lp``).
        tail_fraction: ``lp`` plans, completeness sizing only: assume
            ``B_{>=3}(q) <= tail_fraction * E[q^2]``.
        prover_weight: ``lp`` plans: the planner minimises ``Verifier retrainings
            + prover_weight * (epsilon / max_z E[q_z^2]) * Prover evaluations``
            (under ``max_prover_evaluations``).
        escalation_factor: ``lp`` plans: after a first-stage rejection the
            Verifier may draw later stages of spot checks at a higher clip
            level, up to this many times the planned spot checks in all (1 or
            less: never).
        early_rejection: ``lp`` plans: stop the result stream when a prefix
            already proves ``err >= epsilon`` (the screening,
            :mod:`protocol.screening`) and reject without any spot check when no
            spot-check outcome could accept (cheap); ``False`` receives every
            result and draws the spot checks anyway, so that a lying Prover is
            caught (a signed mismatch in the report) rather than only rejected
            on its numbers.
        variance: practical planning: a declared upper bound on the second
            moment of the planned values (``q = f - g_a`` in committed mode,
            ``f - c`` in paper mode); ``None`` estimates it from a pilot of the
            Verifier's *own* trainings (never from Prover values).
        pilot_trainings: size of that pilot (practical planning without ``variance``).
        variance_inflation: the pilot second moment is multiplied by this
            before planning (a margin for its own sampling error).
        chunk_points: results per ``ResultBatch`` the Verifier asks for.
        open_batch: point indices per ``Open`` request (servers cap it).
        train_chunk_size: models per vectorised chunk of local retraining.
        rpc_timeout_s: deadline of each RPC (seconds).
        max_resumes: how many times a dropped result stream is resumed.
        max_attribution_values: refuse commitments with more values than this.
        max_prover_evaluations: abort (before any challenge) when the plan needs
            more Prover evaluations than this; the Verifier holds every result
            (Z float64 values each) in memory.
        epsilon_relative: ``R``: epsilon is set to ``R x max_z Var(f_z)`` measured
            on the Verifier's own pilot (practical planning without ``variance``)
            by :meth:`with_pilot_variance`; give ``epsilon`` as ``None`` (the
            default).  The report then gives both: ``plan.epsilon`` (absolute)
            and ``epsilon_relative == R``; :attr:`verifier.driver.Auditor.config`
            after the audit holds the absolute epsilon.
        epsilon_variance: the pilot's ``max_z Var(f_z)`` that set ``epsilon``
            (``epsilon == epsilon_relative x epsilon_variance``); filled in, with
            ``epsilon``, by :meth:`with_pilot_variance`.  Leave it ``None``.
        device: where the Verifier retrains (pilot, spot checks, local
            trainings): ``"cpu"`` (default), ``"cuda"``, ``"cuda:K"`` or ``"auto"``
            (:mod:`prover.tasks.device`).  Only the spelling is checked here; the
            :class:`~verifier.driver.Auditor` resolves it on this machine.  When
            its class (cpu or cuda) differs from the one the Prover announces,
            the audit charges the task's larger (CUDA) tolerances.
        challenge_log: the Verifier's record of the challenges it issued
            (:mod:`verifier.challenge_log`): ``"default"`` (the per-user file),
            ``"none"`` or ``None`` (no record: every audit spends the whole
            ``delta``), or a file path.  With a record, audit ``j`` of the same
            scores by the same Prover key spends ``delta / (j (j + 1))``, so all
            audits of them together err with probability at most ``delta``.
    """

    epsilon: float | None = field(
        default=None,
        metadata={"help": "accuracy, absolute (squared output units); abort if err(a) >= epsilon"},
    )
    delta: float
    mode: AuditMode = field(
        default="committed",
        metadata={
            "help": (
                "committed (direct gap) or paper (Karchmer et al. 2025, Alg. 1: the "
                "Verifier also trains local models)"
            )
        },
    )
    planning: AuditPlanning = field(
        default="practical",
        metadata={"help": "rigorous (range-based) or practical (variance-based)"},
    )
    estimator: str = field(
        default="auto",
        metadata={
            "help": (
                "the statistic's estimator; auto = the default statistic's (degree-1, the "
                "u-statistic, for committed mode with practical planning; chebyshev otherwise)"
            )
        },
    )
    statistic: str | None = None
    completeness_radius: float | None = field(
        default=None,
        metadata={
            "help": (
                "u-statistic and lp plans: honest scores with err below this (absolute) "
                "pass w.p. >= 1 - delta (default: epsilon / 2 for the u-statistic, "
                "epsilon / 10 for lp)"
            )
        },
    )
    tail_fraction: float = field(
        default=0.1,
        metadata={"help": "lp plans, completeness sizing only: assume B_{>=3}(q) <= this x E[q^2]"},
    )
    prover_weight: float = field(
        default=0.05,
        metadata={
            "help": (
                "lp plans: minimise Verifier retrainings + this x (epsilon / E[q^2]) x "
                "Prover evaluations"
            )
        },
    )
    escalation_factor: float = 40.0
    early_rejection: bool = True
    variance: float | None = field(
        default=None,
        metadata={
            "help": (
                "practical planning: declared bound on the planned values' second moment "
                "(default: a pilot of the Verifier's own trainings)"
            )
        },
    )
    pilot_trainings: int = field(default=200, metadata={"help": "pilot trainings"})
    variance_inflation: float = 1.5
    chunk_points: int = field(default=256, metadata={"help": "results per batch"})
    open_batch: int = 1024
    train_chunk_size: int = 512
    rpc_timeout_s: float = field(default=3600.0, metadata={"help": "deadline per RPC, seconds"})
    max_resumes: int = 3
    max_attribution_values: int = 50_000_000
    max_prover_evaluations: int = 20_000_000
    epsilon_relative: float | None = field(
        default=None,
        metadata={
            "help": (
                "accuracy relative to the outputs' spread: epsilon = R x max_z Var(f_z) "
                "measured on the Verifier's own pilot (practical planning without a declared "
                "variance); the report records both R and the absolute epsilon"
            )
        },
    )
    epsilon_variance: float | None = None
    device: str = field(
        default="cpu",
        metadata={
            "help": (
                "where the Verifier retrains: cpu, cuda (the current GPU), cuda:K or auto "
                "(CUDA when torch sees a GPU and the task can use it, else the CPU); a GPU "
                "this machine lacks is refused.  When the Prover trains on another device "
                "class, the task's larger (CUDA) tolerance is charged"
            )
        },
    )

    challenge_log: str | None = field(
        default="default",
        metadata={
            "help": (
                "the local record of challenges issued per (Prover key, attribution digest): "
                "audit j of the same scores spends delta / (j (j + 1)), so a Prover that "
                "walks away after seeing the challenge and asks again gains nothing.  "
                "'default' is $PACDA_HOME/challenges.jsonl (else "
                "~/.local/share/pacda/challenges.jsonl), 'none' keeps no record (each audit "
                "then spends the whole delta), anything else is a file path"
            )
        },
    )

    def __post_init__(self) -> None:
        from prover.tasks.device import parse_device  # here: this module stays pure

        parse_device(self.device)
        if self.epsilon is not None and not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise InvalidArgument(f"epsilon must be finite and > 0, got {self.epsilon}")
        if not 0.0 < self.delta < 1.0:
            raise InvalidArgument(f"delta must lie in (0, 1), got {self.delta}")
        if self.mode not in ("committed", "paper"):
            raise InvalidArgument(f"mode must be 'committed' or 'paper', got {self.mode!r}")
        if self.planning not in ("rigorous", "practical"):
            raise InvalidArgument(
                f"planning must be 'rigorous' or 'practical', got {self.planning!r}"
            )
        if self.statistic is not None:
            check_named(self.statistic, self.mode, self.planning, self.estimator)
        if self.variance is not None and not (self.variance > 0 and math.isfinite(self.variance)):
            raise InvalidArgument(f"variance must be finite and > 0, got {self.variance}")
        for name in ("pilot_trainings", "chunk_points", "train_chunk_size", "open_batch"):
            if getattr(self, name) < 2:
                raise InvalidArgument(f"{name} must be >= 2, got {getattr(self, name)}")
        if not self.variance_inflation >= 1.0:
            raise InvalidArgument(f"variance_inflation must be >= 1, got {self.variance_inflation}")
        if not self.rpc_timeout_s > 0:
            raise InvalidArgument(f"rpc_timeout_s must be > 0, got {self.rpc_timeout_s}")
        if (
            self.completeness_radius is not None
            and self.epsilon is not None
            and not 0.0 <= self.completeness_radius < self.epsilon
        ):
            raise InvalidArgument(
                f"completeness_radius must lie in [0, epsilon), got {self.completeness_radius}"
            )
        if not 0.0 <= self.tail_fraction <= 1.0:
            raise InvalidArgument(f"tail_fraction must lie in [0, 1], got {self.tail_fraction}")
        if not (self.prover_weight >= 0 and math.isfinite(self.prover_weight)):
            raise InvalidArgument(
                f"prover_weight must be finite and >= 0, got {self.prover_weight}"
            )
        if not (self.escalation_factor >= 0 and math.isfinite(self.escalation_factor)):
            raise InvalidArgument(
                f"escalation_factor must be finite and >= 0, got {self.escalation_factor}"
            )
        if self.max_resumes < 0:
            raise InvalidArgument(f"max_resumes must be >= 0, got {self.max_resumes}")
        self._check_epsilon()

    def _check_epsilon(self) -> None:
        """Exactly one of epsilon and epsilon_relative (both once the pilot set epsilon)."""
        r, var = self.epsilon_relative, self.epsilon_variance
        if r is None:
            if self.epsilon is None:
                raise InvalidArgument(
                    "give exactly one of epsilon and epsilon_relative: neither given"
                )
            if var is not None:
                raise InvalidArgument(
                    "epsilon_variance is set (by with_pilot_variance) only with epsilon_relative"
                )
        else:
            self._check_epsilon_relative(r)
            if var is None and self.epsilon is not None:
                raise InvalidArgument(
                    "give exactly one of epsilon and epsilon_relative, not both (with "
                    "epsilon_relative, epsilon is set from the Verifier's pilot)"
                )
            if var is not None and self.epsilon != r * var:
                raise InvalidArgument(
                    "epsilon must equal epsilon_relative x epsilon_variance: leave both to "
                    "with_pilot_variance"
                )

    def _check_epsilon_relative(self, r: float) -> None:
        if not (r > 0 and math.isfinite(r)):
            raise InvalidArgument(f"epsilon_relative must be finite and > 0, got {r}")
        if self.planning != "practical" or self.variance is not None:
            raise InvalidArgument(
                "epsilon_relative needs the Verifier's pilot: practical planning without a "
                "declared variance"
            )
        if self.completeness_radius is not None:
            raise InvalidArgument(
                "completeness_radius is absolute: with epsilon_relative leave it at its "
                "default (epsilon / 10)"
            )

    def with_pilot_variance(self, variance: float) -> AuditConfig:
        """The configuration with ``epsilon = epsilon_relative x variance`` (unchanged if unset).

        ``variance`` is the pilot's ``max_z Var(f_z)``; it is kept as ``epsilon_variance``.

        Raises:
            InvalidArgument: the variance is not finite and > 0.
        """
        if self.epsilon_relative is None:
            return self
        if not (variance > 0 and math.isfinite(variance)):
            raise InvalidArgument(
                f"epsilon_relative: the pilot's Var(f) is {variance:g}; cannot set epsilon from it"
            )
        return replace(self, epsilon=self.epsilon_relative * variance, epsilon_variance=variance)

    def require_epsilon(self) -> float:
        """The absolute epsilon.

        Raises:
            InvalidArgument: epsilon is still to be set from the pilot
                (``epsilon_relative`` before :meth:`with_pilot_variance`).
        """
        if self.epsilon is None:
            raise InvalidArgument(
                f"epsilon is set from the Verifier's pilot (epsilon_relative = "
                f"{self.epsilon_relative:g}): read it from the configuration "
                "with_pilot_variance returns"
            )
        return self.epsilon

    @property
    def resolved_estimator(self) -> str:
        """The estimator family in force (``auto`` resolved)."""
        if self.estimator != "auto":
            return self.estimator
        if self.statistic is not None:
            return get(self.statistic).estimators[0]
        return default_estimator(self.mode, self.planning)

    @property
    def resolved_statistic(self) -> str:
        """The registered statistic the audit decides with (``None`` resolved)."""
        return resolve(self.mode, self.planning, self.resolved_estimator, self.statistic).name

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict."""
        return asdict(self)
