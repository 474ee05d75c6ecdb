"""The self-check as ``attribute`` and ``import-scores`` print it, and the budget line after it.

Both commands print the same table (:meth:`prover.attribution.SelfCheck.table`)
and the same budget line, so a Prover reads one description of its scores
whichever way it made them.
"""

from __future__ import annotations

import math

from prover.attribution import SelfCheck

__all__ = ["HINT_FRACTIONS", "budget_hint", "print_self_check"]

#: Epsilons (as fractions of Var(f)) the budget line speaks of.
HINT_FRACTIONS = (0.1, 0.05)
#: Methods whose err falls about like 1/M in their M sampled trainings.
_SAMPLED = ("datamodel", "empirical-influence")


def print_self_check(check: SelfCheck | None, *, skipped: str = "--check-samples 0") -> None:
    """The self-check table and the worst relative err (or one line saying it was skipped)."""
    if check is None:
        print(f"self-check         skipped ({skipped})")
        return
    print(
        f"self-check on held-out retrainings (err with the audit's {check.estimator} "
        "statistic; B>=2 = mse - err):"
    )
    print(check.table())
    print(f"worst err / Var(f): {check.worst_relative_err():.2%}")


def budget_hint(check: SelfCheck | None, *, samples: int, method: str) -> str:
    """What these scores can be audited at, and roughly what budget a smaller epsilon needs.

    ``eps_min`` (the self-check's smallest auditable epsilon, worst output, in
    units of that output's Var(f)) is read off the check.  For methods fitted
    on ``M`` sampled trainings (datamodel, empirical influence) err, and with it
    eps_min, falls about like ``1/M``, so about ``M x eps_min / target``
    trainings reach ``epsilon = target x Var(f)`` — a rough guide, printed for
    the targets of :data:`HINT_FRACTIONS` below the current eps_min.  Empty
    without a self-check.
    """
    if check is None or not check.outputs:
        return ""
    worst = max((o.eps_min / o.variance if o.variance > 0 else math.inf) for o in check.outputs)
    if not math.isfinite(worst):
        return (
            "budget: no epsilon up to the planner's limit audits these scores for every output "
            "(see eps_min); more trainings or another method are needed"
        )
    line = f"budget: these scores can be audited down to epsilon ~ {worst:.3g} x Var(f)"
    if samples > 0 and method in _SAMPLED:
        needs = [
            f"~{math.ceil(samples * worst / t):,d} for {t:g} x Var(f)"
            for t in HINT_FRACTIONS
            if worst > t
        ]
        if needs:
            line += (
                f"; err falls about like 1/M, so --samples {', '.join(needs)} "
                f"(now {samples:,d}; a rough guide)"
            )
    return line
