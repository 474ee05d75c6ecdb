"""Task specs: TOML parsing, validation messages, resolved defaults and the digest."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from protocol.canonical_json import sha256_digest
from protocol.errors import InvalidArgument
from protocol.taskspec import (
    Range,
    array_digest,
    loads_task_toml,
    pacda_version,
    read_task_toml,
    task_digest,
)
from prover.tasks import AblationSpec, LogregSpec, MlpSpec, SyntheticSpec, parse_task
from prover.tasks.specs import LogregTrain, MlpModel, SpectrumSection

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "tasks"


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_task(loads_task_toml(textwrap.dedent(text)))


# ------------------------------------------------------------ good files
@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("synthetic", SyntheticSpec),
        ("logreg", LogregSpec),
        ("mlp", MlpSpec),
        ("ablation", AblationSpec),
    ],
)
def test_example_files_parse_to_their_spec_class(name: str, cls: type) -> None:
    spec = parse_task(read_task_toml(EXAMPLES / f"{name}.toml"))
    assert type(spec) is cls
    assert spec.kind == name


def test_defaults_resolve_and_explicit_defaults_give_the_same_spec() -> None:
    short = parse('[task]\nkind = "logreg"\n')
    assert short == LogregSpec()
    assert short == parse_task(read_task_toml(EXAMPLES / "logreg.toml"))
    resolved = short.to_dict()
    assert resolved["p"] == 0.5
    assert resolved["train"] == {"steps": 200, "learning_rate": 0.5, "momentum": 0.9, "l2": 0.01}
    assert resolved["data"]["source"] == "breast_cancer"


def test_integers_are_accepted_for_float_fields_and_lists_become_tuples() -> None:
    spec = parse(
        """
        [task]
        kind = "synthetic"
        bound = 3
        [task.spectrum]
        n_items = 5
        degree_weights = [0, 1]
        terms_per_degree = [0, 2]
        """
    )
    assert isinstance(spec, SyntheticSpec)
    assert spec.bound == 3.0 and isinstance(spec.bound, float)
    assert spec.spectrum.degree_weights == (0.0, 1.0)
    assert spec.to_dict()["spectrum"]["terms_per_degree"] == [0, 2]


def test_specs_are_frozen_and_keyword_only() -> None:
    spec = MlpSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.p = 0.3  # type: ignore[misc]
    with pytest.raises(TypeError):
        MlpModel(16)  # type: ignore[misc]


# ------------------------------------------------------------- bad files
BAD_FILES = [
    (
        '[task]\nkind = "mlp"\n[task.model]\nhidden = -3\n',
        "task.model.hidden: expected a positive integer, got -3",
    ),
    (
        '[task]\nkind = "mlp"\n[task.model]\nhidden = "wide"\n',
        "task.model.hidden: expected a positive integer, got 'wide'",
    ),
    (
        '[task]\nkind = "mlp"\n[task.model]\nhidden = true\n',
        "task.model.hidden: expected a positive integer, got True",
    ),
    (
        '[task]\nkind = "mlp"\n[task.model]\nhiden = 3\n',
        "task.model.hiden: unknown field (known fields: hidden)",
    ),
    ('[task]\nkind = "logreg"\np = 1.5\n', "task.p: expected a number in (0, 1), got 1.5"),
    ('[task]\nkind = "logreg"\np = nan\n', "task.p: expected a number in (0, 1), got nan"),
    ('[task]\nkind = "logreg"\nbound = 0\n', "task.bound: expected a positive number, got 0"),
    (
        '[task]\nkind = "logreg"\noutput_tolerance = -1e-9\n',
        "task.output_tolerance: expected a non-negative number, got -1e-09",
    ),
    ('[task]\nkind = "logreg"\nbound = inf\n', "task.bound: expected a positive number, got inf"),
    (
        '[task]\nkind = "logreg"\ndtype = "float16"\n',
        "task.dtype: expected one of 'float64', 'float32', got 'float16'",
    ),
    (
        '[task]\nkind = "logreg"\n[task.train]\nsteps = 2.5\n',
        "task.train.steps: expected a positive integer, got 2.5",
    ),
    (
        '[task]\nkind = "logreg"\n[task.train]\nmomentum = 1.0\n',
        "task.train.momentum: expected a number in [0, 1), got 1.0",
    ),
    (
        '[task]\nkind = "logreg"\n[task.data]\nsource = "data.csv"\n',
        "task.data.source: expected 'breast_cancer' or a path ending in .npz, got 'data.csv'",
    ),
    ('[task]\nkind = "logreg"\ntrain = 3\n', "task.train: expected a table, got 3"),
    (
        '[task]\nkind = "mlp"\n[task.data]\nn_train = 1797\n',
        "task.data.n_train: expected an integer < 1797",
    ),
    (
        '[task]\nkind = "mlp"\nn_outputs = 900\n',
        "task.n_outputs: expected an integer <= 797 (test points left after 1000",
    ),
    (
        '[task]\nkind = "ablation"\n[task.train]\nseed = -1\n',
        "task.train.seed: expected an integer in [0, 9007199254740991], got -1",
    ),
    ('[task]\nkind = "synthetic"\nbound = 1.0\n', "task.spectrum: missing required field"),
    (
        '[task]\nkind = "synthetic"\nbound = 1.0\n[task.spectrum]\nn_items = 3\n'
        "degree_weights = [1.0, 0.5]\nterms_per_degree = [1]\n",
        "task.spectrum: degree_weights and terms_per_degree must have the same length",
    ),
    (
        '[task]\nkind = "synthetic"\nbound = 1.0\n[task.spectrum]\nn_items = 3\n'
        "degree_weights = [1.0, -0.5]\nterms_per_degree = [1, 1]\n",
        "task.spectrum.degree_weights[1]: expected a non-negative number, got -0.5",
    ),
    (
        '[task]\nkind = "synthetic"\n[task.spectrum]\nn_items = 3\n'
        "degree_weights = [1.0]\nterms_per_degree = [1]\n",
        "task.bound: missing required field",
    ),
    ('[task]\nkind = "logregx"\n', "task.kind: unknown task kind 'logregx'; known kinds: "),
    ("[task]\nkind = 3\n", "task.kind: expected a string, got 3"),
    ("[task]\np = 0.5\n", "task.kind: missing required field"),
    ('kind = "logreg"\n', "kind: unknown top-level key; a task file holds a single [task] table"),
    ("", "task: missing the [task] table"),
    ("[task\nkind = 1\n", "<task text>: not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_task_text_names_the_field(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_task(loads_task_toml(text))
    assert str(info.value).startswith(message)


def test_missing_task_file_is_an_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"cannot read task file .*nope\.toml"):
        read_task_toml(tmp_path / "nope.toml")


def test_programmatic_construction_is_validated_like_toml() -> None:
    with pytest.raises(InvalidArgument, match=r"^task\.train\.l2: expected a non-negative"):
        LogregTrain(l2=-1.0)
    with pytest.raises(InvalidArgument, match=r"^task\.kind: expected 'mlp' for MlpSpec"):
        MlpSpec(kind="logreg")
    with pytest.raises(InvalidArgument, match=r"^task\.spectrum\.n_items: expected a positive"):
        SpectrumSection(n_items=0, degree_weights=(1.0,), terms_per_degree=(1,))


def test_range_descriptions() -> None:
    assert Range(lo=2).describe("integer") == "an integer >= 2"
    assert Range(hi=1, hi_open=True).describe("number") == "a number < 1"
    assert Range(lo=0, hi=1).describe("number") == "a number in [0, 1]"


# ---------------------------------------------------------------- digest
def test_task_digest_is_canonical_json_of_spec_dataset_and_version() -> None:
    spec = LogregSpec()
    expected = sha256_digest(
        {"spec": spec.to_dict(), "dataset": "sha256:" + "0" * 64, "pacda_version": "0.1.0"}
    )
    assert task_digest(spec, "sha256:" + "0" * 64, "0.1.0") == expected
    assert task_digest(spec, "sha256:" + "0" * 64) == task_digest(
        spec, "sha256:" + "0" * 64, pacda_version()
    )


def test_task_digest_test_vector() -> None:
    # Pinned: a change here changes every task digest and must be deliberate.  The
    # digest is SHA-256 of exactly these canonical-JSON bytes.
    spec = SyntheticSpec(
        bound=2.0,
        spectrum=SpectrumSection(n_items=4, degree_weights=(0.0, 1.0), terms_per_degree=(0, 2)),
    )
    canonical = (
        b'{"dataset":"sha256:' + b"ab" * 32 + b'","pacda_version":"0.1.0","spec":{"bound":2,'
        b'"cuda_output_tolerance":0.000001,"cuda_weight_tolerance":0.000001,'
        b'"kind":"synthetic","n_outputs":1,"output_tolerance":1e-12,"p":0.5,"spectrum":'
        b'{"degree_weights":[0,1],"n_items":4,"noise":0,"structure_seed":0,'
        b'"terms_per_degree":[0,2]},"weight_tolerance":0}}'
    )
    expected = "sha256:601477065b348bf31177d99265790c57bd2b8045f0135f3e08315fe8ee1359c1"
    assert "sha256:" + hashlib.sha256(canonical).hexdigest() == expected
    assert task_digest(spec, "sha256:" + "ab" * 32, "0.1.0") == expected


def test_task_digest_changes_with_every_ingredient() -> None:
    data = "sha256:" + "0" * 64
    base = task_digest(LogregSpec(), data, "0.1.0")
    others = {
        task_digest(LogregSpec(p=0.25), data, "0.1.0"),
        task_digest(LogregSpec(train=LogregTrain(steps=201)), data, "0.1.0"),
        task_digest(LogregSpec(dtype="float32"), data, "0.1.0"),
        task_digest(LogregSpec(), "sha256:" + "1" * 64, "0.1.0"),
        task_digest(LogregSpec(), data, "0.1.1"),
    }
    assert base not in others and len(others) == 5


def test_array_digest_covers_names_dtypes_shapes_and_values() -> None:
    a = np.arange(6, dtype=np.float64)
    base = array_digest({"a": a})
    assert base == array_digest({"a": a.copy()})
    assert base == array_digest({"a": a.astype(">f8")})  # byte order does not matter
    assert base != array_digest({"b": a})
    assert base != array_digest({"a": a.reshape(2, 3)})
    assert base != array_digest({"a": a.astype(np.float32)})
    b = a.copy()
    b[5] = np.nextafter(b[5], 10.0)
    assert base != array_digest({"a": b})


def test_protocol_taskspec_and_spec_parsing_do_not_import_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # make torch unimportable
        from protocol.taskspec import loads_task_toml
        from prover.tasks import parse_task
        spec = parse_task(loads_task_toml('[task]\\nkind = "mlp"\\n'))
        assert spec.kind == "mlp"
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
