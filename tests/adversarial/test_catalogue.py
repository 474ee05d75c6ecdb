"""The adversary catalogue, its parser and ``pacda-prover serve --adversary`` (red-team mode)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from protocol.errors import InvalidArgument
from protocol.scores import Scores, save_scores
from protocol.signing import generate_private_key
from prover.adversaries import CATALOGUE, Adversary, arm, parse_adversary
from prover.cli import build_parser, main
from prover.tasks.base import Task
from tests.adversarial._audit import VERIFIER_SEED
from tests.adversarial.conftest import SYNTHETIC_TOML
from verifier import AuditConfig, Auditor

BIN = Path(sys.executable).parent
NAMES = [
    "scale",
    "boost",
    "noise",
    "permute",
    "lazy",
    "influence",
    "lie",
    "forge",
    "reuse",
    "ignore-seeds",
    "wrong-subset",
    "strategic",
    "ustrategic",
    "rewrite-after-root",
    "bad-proof",
    "replay",
]


def test_catalogue_has_every_name() -> None:
    assert list(CATALOGUE) == NAMES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scale:0.5", Adversary(name="scale", family="scores", params=(0.5,))),
        ("boost:0.1:-2", Adversary(name="boost", family="scores", params=(0.1, -2.0))),
        ("lazy:40", Adversary(name="lazy", family="scores", params=(40.0,))),
        ("permute", Adversary(name="permute", family="scores")),
        ("lie:1", Adversary(name="lie", family="results", params=(1.0,))),
        ("replay", Adversary(name="replay", family="commitment")),
    ],
)
def test_parse(text: str, expected: Adversary) -> None:
    assert parse_adversary(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cheat", "unknown adversary 'cheat'; known: scale:F, boost:FRACTION:AMOUNT"),
        ("scale", "adversary 'scale' takes 1 parameter(s) (usage: scale:F), got 0"),
        ("permute:3", "adversary 'permute' takes 0 parameter(s) (usage: permute), got 1"),
        ("scale:x", "adversary 'scale': F must be a number, got 'x'"),
        ("scale:1", "adversary 'scale': F = 1 leaves the scores unchanged"),
        ("scale:nan", "adversary 'scale': F must be finite"),
        ("boost:0:1", "adversary 'boost': FRACTION must lie in (0, 1], got 0"),
        ("boost:0.5:0", "adversary 'boost': AMOUNT must be non-zero"),
        ("noise:-1", "adversary 'noise': SD must be > 0, got -1"),
        ("lazy:2.5", "adversary 'lazy': SAMPLES must be an integer, got '2.5'"),
        ("lazy:3", "adversary 'lazy': SAMPLES must be >= 4, got 3"),
        ("lie:1.5", "adversary 'lie': FRACTION must lie in (0, 1], got 1.5"),
    ],
)
def test_parse_errors_name_the_adversary(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_adversary(text)
    assert str(info.value).startswith(message), str(info.value)


def test_arm_refuses_two_of_a_kind(synthetic: Task, synthetic_honest: Scores) -> None:
    with pytest.raises(InvalidArgument, match=r"at most one score manipulation at a time"):
        arm(["scale:0.5", "permute"], task=synthetic, scores=synthetic_honest)
    with pytest.raises(InvalidArgument, match=r"at most one result policy at a time"):
        arm(["lie:0.1", "bad-proof"], task=synthetic, scores=synthetic_honest)


def test_arm_is_seeded(synthetic: Task, synthetic_honest: Scores) -> None:
    one = arm(["noise:0.1"], task=synthetic, scores=synthetic_honest, seed=3).scores
    two = arm(["noise:0.1"], task=synthetic, scores=synthetic_honest, seed=3).scores
    other = arm(["noise:0.1"], task=synthetic, scores=synthetic_honest, seed=4).scores
    assert np.array_equal(one.theta, two.theta)
    assert not np.array_equal(one.theta, other.theta)


def test_serve_help_lists_every_adversary() -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    text = re.sub(r"-\s+", "-", " ".join(sub.format_help().split()))  # undo line wrapping
    assert "red-team mode (a CHEATING Prover" in text
    for entry in CATALOGUE.values():
        assert f"{entry.usage} ({entry.family}): {entry.summary}" in text


def test_serve_bad_adversary_exits_2(
    tmp_path: Path, synthetic_honest: Scores, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = save_scores(tmp_path / "s.npz", synthetic_honest)
    argv = ["serve", "--task", str(SYNTHETIC_TOML), "--scores", str(scores), "--port", "0"]
    assert main([*argv, "--adversary", "boost:2:1"]) == 2
    err = capsys.readouterr().err
    assert "pacda-prover serve: error: adversary 'boost': FRACTION must lie in (0, 1]" in err
    assert main([*argv, "--adversary", "teleport"]) == 2
    assert "unknown adversary 'teleport'" in capsys.readouterr().err


def test_serve_red_team_subprocess_is_caught(
    tmp_path: Path, synthetic: Task, synthetic_honest: Scores
) -> None:
    """``serve --adversary bad-proof``: announced on stderr, caught at the first opening."""
    scores = save_scores(tmp_path / "s.npz", synthetic_honest)
    stderr = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "pacda-prover"),
            "serve",
            "--task",
            str(SYNTHETIC_TOML),
            "--scores",
            str(scores),
            "--port",
            "0",
            "--log-level",
            "ERROR",
            "--adversary",
            "bad-proof",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening on "), line
        config = AuditConfig(epsilon=1.0, delta=0.05)
        auditor = Auditor(
            synthetic, config, key=generate_private_key(), rng=np.random.default_rng(VERIFIER_SEED)
        )
        with grpc.insecure_channel(line.split()[-1]) as channel:
            report = auditor.run(channel).report
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        stderr.close()
    assert report.decision == "abort"
    assert report.reason.startswith("CommitmentError: opening of point")
    assert "bad Merkle proof" in report.reason
    banner = (tmp_path / "stderr.txt").read_text()
    assert "RED-TEAM MODE: this Prover cheats (bad-proof)" in banner
