"""The result store on a real filesystem: round trips, refusals, crash leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from protocol.errors import InvalidArgument, ProverError
from prover.store import ResultStore, StoreConfig, result_keys, unpack_subsets, weight_digests
from prover.tasks.base import TrainedBatch

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
N, Z = 13, 3


def _rows(n: int, seed: int) -> tuple[NDArray[np.int8], NDArray[np.uint64], NDArray[np.float64]]:
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, N))
    seeds = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    return x, seeds, rng.standard_normal((n, Z))


def _open(path: Path, **kw: object) -> ResultStore:
    args: dict[str, object] = {"task_digest": DIGEST, "n_items": N, "n_outputs": Z}
    args.update(kw)
    return ResultStore.open(path, **args)  # type: ignore[arg-type]


def test_write_lookup_reopen_round_trip(tmp_path: Path) -> None:
    x, seeds, out = _rows(40, 0)
    with _open(tmp_path / "s") as store:
        assert len(store) == 0
        assert store.write(x[:25], seeds[:25], TrainedBatch(outputs=out[:25], weights=None)) == 25
        # idempotent: rewriting stored rows (and repeats) adds nothing
        assert store.write(x[:25], seeds[:25], TrainedBatch(outputs=out[:25], weights=None)) == 0
        xx, ss = np.concatenate([x[20:], x[20:]]), np.concatenate([seeds[20:], seeds[20:]])
        assert (
            store.write(xx, ss, TrainedBatch(outputs=np.tile(out[20:], (2, 1)), weights=None)) == 15
        )
        assert len(store) == 40
    with _open(tmp_path / "s", mode="r") as reader:
        assert len(reader) == 40 and not reader.writable
        q = np.array([39, 0, 7, 7])
        hit = reader.lookup(x[q], seeds[q])
        assert hit.found.all()
        np.testing.assert_array_equal(hit.outputs, out[q])
        np.testing.assert_array_equal(hit.weight_digests, weight_digests(None, 4))
        x2, s2, _ = _rows(3, 1)
        miss = reader.lookup(x2, s2)
        assert not miss.found.any() and np.isnan(miss.outputs).all()
        with pytest.raises(ProverError, match="open read-only"):
            reader.write(x2, s2, TrainedBatch(outputs=np.zeros((3, Z)), weights=None))


def test_same_subset_other_seed_is_another_result(tmp_path: Path) -> None:
    x, seeds, out = _rows(1, 2)
    with _open(tmp_path / "s") as store:
        store.write(x, seeds, TrainedBatch(outputs=out, weights=None))
        hit = store.lookup(x, seeds ^ np.uint64(1))
        assert not hit.found[0]
        flipped = x.copy()
        flipped[0, 0] *= -1
        assert not store.lookup(flipped, seeds).found[0]


def test_on_disk_layout_is_plain_zarr(tmp_path: Path) -> None:
    import zarr

    x, seeds, out = _rows(6, 3)
    w = np.arange(6 * 4, dtype=np.float64).reshape(6, 4)
    with _open(tmp_path / "s", store_weights=True) as store:
        store.write(x, seeds, TrainedBatch(outputs=out, weights=w))
        np.testing.assert_array_equal(store.weights(x[::-1], seeds[::-1]), w[::-1])
    cfg = json.loads((tmp_path / "s" / "store.json").read_text())
    assert cfg == {
        "format": "pacda-result-store/1",
        "n_items": N,
        "n_outputs": Z,
        "store_weights": True,
        "task_digest": DIGEST,
    }
    (seg,) = sorted((tmp_path / "s" / "segments").iterdir())
    g = zarr.open_group(seg, mode="r")
    assert g.attrs["rows"] == 6 and g.attrs["n_weights"] == 4
    np.testing.assert_array_equal(unpack_subsets(g["subsets"][...], N), x)
    np.testing.assert_array_equal(g["seeds"][...], seeds)
    np.testing.assert_array_equal(g["keys"][...], result_keys(x, seeds))
    np.testing.assert_array_equal(g["outputs"][...], out)
    np.testing.assert_array_equal(g["weights"][...], w)
    np.testing.assert_array_equal(g["weight_digests"][...], weight_digests(w, 6))


def test_weight_digest_is_sha256_of_little_endian_float64() -> None:
    import hashlib

    w = np.array([[1.5, -2.0]])
    expected = hashlib.sha256(np.array([1.5, -2.0], dtype="<f8").tobytes()).digest()
    assert bytes(weight_digests(w, 1)[0]) == expected
    assert bytes(weight_digests(None, 1)[0]) == hashlib.sha256(b"").digest()


def test_refuses_a_different_task_digest(tmp_path: Path) -> None:
    x, seeds, out = _rows(4, 4)
    with _open(tmp_path / "s") as store:
        store.write(x, seeds, TrainedBatch(outputs=out, weights=None))
    msg = (
        "was made for a different task or config; refusing to mix results "
        rf"\(task_digest: stored '{DIGEST}', requested '{OTHER}'\)"
    )
    with pytest.raises(InvalidArgument, match=msg):
        _open(tmp_path / "s", task_digest=OTHER)
    with pytest.raises(InvalidArgument, match=msg):
        _open(tmp_path / "s", task_digest=OTHER, mode="r")
    with pytest.raises(InvalidArgument, match="n_items: stored 13, requested 14"):
        _open(tmp_path / "s", n_items=14)
    with pytest.raises(InvalidArgument, match="store_weights: stored False, requested True"):
        _open(tmp_path / "s", store_weights=True)
    # the refusals changed nothing and released the lock
    with _open(tmp_path / "s") as store:
        assert len(store) == 4


def test_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidArgument, match=r"is not empty and is not a pacda result store"):
        _open(tmp_path / "data")
    with pytest.raises(InvalidArgument, match=r"is not a pacda result store \(no store.json\)"):
        _open(tmp_path / "nowhere", mode="r")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "store.json").write_text('{"task_digest": "x"}')
    with pytest.raises(InvalidArgument, match=r"missing field\(s\) \['format', 'n_items'"):
        _open(tmp_path / "bad")


def test_bad_config_values() -> None:
    with pytest.raises(InvalidArgument, match="task_digest must look like 'sha256:<hex>'"):
        StoreConfig(task_digest="abc", n_items=1, n_outputs=1)
    with pytest.raises(InvalidArgument, match="n_outputs must be an integer >= 1, got 0"):
        StoreConfig(task_digest=DIGEST, n_items=1, n_outputs=0)
    with pytest.raises(InvalidArgument, match="unsupported store format 'v0'"):
        StoreConfig(task_digest=DIGEST, n_items=1, n_outputs=1, format="v0")


def test_single_writer(tmp_path: Path) -> None:
    with _open(tmp_path / "s"):
        with pytest.raises(ProverError, match="is open for writing by another process"):
            _open(tmp_path / "s")
        with _open(tmp_path / "s", mode="r") as reader:  # readers need no lock
            assert len(reader) == 0
    with _open(tmp_path / "s"):
        pass


def test_bad_writes_are_refused(tmp_path: Path) -> None:
    x, seeds, out = _rows(3, 5)
    with _open(tmp_path / "s") as store:
        with pytest.raises(InvalidArgument, match=r"outputs must have shape \(3, 3\)"):
            store.write(x, seeds, TrainedBatch(outputs=out[:, :2], weights=None))
        bad = out.copy()
        bad[1, 1] = np.nan
        with pytest.raises(InvalidArgument, match="outputs must be finite"):
            store.write(x, seeds, TrainedBatch(outputs=bad, weights=None))
        assert len(store) == 0


def test_crash_before_commit_leaves_nothing_and_is_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, seeds, out = _rows(20, 6)
    store = _open(tmp_path / "s")
    store.write(x[:10], seeds[:10], TrainedBatch(outputs=out[:10], weights=None))

    def die(src: object, dst: object) -> None:
        raise OSError("simulated crash at the commit rename")

    monkeypatch.setattr(os, "rename", die)
    with pytest.raises(OSError, match="simulated crash"):
        store.write(x[10:], seeds[10:], TrainedBatch(outputs=out[10:], weights=None))
    monkeypatch.undo()
    store.close()
    assert len(list((tmp_path / "s" / "tmp").iterdir())) == 1  # the uncommitted segment
    # a half-written segment and a stray config temp file from a killed writer
    (tmp_path / "s" / "tmp" / "0000000009-deadbeef" / "outputs").mkdir(parents=True)
    with _open(tmp_path / "s", mode="r") as reader:
        assert len(reader) == 10
        assert reader.lookup(x, seeds).found.tolist() == [True] * 10 + [False] * 10
    with _open(tmp_path / "s") as store:
        assert len(store) == 10
        assert list((tmp_path / "s" / "tmp").iterdir()) == []
        assert store.write(x, seeds, TrainedBatch(outputs=out, weights=None)) == 10
    with _open(tmp_path / "s", mode="r") as reader:
        np.testing.assert_array_equal(reader.lookup(x, seeds).outputs, out)


def test_reader_refresh_sees_new_commits(tmp_path: Path) -> None:
    x, seeds, out = _rows(8, 7)
    with _open(tmp_path / "s") as writer, _open(tmp_path / "s", mode="r") as reader:
        writer.write(x[:3], seeds[:3], TrainedBatch(outputs=out[:3], weights=None))
        assert len(reader) == 0
        assert reader.refresh() == 3
        writer.write(x[3:], seeds[3:], TrainedBatch(outputs=out[3:], weights=None))
        assert reader.refresh() == 5 and len(reader) == 8
