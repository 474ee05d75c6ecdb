"""kronfluence, dattri and TRAK on ``logreg`` through the torch adapter, imported and audited.

For each library: its scores computed through :func:`prover.tasks.torch_adapter.torch_adapter`
(the library saving its own output where it does), imported in memory
(:func:`prover.attribution.import_scores`) and from the library's own files
(``pacda-prover import-scores --format LIBRARY``), which must agree; then the
file's scores are audited over real gRPC at twice the smallest epsilon the
self-check says they pass, and the report names the tool.  The library-backed
methods (``--method kronfluence-ekfac`` ...) run through ``attribute``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from protocol.scores import load_scores
from prover.attribution import AttributionConfig, attribute, import_scores
from prover.attribution.libraries.dattri_scores import dattri_if_scores
from prover.attribution.libraries.kronfluence_scores import kronfluence_scores
from prover.attribution.libraries.trak_scores import trak_scores
from prover.cli import main
from prover.tasks.base import Task
from prover.tasks.registry import load_task
from prover.tasks.torch_adapter import TorchAdapter, torch_adapter
from tests.adversarial._audit import audit

pytestmark = [
    # the libraries' own deprecation warnings (torch.cuda.amp, ...)
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

LOGREG = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "logreg.toml"
CALIBRATE, CHECK, SEED = 200, 400, 1


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task(LOGREG)


@pytest.fixture(scope="module")
def adapter(task: Task) -> TorchAdapter:
    return torch_adapter(task, dtype=torch.float32)


def _scores_and_files(library: str, adapter: TorchAdapter, where: Path) -> tuple[Any, Path]:
    """The library's ``(Z, N)`` scores and what it saved (the path ``--in`` names)."""
    if library == "kronfluence":
        return kronfluence_scores(adapter, output_dir=where / "kronfluence"), where / "kronfluence"
    if library == "trak":
        return trak_scores(adapter, save_dir=where / "trak"), where / "trak"
    beta = dattri_if_scores(adapter)
    # what a dattri user saves: attribute()'s (n_train, n_test) tensor
    torch.save(torch.from_numpy(np.ascontiguousarray(beta.T)), where / "dattri_if.pt")
    return beta, where / "dattri_if.pt"


@pytest.mark.parametrize("library", ["kronfluence", "dattri", "trak"])
def test_library_scores_are_imported_in_memory_and_from_files_and_audited(
    library: str, task: Task, adapter: TorchAdapter, tmp_path: Path
) -> None:
    beta, saved = _scores_and_files(library, adapter, tmp_path)
    assert beta.shape == (task.n_outputs, task.n_items)
    mem = import_scores(
        beta, task, layout="ZN", calibrate=CALIBRATE, check_samples=CHECK, seed=SEED,
        tool=library,
    )  # fmt: skip
    assert mem.check is not None and mem.check.lds > 0.3, mem.check
    out = tmp_path / "scores.npz"
    code = main(["import-scores", "--task", str(LOGREG), "--in", str(saved), "--format", library,
                 "--calibrate", str(CALIBRATE), "--check-samples", "0", "--seed", str(SEED),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    from_file = load_scores(out)
    assert from_file.method == f"imported-{library}"
    np.testing.assert_allclose(from_file.theta, mem.scores.theta, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(from_file.theta0, mem.scores.theta0, rtol=1e-6, atol=1e-9)

    eps = 2.0 * max(o.eps_min for o in mem.check.outputs)
    assert np.isfinite(eps)
    report = audit(task, LOGREG, from_file, None, epsilon=eps)[0].report
    assert report.decision == "accept", report.reason
    provenance = report.scores_provenance
    assert provenance is not None and provenance["method"] == f"imported-{library}"
    assert provenance["calibration"]["tool"] == library


@pytest.mark.parametrize(
    ("method", "library"),
    [
        ("kronfluence-ekfac", "kronfluence"),
        ("dattri-if", "dattri"),
        ("dattri-trak", "dattri"),
        ("trak-library", "trak"),
    ],
)
def test_library_backed_methods_attribute_through_the_pipeline(
    method: str, library: str, task: Task
) -> None:
    cfg = AttributionConfig(method=method, samples=100, check_samples=0, seed=3)
    result = attribute(task, cfg, base_dir=LOGREG.parent, progress=False)
    scores = result.scores
    assert scores.method == method
    assert scores.theta.shape == (task.n_outputs, task.n_items)
    assert np.all(np.isfinite(scores.theta))
    fit = scores.meta["fit"]
    assert fit["library"] == library and fit["library_version"]
    assert fit["calibration"]["samples"] == 100
    # the calibrated predictors explain the calibration retrainings far better than a
    # constant (random scores give R^2 about 1/100 on 100 retrainings)
    assert np.mean(fit["calibration"]["r2"]) > 0.15, fit["calibration"]["r2"]


def test_library_formats_refuse_what_is_not_the_library_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    npy = tmp_path / "scores.npy"
    np.save(npy, np.zeros((16, 400)))
    cases = [
        (("--format", "kronfluence", "--in", empty), "holds 0 kronfluence pairwise score files"),
        (("--format", "trak", "--in", empty), "holds 0 TRAK score files"),
        (("--format", "dattri", "--in", npy), "--format dattri reads a .pt file"),
        (("--format", "trak", "--in", npy, "--key", "x"), "--key names a TRAK experiment"),
    ]
    for args, message in cases:
        code = main(["import-scores", "--task", str(LOGREG), *map(str, args), "--intercept-zero",
                     "--check-samples", "0", "--out", str(tmp_path / "out.npz")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err, (args, err)
    assert not (tmp_path / "out.npz").exists()
