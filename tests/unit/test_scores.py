"""The scores file format pacda-scores/1: round trip, digest, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.scores import SCORES_FORMAT, Scores, load_scores, save_scores

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def make_scores(z: int = 3, n: int = 5, **kw: Any) -> Scores:
    rng = np.random.default_rng(0)
    args: dict[str, Any] = {
        "theta0": rng.normal(size=z),
        "theta": rng.normal(size=(z, n)),
        "task_digest": DIGEST,
        "method": "datamodel",
        "meta": {"note": "test", "values": [1, 2.5]},
    }
    args.update(kw)
    return Scores(**args)


def raw_arrays(scores: Scores) -> dict[str, Any]:
    return {
        "format": np.array(SCORES_FORMAT),
        "theta0": scores.theta0,
        "theta": scores.theta,
        "encoding": np.array("pm"),
        "task_digest": np.array(scores.task_digest),
        "method": np.array(scores.method),
        "meta": np.array(json.dumps(dict(scores.meta))),
    }


def write_raw(path: Path, **changes: Any) -> Path:
    arrays = raw_arrays(make_scores())
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    s = make_scores()
    path = save_scores(tmp_path / "s.npz", s)
    back = load_scores(path, task_digest=DIGEST, n_items=5, n_outputs=3)
    np.testing.assert_array_equal(back.theta0, s.theta0)
    np.testing.assert_array_equal(back.theta, s.theta)
    assert back.theta.dtype == np.float64
    assert (back.method, back.encoding, back.task_digest) == ("datamodel", "pm", DIGEST)
    assert back.meta == {"note": "test", "values": [1, 2.5]}
    assert back.digest() == s.digest()


def test_suffix_is_added(tmp_path: Path) -> None:
    assert save_scores(tmp_path / "scores", make_scores()).name == "scores.npz"


def test_digest_commits_to_values_not_meta() -> None:
    s = make_scores()
    assert s.digest().startswith("sha256:")
    assert make_scores(meta={"other": 1}).digest() == s.digest()
    theta = s.theta.copy()
    theta[0, 0] = np.nextafter(theta[0, 0], np.inf)
    assert make_scores(theta=theta).digest() != s.digest()


def test_predict_and_mask_encoding_agree() -> None:
    s = make_scores()
    rng = np.random.default_rng(1)
    mask = rng.random((7, 5)) < 0.5
    x = np.where(mask, 1, -1).astype(np.int8)
    beta0, beta = s.mask_encoding()
    np.testing.assert_allclose(s.predict(x), beta0 + mask.astype(float) @ beta.T, rtol=1e-12)
    assert np.all(np.abs(s.predict(x)) <= s.prediction_bound() + 1e-12)


def test_scores_are_read_only() -> None:
    s = make_scores()
    with pytest.raises(ValueError, match="read-only"):
        s.theta[0, 0] = 1.0


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    path = save_scores(tmp_path / "s.npz", make_scores())
    before = path.read_bytes()
    with pytest.raises(InvalidArgument, match=r"already exists; refusing to overwrite it"):
        save_scores(path, make_scores(method="empirical-influence"))
    assert path.read_bytes() == before
    save_scores(path, make_scores(method="empirical-influence"), overwrite=True)
    assert load_scores(path).method == "empirical-influence"
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary left behind


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        save_scores(tmp_path / "no" / "s.npz", make_scores())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"theta0": np.zeros(4)}, r"theta0 must have shape \(3,\) to match theta \(3, 5\)"),
        ({"theta": np.zeros(5)}, r"theta must have shape \(Z, N\), got \(5,\)"),
        ({"theta": np.zeros((3, 0))}, r"Z >= 1 and N >= 1"),
        ({"theta": np.full((3, 5), np.nan)}, r"theta has 15 non-finite value\(s\)"),
        ({"theta0": np.array([0.0, np.inf, 1.0])}, r"theta0 has 1 non-finite"),
        ({"theta": np.zeros((3, 5), np.float32)}, r"theta must have dtype float64, got float32"),
        ({"encoding": np.array("mask")}, r"encoding must be 'pm'"),
        ({"task_digest": np.array("md5:00")}, r"task_digest must look like 'sha256:"),
        ({"method": np.array("")}, r"method must be a name"),
        ({"meta": np.array("{not json")}, r"meta is not valid JSON"),
        ({"meta": np.array("[1, 2]")}, r"meta must be a JSON object"),
        ({"meta": np.array('{"a": NaN}')}, r"meta is not valid JSON"),
        ({"method": np.array(["a", "b"])}, r"method must be a unicode scalar"),
        ({"format": np.array("pacda-scores/2")}, r"unsupported scores format 'pacda-scores/2'"),
        ({"theta": None}, r"not a pacda scores file, missing \['theta'\]"),
        ({"extra": np.zeros(2)}, r"unexpected arrays \['extra'\]"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = write_raw(tmp_path / "bad.npz", **changes)
    with pytest.raises(InvalidArgument, match=message):
        load_scores(path)


def test_load_rejects_wrong_task_and_sizes(tmp_path: Path) -> None:
    path = save_scores(tmp_path / "s.npz", make_scores())
    with pytest.raises(InvalidArgument, match=r"scores are for task sha256:abab.*not for task "):
        load_scores(path, task_digest=OTHER)
    with pytest.raises(InvalidArgument, match=r"scores have N=5 items, expected 6"):
        load_scores(path, n_items=6)
    with pytest.raises(InvalidArgument, match=r"scores have Z=3 outputs, expected 2"):
        load_scores(path, n_outputs=2)
    with pytest.raises(InvalidArgument, match="task digest mismatch"):
        make_scores().check_task(OTHER)


def test_load_rejects_non_npz_and_missing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    with pytest.raises(InvalidArgument, match=r"not a pacda scores file \(a \.npz zip archive"):
        load_scores(junk)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((2, 5)))
    with pytest.raises(InvalidArgument, match=r"a plain \.npy array.*import-scores"):
        load_scores(plain)
    with pytest.raises(InvalidArgument, match="no such scores file"):
        load_scores(tmp_path / "absent.npz")


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "obj.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidArgument, match=r"not a readable \.npz scores file"):
        load_scores(path)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"theta": [[1.0]]}, "theta must be a numpy array"),
        ({"task_digest": "sha256:xyz"}, "task_digest must look like"),
        ({"method": "has space"}, "method must be a name"),
        ({"encoding": "mask"}, "encoding must be 'pm'"),
        ({"meta": {"x": float("nan")}}, "canonical JSON cannot encode nan"),
    ],
)
def test_constructor_validates(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_scores(**kw)
