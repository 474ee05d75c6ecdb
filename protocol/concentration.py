"""One-sided deviation bounds for sums of independent bounded terms.

For independent ``X_i`` with ``a_i <= X_i <= a_i + R_i``:

* Hoeffding: ``P(S - E S <= -t) <= exp(-2 t^2 / sum_i R_i^2)``, so with
  probability ``>= 1 - delta`` the deviation is below
  ``t = sqrt(sum_i R_i^2 * ln(1/delta) / 2)``.
* Bernstein: if ``|X_i - E X_i| <= M`` and ``sum_i Var X_i <= V``, the
  deviation is below ``t = sqrt(2 V L) + M L / 3`` with ``L = ln(1/delta)``.
"""

from __future__ import annotations

import math

from protocol.errors import InvalidArgument

__all__ = ["bernstein_deviation", "hoeffding_deviation"]


def _log_inv(delta: float) -> float:
    if not 0.0 < delta < 1.0:
        raise InvalidArgument(f"delta must lie in (0, 1), got {delta}")
    return math.log(1.0 / delta)


def hoeffding_deviation(sum_squared_ranges: float, delta: float) -> float:
    """One-sided Hoeffding deviation ``sqrt(sum_i R_i^2 ln(1/delta) / 2)``."""
    return math.sqrt(max(sum_squared_ranges, 0.0) * _log_inv(delta) / 2.0)


def bernstein_deviation(variance_sum: float, max_deviation: float, delta: float) -> float:
    """One-sided Bernstein deviation ``sqrt(2 V L) + M L / 3``, ``L = ln(1/delta)``."""
    log_term = _log_inv(delta)
    return math.sqrt(2.0 * max(variance_sum, 0.0) * log_term) + max_deviation * log_term / 3.0
