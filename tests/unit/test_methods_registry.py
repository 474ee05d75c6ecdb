"""The attribution-method registry: built-ins, in-process registration, ``pacda.methods`` plugins.

A third-party method is a :class:`prover.attribution.Method` subclass; these
tests register one in-process and one through an installed distribution's
entry point (a real ``.dist-info`` on ``sys.path``), and run the whole
pipeline (:func:`prover.attribution.attribute`) with each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.scores import load_scores
from prover.attribution import (
    ENTRY_POINT_GROUP,
    METHODS,
    AttributionConfig,
    DatamodelMethod,
    DatamodelOptions,
    FitContext,
    InfluenceOptions,
    Method,
    MethodFit,
    TrakMethod,
    attribute,
    check_method,
    fit_empirical_influence,
    get_method,
    method_class,
    method_names,
    min_samples,
    register_method,
    unregister_method,
)
from prover.tasks import build_task
from prover.tasks.base import Task
from prover.tasks.specs import SpectrumSection, SyntheticSpec
from tests.integration._cli import prover_exe


def synthetic_task(n_items: int = 6) -> Task:
    return build_task(
        SyntheticSpec(
            bound=8.0,
            n_outputs=2,
            spectrum=SpectrumSection(
                n_items=n_items, degree_weights=(0.1, 1.0), terms_per_degree=(1, n_items)
            ),
        )
    )


@dataclass(frozen=True, kw_only=True)
class HalfOptions:
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise InvalidArgument(f"scale must be > 0, got {self.scale}")


class ScaledEmpirical(Method):
    """A toy third-party method: empirical influence times ``scale``."""

    name: ClassVar[str] = "scaled-empirical"
    options_class: ClassVar[type[HalfOptions]] = HalfOptions

    def min_samples(self, n_items: int) -> int:
        return 2 * n_items

    def fit(self, ctx: FitContext, options: HalfOptions) -> MethodFit:
        x, y = ctx.fit_design()
        theta0, theta = fit_empirical_influence(x, y)
        return MethodFit(theta0=theta0, theta=options.scale * theta, meta={"rows": len(x)})


@pytest.fixture
def scaled() -> Iterator[type[ScaledEmpirical]]:
    register_method(ScaledEmpirical)
    try:
        yield ScaledEmpirical
    finally:
        unregister_method("scaled-empirical")


def test_builtins_are_registered_in_help_order() -> None:
    assert method_names()[: len(METHODS)] == list(METHODS)
    assert METHODS == (
        "datamodel",
        "empirical-influence",
        "influence-function",
        "trak",
        "kronfluence-ekfac",
        "dattri-if",
        "dattri-trak",
        "trak-library",
    )
    assert method_class("datamodel") is DatamodelMethod
    assert method_class("trak") is TrakMethod
    assert [get_method(m).name for m in METHODS] == list(METHODS)
    assert [min_samples(m, 10) for m in METHODS] == [12, 4, 0, 3, 3, 3, 3, 3]
    assert [get_method(m).uses_samples for m in METHODS] == [True] * 2 + [False] + [True] * 5


def test_a_registered_method_runs_through_attribute(scaled: type[ScaledEmpirical]) -> None:
    assert "scaled-empirical" in method_names()
    assert check_method("scaled-empirical") == "scaled-empirical"
    task = synthetic_task()
    cfg = AttributionConfig(
        method="scaled-empirical", samples=60, check_samples=40, seed=4, options={"scale": 0.5}
    )
    res = attribute(task, cfg)
    reference = attribute(
        task, AttributionConfig(method="empirical-influence", samples=60, check_samples=0, seed=4)
    )
    s = res.scores
    assert s.method == "scaled-empirical"
    np.testing.assert_allclose(s.theta, 0.5 * reference.scores.theta, rtol=1e-12)
    np.testing.assert_allclose(s.theta0, reference.scores.theta0, rtol=1e-12)
    assert s.meta["fit"] == {"rows": 60}
    assert s.meta["config"]["options"] == {"scale": 0.5}
    assert res.check is not None and res.n_trained >= 60 + 40  # fit, then held-out pairs
    assert list(res.seconds)[:2] == ["train_fit", "fit"]
    # The method's own budget and option rules apply.
    with pytest.raises(InvalidArgument, match=r"need M >= 12"):
        attribute(task, AttributionConfig(method="scaled-empirical", samples=11, check_samples=0))
    with pytest.raises(InvalidArgument, match="scale must be > 0"):
        AttributionConfig(method="scaled-empirical", samples=60, options={"scale": -1.0})


def test_registration_refusals(scaled: type[ScaledEmpirical]) -> None:
    register_method(ScaledEmpirical)  # the same class again is a no-op

    class Other(ScaledEmpirical):
        pass

    with pytest.raises(InvalidArgument, match="already registered to ScaledEmpirical"):
        register_method(Other)
    register_method(Other, replace=True)
    assert method_class("scaled-empirical") is Other

    class Shadow(DatamodelMethod):
        pass

    with pytest.raises(InvalidArgument, match="'datamodel' is a built-in method"):
        register_method(Shadow)

    class BadName(ScaledEmpirical):
        name: ClassVar[str] = "no spaces"

    with pytest.raises(InvalidArgument, match=r"1 to 64 letters, digits and '_\.\+-'"):
        register_method(BadName)

    class Abstract(Method):
        name: ClassVar[str] = "abstract"

    with pytest.raises(InvalidArgument, match="does not implement fit"):
        register_method(Abstract)
    with pytest.raises(InvalidArgument, match="is not a Method subclass"):
        register_method(int)  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgument, match=r"unknown attribution method 'tracin'; known: data.*, trak"
    ):
        check_method("tracin")


def test_options_belong_to_the_method() -> None:
    dm = AttributionConfig(method="datamodel", samples=10, options={"n_lambdas": 3})
    assert dm.method_options() == DatamodelOptions(n_lambdas=3)
    assert dm.to_dict()["options"] == {
        "regularization": "ridge",
        "validation_fraction": 0.1,
        "n_lambdas": 3,
    }
    shortcut = AttributionConfig(method="influence-function", samples=0, damping=0.5)
    assert shortcut.method_options() == InfluenceOptions(damping=0.5)
    given = AttributionConfig(
        method="influence-function", samples=0, options=InfluenceOptions(solver="cg")
    )
    assert given.method_options().solver == "cg"
    with pytest.raises(InvalidArgument, match=r"method 'datamodel' has no option\(s\) damping"):
        AttributionConfig(method="datamodel", samples=10, options={"damping": 1.0})
    with pytest.raises(InvalidArgument, match=r"not both \(shortcuts set: damping\)"):
        AttributionConfig(
            method="influence-function", samples=0, damping=1.0, options={"solver": "cg"}
        )
    with pytest.raises(InvalidArgument, match="must be a DatamodelOptions or a mapping"):
        AttributionConfig(method="datamodel", samples=10, options=InfluenceOptions())
    with pytest.raises(InvalidArgument, match="solver must be one of auto, exact, cg"):
        AttributionConfig(method="influence-function", samples=0, options={"solver": "lu"})


PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from prover.attribution import FitContext, Method, MethodFit, NoOptions


class ConstantMethod(Method):
    """Scores of zero, intercepts at the mean fitted output (a plugin for the test)."""

    name: ClassVar[str] = "plugin-constant"

    def min_samples(self, n_items: int) -> int:
        return 3

    def fit(self, ctx: FitContext, options: NoOptions) -> MethodFit:
        _x, y = ctx.fit_design()
        theta = np.zeros((ctx.task.n_outputs, ctx.task.n_items))
        return MethodFit(theta0=y.mean(axis=0), theta=theta, meta={"plugin": True})


class Misnamed(ConstantMethod):
    name: ClassVar[str] = "something-else"
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution ``pacda-test-plugin`` with two ``pacda.methods`` entry points."""
    (tmp_path / "pacda_test_plugin.py").write_text(PLUGIN)
    info = tmp_path / "pacda_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pacda-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{ENTRY_POINT_GROUP}]
            plugin-constant = pacda_test_plugin:ConstantMethod
            plugin-misnamed = pacda_test_plugin:Misnamed
            plugin-missing = pacda_test_plugin:Nowhere
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.modules.pop("pacda_test_plugin", None)


def test_an_entry_point_method_is_discovered_and_used(installed_plugin: Path) -> None:
    assert {"plugin-constant", "plugin-misnamed", "plugin-missing"} <= set(method_names())
    task = synthetic_task()
    res = attribute(task, AttributionConfig(method="plugin-constant", samples=5, check_samples=0))
    assert res.scores.method == "plugin-constant"
    assert res.scores.meta["fit"] == {"plugin": True}
    assert np.all(res.scores.theta == 0.0) and res.n_trained == 5
    with pytest.raises(InvalidArgument, match=r"need M >= 3"):
        AttributionConfig(method="plugin-constant", samples=2).check_budget(task.n_items)
    with pytest.raises(InvalidArgument, match="whose name is 'something-else'"):
        check_method("plugin-misnamed")
    with pytest.raises(InvalidArgument, match="failed to load: AttributeError"):
        check_method("plugin-missing")


def test_entry_points_are_not_seen_without_the_distribution() -> None:
    assert "plugin-constant" not in method_names()
    with pytest.raises(InvalidArgument, match="unknown attribution method 'plugin-constant'"):
        AttributionConfig(method="plugin-constant", samples=5)


def test_the_attribute_cli_offers_and_runs_an_entry_point_method(
    installed_plugin: Path, tmp_path: Path
) -> None:
    """``--method`` help and validation come from the registry, plugins included."""
    exe = prover_exe()
    env = {**os.environ, "PYTHONPATH": str(installed_plugin), "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(exe), "attribute", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )

    helped = run("--help")
    assert helped.returncode == 0
    assert "plugin-constant" in " ".join(helped.stdout.split())
    task = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "synthetic.toml"
    out = tmp_path / "plugin.npz"
    done = run(
        "--task", str(task), "--method", "plugin-constant", "--samples", "5",
        "--check-samples", "0", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scores = load_scores(out)
    assert scores.method == "plugin-constant" and scores.meta["fit"] == {"plugin": True}
