"""Task data: user .npz files for logreg, content hashes, data errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from prover.tasks import load_task, load_task_text
from prover.tasks.logreg import LogregTask

TASK = """
[task]
kind = "logreg"
n_outputs = 4
[task.data]
source = "{source}"
n_train = {n_train}
[task.train]
steps = 20
"""


def write_npz(path: Path, *, seed: int = 0, n: int = 50, labels: tuple[int, int] = (3, 7)) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 10, 5))
    y = np.where(x[:, 0] + 0.5 * rng.normal(size=n + 10) > 0, labels[1], labels[0])
    np.savez(path, X_train=x[:n], y_train=y[:n], X_test=x[n:], y_test=y[n:])


def task_file(tmp_path: Path, source: str, n_train: int = 40) -> Path:
    path = tmp_path / "task.toml"
    path.write_text(TASK.format(source=source, n_train=n_train))
    return path


def test_npz_relative_to_the_task_file_is_used(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "mine.npz")
    task = load_task(task_file(tmp_path, "data/mine.npz"))
    assert isinstance(task, LogregTask)
    assert task.n_items == 40 and task.n_outputs == 4 and task.n_params == 6
    x = np.ones((1, 40), np.int8)
    out = task.train_batch(x, np.zeros(1, np.uint64))
    assert np.all(np.isfinite(out.outputs))
    assert set(np.unique(task._y)) == {-1.0, 1.0}  # labels 3, 7 -> -1, +1


def test_npz_content_is_in_the_digest(tmp_path: Path) -> None:
    write_npz(tmp_path / "d.npz", seed=0)
    first = load_task(task_file(tmp_path, "d.npz")).digest
    assert load_task(task_file(tmp_path, "d.npz")).digest == first
    write_npz(tmp_path / "d.npz", seed=1)
    assert load_task(task_file(tmp_path, "d.npz")).digest != first


def test_builtin_dataset_digest_is_stable_across_builds() -> None:
    a = load_task_text('[task]\nkind = "logreg"\n[task.train]\nsteps = 1\n')
    b = load_task_text('[task]\nkind = "logreg"\n[task.train]\nsteps = 1\n')
    c = load_task_text('[task]\nkind = "logreg"\n[task.data]\nsplit_seed = 1\n')
    assert a.digest == b.digest
    assert isinstance(a, LogregTask) and isinstance(c, LogregTask)
    assert a.dataset_digest != c.dataset_digest


def test_npz_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^task\.data\.source: cannot read .*missing\.npz"):
        load_task(task_file(tmp_path, "missing.npz"))
    np.savez(tmp_path / "partial.npz", X_train=np.zeros((3, 2)))
    with pytest.raises(InvalidArgument, match=r"lacks arrays \['y_train', 'X_test', 'y_test'\]"):
        load_task(task_file(tmp_path, "partial.npz"))
    write_npz(tmp_path / "small.npz", n=30)
    with pytest.raises(InvalidArgument) as info:
        load_task(task_file(tmp_path, "small.npz", n_train=40))
    assert str(info.value) == (
        "task.data.n_train: expected an integer <= 30 (rows of X_train in small.npz), got 40"
    )
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "three.npz",
        X_train=rng.normal(size=(50, 2)),
        y_train=np.arange(50) % 3,
        X_test=rng.normal(size=(5, 2)),
        y_test=np.zeros(5),
    )
    with pytest.raises(InvalidArgument, match="logreg needs exactly two label values, got 3"):
        load_task(task_file(tmp_path, "three.npz"))
