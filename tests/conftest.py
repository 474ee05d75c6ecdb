"""Shared test configuration: hypothesis profiles and tolerance constants."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Exact-arithmetic comparisons in float64 (enumeration vs closed forms).
EXACT_RTOL = 1e-9
EXACT_ATOL = 1e-12

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
