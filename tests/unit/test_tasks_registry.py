"""The task registry: built-ins, in-process registration and ``pacda.tasks`` entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pytest
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.taskspec import POSITIVE, TaskSpec, array_digest, spec_field
from prover.tasks import (
    ENTRY_POINT_GROUP,
    SpecTask,
    Task,
    TrainedBatch,
    check_batch_inputs,
    known_kinds,
    load_task,
    load_task_text,
    register_task,
    task_class,
    unregister_task,
)
from prover.tasks.logreg import LogregTask
from prover.tasks.specs import LogregSpec

# A user task written the way docs/tasks.md tells users to: a spec class and a
# SpecTask subclass.  f_z(x) = sum_i a_zi x_i / N with a fixed +-1 matrix a.
PLUGIN_SOURCE = """
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from protocol.taskspec import POSITIVE, SEED, TaskSpec, array_digest, spec_field
from prover.tasks import SpecTask, TrainedBatch, check_batch_inputs


@dataclass(frozen=True, kw_only=True)
class VoteSpec(TaskSpec):
    kind_name: ClassVar[str | None] = "{kind}"
    kind: str = spec_field(default="{kind}")
    bound: float = spec_field(default=1.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=0.0)
    weight_tolerance: float = spec_field(default=0.0)
    n_outputs: int = spec_field(default=2, check=POSITIVE)
    n_items: int = spec_field(default=8, check=POSITIVE)
    seed: int = spec_field(default=0, check=SEED)


class VoteTask(SpecTask[VoteSpec]):
    spec_class: ClassVar[type[TaskSpec] | None] = VoteSpec

    def __init__(self, spec: VoteSpec) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed))
        self.a = rng.choice(np.array([-1.0, 1.0]), size=(spec.n_outputs, spec.n_items))
        super().__init__(spec, array_digest({{"a": self.a}}))

    @classmethod
    def from_spec(cls, spec, *, base_dir=None):
        return cls(spec)

    @property
    def n_items(self) -> int:
        return self.spec.n_items

    def train_batch(self, x, seeds):
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        out = x.astype(np.float64) @ self.a.T / self.n_items
        return TrainedBatch(outputs=np.clip(out, -self.bound, self.bound), weights=None)
"""


def _write_plugin(root: Path, dist: str, module: str, kind: str, value: str | None = None) -> None:
    """An installed-looking distribution: a module plus ``<dist>.dist-info`` with entry points."""
    (root / f"{module}.py").write_text(PLUGIN_SOURCE.format(kind=kind))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    target = value if value is not None else f"{module}:VoteTask"
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{kind} = {target}\n")


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh sys.path entry for fake installed plugins; their modules are unloaded after."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("pacda_test_plugin"):
            del sys.modules[name]


# ---------------------------------------------------------- entry points
def test_entry_point_plugin_is_found_built_and_trained(plugin_path: Path) -> None:
    _write_plugin(plugin_path, "pacda_test_plugin_vote", "pacda_test_plugin_vote", "vote")
    assert "vote" in known_kinds()
    task = load_task_text('[task]\nkind = "vote"\nn_items = 6\n')
    assert type(task).__name__ == "VoteTask"
    assert task.n_items == 6 and task.n_outputs == 2
    x = np.ones((3, 6), dtype=np.int8)
    out = task.train_batch(x, np.zeros(3, dtype=np.uint64)).outputs
    assert np.allclose(np.abs(out), np.abs(task.a.sum(axis=1)) / 6)  # type: ignore[attr-defined]
    assert task.digest.startswith("sha256:")


def test_entry_point_plugin_errors_name_the_kind(plugin_path: Path) -> None:
    _write_plugin(
        plugin_path,
        "pacda_test_plugin_gone",
        "pacda_test_plugin_gone",
        "gone",
        value="pacda_test_plugin_missing_module:VoteTask",
    )
    with pytest.raises(InvalidArgument) as info:
        load_task_text('[task]\nkind = "gone"\n')
    assert str(info.value).startswith(
        "task.kind: the plugin for 'gone' (pacda_test_plugin_missing_module:VoteTask) "
        "failed to load: ModuleNotFoundError"
    )


def test_entry_point_that_is_not_a_task_is_refused(plugin_path: Path) -> None:
    _write_plugin(
        plugin_path,
        "pacda_test_plugin_np",
        "pacda_test_plugin_np",
        "notatask",
        value="pacda_test_plugin_np:VoteSpec",
    )
    with pytest.raises(InvalidArgument, match=r"^task\.kind: entry point .* is not a Task"):
        task_class("notatask")


def test_two_plugins_for_one_kind_are_ambiguous(plugin_path: Path) -> None:
    _write_plugin(plugin_path, "pacda_test_plugin_a", "pacda_test_plugin_a", "twice")
    _write_plugin(plugin_path, "pacda_test_plugin_b", "pacda_test_plugin_b", "twice")
    with pytest.raises(InvalidArgument) as info:
        task_class("twice")
    assert str(info.value) == (
        "task.kind: 'twice' is provided by several 'pacda.tasks' entry points: "
        "pacda_test_plugin_a:VoteTask, pacda_test_plugin_b:VoteTask"
    )


def test_a_plugin_cannot_shadow_a_builtin(plugin_path: Path) -> None:
    _write_plugin(plugin_path, "pacda_test_plugin_shadow", "pacda_test_plugin_shadow", "logreg")
    assert task_class("logreg") is LogregTask


# -------------------------------------------------- in-process registration
@dataclass(frozen=True, kw_only=True)
class ConstSpec(TaskSpec):
    kind_name: ClassVar[str | None] = "const"
    kind: str = spec_field(default="const")
    bound: float = spec_field(default=1.0, check=POSITIVE)
    output_tolerance: float = spec_field(default=0.0)
    weight_tolerance: float = spec_field(default=0.0)
    n_outputs: int = spec_field(default=1, check=POSITIVE)
    value: float = spec_field(default=0.5)


class ConstTask(SpecTask[ConstSpec]):
    """f(x; r) = value for every x: the smallest complete user task."""

    spec_class: ClassVar[type[TaskSpec] | None] = ConstSpec

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, base_dir: Path | None = None) -> Self:
        if not isinstance(spec, ConstSpec):
            raise InvalidArgument("expected a ConstSpec")
        return cls(spec, array_digest({}))

    @property
    def n_items(self) -> int:
        return 4

    def train_batch(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> TrainedBatch:
        x, seeds = check_batch_inputs(x, seeds, self.n_items)
        return TrainedBatch(outputs=np.full((len(x), 1), self.spec.value), weights=None)


@pytest.fixture
def const_registered() -> Iterator[None]:
    register_task("const", ConstTask)
    yield
    unregister_task("const")


def test_register_task_makes_the_kind_loadable(const_registered: None, tmp_path: Path) -> None:
    path = tmp_path / "const.toml"
    path.write_text('[task]\nkind = "const"\nvalue = 0.25\n')
    task = load_task(path)
    assert isinstance(task, ConstTask)
    assert task.train_batch(np.ones((2, 4), np.int8), np.zeros(2, np.uint64)).outputs[0, 0] == 0.25
    assert "const" in known_kinds()
    register_task("const", ConstTask)  # re-registering the same class is a no-op


def test_unregister_forgets_the_kind(const_registered: None) -> None:
    unregister_task("const")
    with pytest.raises(InvalidArgument, match=r"^task\.kind: unknown task kind 'const'"):
        task_class("const")


def test_register_refuses_conflicts_and_bad_classes(const_registered: None) -> None:
    class Other(ConstTask):
        pass

    with pytest.raises(InvalidArgument, match=r"'const' is already registered to ConstTask"):
        register_task("const", Other)
    with pytest.raises(InvalidArgument, match=r"'logreg' is a built-in kind"):
        register_task("logreg", ConstTask)
    with pytest.raises(InvalidArgument, match=r"spec class declares kind 'const'"):
        register_task("konst", ConstTask)
    with pytest.raises(InvalidArgument, match=r"is not a Task subclass"):
        register_task("thing", int)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"expected a name of letters"):
        register_task("bad kind", ConstTask)

    class NoSpec(Task):  # a Task without spec_class cannot come from a task file
        pass

    with pytest.raises(InvalidArgument, match=r"NoSpec.spec_class must be a TaskSpec subclass"):
        register_task("nospec", NoSpec)
    register_task("const", Other, replace=True)
    assert task_class("const") is Other


def test_builtin_kinds_resolve() -> None:
    assert {"synthetic", "logreg", "mlp", "ablation", "cnn"} <= set(known_kinds())
    assert task_class("logreg").spec_class is LogregSpec
