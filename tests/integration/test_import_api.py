"""Scores in memory (``prover.attribution.import_scores``): arrays and tensors, the self-check.

On ``synthetic`` (exact err) the imported scores' self-check must bracket the
exact err, in both encodings and layouts; a torch tensor and the numpy array
it holds give the same scores; bad inputs fail before any training.  Then the
imported scores are served and audited over real gRPC, and the report names
the tool.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protocol.errors import InvalidArgument
from protocol.scores import Scores
from prover.attribution import import_scores
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from tests.adversarial._audit import audit
from tests.adversarial.conftest import SYNTHETIC_TOML


@pytest.fixture(scope="module")
def synthetic() -> Task:
    """The example ``synthetic`` task (N = 50, Z = 2, exact err)."""
    return load_task(SYNTHETIC_TOML)


def _exact_err(task: Task, scores: Scores) -> np.ndarray:
    return np.asarray(task.function.err(scores.theta0, scores.theta))  # type: ignore[attr-defined]


def _noisy_mask_scores(task: Task, sd: float, seed: int) -> np.ndarray:
    """The optimal scores in the mask encoding, ``(N, Z)``, with Gaussian noise of ``sd``."""
    _, theta = task.function.optimal_attribution()  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    return (2.0 * theta + rng.normal(0.0, sd, theta.shape)).T


@pytest.mark.parametrize("sd", [0.0, 0.08])
def test_the_self_check_brackets_the_exact_err(synthetic: Task, sd: float) -> None:
    beta = _noisy_mask_scores(synthetic, sd, seed=1)
    out = import_scores(beta, synthetic, calibrate=300, check_samples=600, seed=4, tool="noisy")
    err = _exact_err(synthetic, out.scores)
    assert out.check is not None and out.calibration is not None
    assert out.layout == "NZ" and out.check.n_pairs >= 300
    assert out.n_trained == 300 + 2 * out.check.n_pairs
    for z, o in enumerate(out.check.outputs):
        assert o.err_low <= err[z] <= o.err_high, (z, err[z], o)
        assert o.eps_min >= o.err_high  # the smallest epsilon covers the upper estimate
    if sd > 0:
        assert float(err.min()) > 0.01  # the noise is visible to the check
        assert all(o.err_high > 0.01 for o in out.check.outputs)
    assert out.scores.method == "imported-noisy"
    assert out.scores.meta["import"]["self_check"]["n_pairs"] == out.check.n_pairs


def test_tensors_and_arrays_and_both_layouts_give_the_same_scores(synthetic: Task) -> None:
    beta = _noisy_mask_scores(synthetic, 0.05, seed=2)
    kw = {"calibrate": 50, "check_samples": 0, "seed": 9}
    a = import_scores(beta, synthetic, **kw)  # type: ignore[arg-type]
    t = import_scores(torch.from_numpy(beta.copy()).float(), synthetic, **kw)  # type: ignore[arg-type]
    zn = import_scores(beta.T, synthetic, layout="ZN", **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(t.scores.theta, a.scores.theta, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(zn.scores.theta, a.scores.theta)
    assert a.check is None and a.n_trained == 50


def test_pm_scores_with_given_intercepts_are_taken_as_they_are(synthetic: Task) -> None:
    theta0, theta = synthetic.function.optimal_attribution()  # type: ignore[attr-defined]
    out = import_scores(theta, synthetic, encoding="pm", intercept=theta0, check_samples=0)
    np.testing.assert_array_equal(out.scores.theta, theta)
    np.testing.assert_array_equal(out.scores.theta0, theta0)
    assert out.n_trained == 0 and float(_exact_err(synthetic, out.scores).max()) < 1e-12


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (np.ones((3, 3)), {"calibrate": 10}, "expected shape"),
        (np.full((50, 2), np.nan), {"calibrate": 10}, "non-finite"),
        (np.ones((50, 2)), {"calibrate": 10, "intercept": "zero"}, "exactly one of"),
        (np.ones((50, 2)), {}, "exactly one of"),
        (np.ones((50, 2)), {"calibrate": 2}, "K >= 3"),
        (np.ones((50, 2)), {"intercept": "median"}, "'mean', 'zero'"),
        (np.ones((50, 2)), {"intercept": [1.0, 2.0, 3.0]}, "Z = 2 numbers"),
        (np.array([["a"] * 2] * 50), {"calibrate": 10}, "not a real number type"),
        (np.ones((50, 2)), {"calibrate": 10, "check_samples": 3}, ">= 8"),
        (np.ones((50, 2)), {"calibrate": 10, "tool": "bad name"}, "letters, digits"),
        (np.ones((50, 2)), {"calibrate": 10, "encoding": "log"}, "encoding"),
    ],
)
def test_bad_inputs_fail_before_training(
    synthetic: Task, values: object, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        import_scores(values, synthetic, **kwargs)  # type: ignore[arg-type]


def test_imported_in_memory_scores_are_audited_over_grpc(synthetic: Task) -> None:
    beta = _noisy_mask_scores(synthetic, 0.0, seed=3)
    out = import_scores(beta, synthetic, calibrate=400, check_samples=0, tool="mytool")
    result = audit(synthetic, SYNTHETIC_TOML, out.scores, None, epsilon=0.3)[0]
    report = result.report
    assert report.decision == "accept", report.reason
    provenance = report.scores_provenance
    assert provenance is not None and provenance["method"] == "imported-mytool"
    assert provenance["calibration"]["tool"] == "mytool"
    assert provenance["calibration"]["samples"] == 400
