"""Shared test configuration: hypothesis profiles, tolerance constants, a per-test PACDA_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
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


@pytest.fixture(autouse=True)
def pacda_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$PACDA_HOME`` per test: its challenge record and default key are its own.

    The Verifier's record of challenges issued (``verifier.challenge_log``) lives
    there by default; without this, audits of the same scores in different tests
    would share one record on the test machine (and the user's own file), and
    every later audit would plan with a smaller delta.
    """
    home = tmp_path_factory.mktemp("pacda-home")
    monkeypatch.setenv("PACDA_HOME", str(home))
    return home
