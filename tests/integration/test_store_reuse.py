"""One result store for ``attribute`` and ``serve``: serve reuses what attribute trained.

``attribute --store DIR`` keeps weights by default, so ``serve --store DIR``
opens the same store (no second store, no refusal), an audit runs against it,
and the models attribute trained are still there after it.  A store written
with ``--no-store-weights`` is refused by ``serve`` with one line saying what
to run instead, before the server starts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from prover.store import ResultStore
from tests.integration._cli import LOGREG, attribute_serve_audit, prover_exe


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PACDA_HOME": str(tmp_path / "home")}


def test_serve_reuses_the_store_attribute_wrote(tmp_path: Path) -> None:
    task = tmp_path / "logreg.toml"
    task.write_text(LOGREG)
    store = tmp_path / "store"
    fit, done, body = attribute_serve_audit(
        task, tmp_path, _env(tmp_path), samples=120, seed=2, epsilon_relative=0.5,
        timeout=600, store=store,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "results and weights already stored" in fit.stderr
    assert done.returncode in (0, 1), done.stderr  # an audit ran to a verdict
    assert body.get("decision") in ("accept", "abort"), body
    config = ResultStore.read_config(store)
    assert config.store_weights
    shape = {"n_items": config.n_items, "n_outputs": config.n_outputs}
    with ResultStore.open(
        store, task_digest=config.task_digest, store_weights=True, mode="r", **shape
    ) as kept:
        # attribute's 120 fitting models, then what serve trained for the audit
        assert len(kept) > 120


def test_serve_refuses_a_store_without_weights_and_says_what_to_run(tmp_path: Path) -> None:
    task = tmp_path / "logreg.toml"
    task.write_text(LOGREG)
    store, scores = tmp_path / "store", tmp_path / "scores.npz"
    fit = subprocess.run(
        [prover_exe(), "attribute", "--task", str(task), "--method", "datamodel", "--samples",
         "60", "--check-samples", "0", "--out", str(scores), "--store", str(store),
         "--no-store-weights"],
        capture_output=True, text=True, timeout=300, check=False, env=_env(tmp_path),
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "cannot reuse it" in fit.stderr
    serve = subprocess.run(
        [prover_exe(), "serve", "--task", str(task), "--scores", str(scores), "--port", "0",
         "--store", str(store)],
        capture_output=True, text=True, timeout=120, check=False, env=_env(tmp_path),
    )  # fmt: skip
    assert serve.returncode == 2, (serve.stdout, serve.stderr)
    lines = [ln for ln in serve.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "keeps no model weights" in lines[0], serve.stderr
    assert "attribute --store NEW_DIR" in lines[0]
    assert "listening on" not in serve.stdout
