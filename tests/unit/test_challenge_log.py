"""The Verifier's record of challenges issued and the delta of each audit."""

from __future__ import annotations

import itertools
import json
import math
import threading
from pathlib import Path

import pytest

from protocol.errors import InvalidArgument
from verifier.challenge_log import (
    ChallengeLog,
    default_challenge_log_path,
    delta_for_audit,
    resolve_challenge_log,
)

KEY_A, KEY_B = b"\x01" * 32, b"\x02" * 32
DIGEST = "sha256:" + "ab" * 32


def _record(log: ChallengeLog, key: bytes, digest: str, audit: int) -> None:
    log.record(
        prover_key=key,
        attribution_digest=digest,
        task_digest="sha256:" + "cd" * 32,
        challenge_seed=bytes([0xA0 + audit]) * 32,
        audit=audit,
        delta=delta_for_audit(0.05, audit),
    )


def test_the_shares_of_delta_sum_to_delta_and_never_exceed_it() -> None:
    delta = 0.05
    shares = [delta_for_audit(delta, j) for j in range(1, 10_001)]
    assert shares[:3] == pytest.approx([delta / 2, delta / 6, delta / 12])
    assert all(a > b for a, b in itertools.pairwise(shares))
    total = math.fsum(shares)
    assert total <= delta
    assert total == pytest.approx(delta * (1 - 1 / 10_001), rel=1e-12)  # telescoping


@pytest.mark.parametrize(("delta", "audit"), [(0.05, 0), (0.0, 1), (1.0, 1), (-0.1, 2)])
def test_bad_share_arguments_are_refused(delta: float, audit: int) -> None:
    with pytest.raises(InvalidArgument):
        delta_for_audit(delta, audit)


def test_counts_are_per_prover_key_and_attribution_digest(tmp_path: Path) -> None:
    log = ChallengeLog(tmp_path / "sub" / "challenges.jsonl")
    assert log.audits_started(KEY_A, DIGEST) == 0  # no file yet
    _record(log, KEY_A, DIGEST, 1)
    _record(log, KEY_A, DIGEST, 2)
    _record(log, KEY_B, DIGEST, 1)
    _record(log, KEY_A, "sha256:" + "ef" * 32, 1)
    assert log.audits_started(KEY_A, DIGEST) == 2
    assert log.audits_started(KEY_B, DIGEST) == 1
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [e["audit"] for e in lines] == [1, 2, 1, 1]
    assert lines[1]["delta"] == pytest.approx(0.05 / 6)
    # the seed is kept only as its hash
    assert all("challenge_seed" not in e and len(e["challenge_seed_sha256"]) == 64 for e in lines)
    assert (bytes([0xA1]) * 32).hex() not in log.path.read_text()


def test_a_record_out_of_turn_is_refused(tmp_path: Path) -> None:
    log = ChallengeLog(tmp_path / "c.jsonl")
    _record(log, KEY_A, DIGEST, 1)
    with pytest.raises(InvalidArgument, match="another audit of these scores started"):
        _record(log, KEY_A, DIGEST, 1)  # planned as the first, but one was recorded meanwhile
    assert log.audits_started(KEY_A, DIGEST) == 1


def test_concurrent_audits_of_the_same_scores_never_share_a_number(tmp_path: Path) -> None:
    log = ChallengeLog(tmp_path / "c.jsonl")
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            _record(log, KEY_A, DIGEST, 1)
            outcomes.append("recorded")
        except InvalidArgument:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["recorded"] + ["refused"] * 7
    assert log.audits_started(KEY_A, DIGEST) == 1


def test_a_torn_last_line_counts_and_a_corrupt_middle_line_is_refused(tmp_path: Path) -> None:
    log = ChallengeLog(tmp_path / "c.jsonl")
    _record(log, KEY_A, DIGEST, 1)
    with log.path.open("a") as f:
        f.write('{"prover_key": "01')  # a crash mid-write
    assert log.audits_started(KEY_A, DIGEST) == 2  # counted: it may have been this Prover's
    log.path.write_text("not json\n" + log.path.read_text().splitlines()[0] + "\n")
    with pytest.raises(InvalidArgument, match="line 1 is not JSON"):
        log.audits_started(KEY_A, DIGEST)


def test_settings_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACDA_HOME", str(tmp_path))
    assert default_challenge_log_path() == tmp_path / "challenges.jsonl"
    monkeypatch.delenv("PACDA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_challenge_log_path() == tmp_path / "data" / "pacda" / "challenges.jsonl"
    default = resolve_challenge_log("default")
    assert default is not None and default.path == default_challenge_log_path()
    assert resolve_challenge_log("none") is None and resolve_challenge_log(None) is None
    named = resolve_challenge_log(str(tmp_path / "mine.jsonl"))
    assert named is not None and named.path == tmp_path / "mine.jsonl"


def test_an_unwritable_log_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = ChallengeLog(blocker / "c.jsonl")  # its parent is a file
    with pytest.raises(InvalidArgument, match="cannot open the challenge log"):
        _record(log, KEY_A, DIGEST, 1)
