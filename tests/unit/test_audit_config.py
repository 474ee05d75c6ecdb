"""AuditConfig: exactly one of ``epsilon`` and ``epsilon_relative``; the CLI takes its defaults."""

from __future__ import annotations

import argparse
import importlib
from dataclasses import fields, replace

import pytest

from protocol.errors import InvalidArgument
from verifier import audit
from verifier.config import AuditConfig


def test_neither_or_both_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="exactly one of epsilon and epsilon_relative"):
        AuditConfig(delta=0.1)
    with pytest.raises(InvalidArgument, match="not both"):
        AuditConfig(epsilon=1.0, epsilon_relative=0.5, delta=0.1)
    for kw in ({}, {"epsilon": 1.0, "epsilon_relative": 0.5}):
        with pytest.raises(InvalidArgument, match="exactly one of epsilon and epsilon_relative"):
            audit(None, "unused.toml", delta=0.1, **kw)  # type: ignore[arg-type]


def test_relative_epsilon_is_none_until_the_pilot() -> None:
    config = AuditConfig(epsilon_relative=0.5, delta=0.1)
    assert config.epsilon is None and config.epsilon_variance is None
    with pytest.raises(InvalidArgument, match="set from the Verifier's pilot"):
        config.require_epsilon()
    resolved = config.with_pilot_variance(3.0)
    assert resolved.epsilon == resolved.require_epsilon() == 1.5
    assert resolved.epsilon_relative == 0.5 and resolved.epsilon_variance == 3.0
    assert replace(resolved, chunk_points=64).epsilon == 1.5  # a resolved config stays valid
    with pytest.raises(InvalidArgument, match="pilot's Var"):
        config.with_pilot_variance(0.0)


def test_absolute_epsilon_is_kept() -> None:
    config = AuditConfig(epsilon=0.3, delta=0.1)
    assert config.with_pilot_variance(3.0) is config
    assert config.require_epsilon() == 0.3


def test_epsilon_variance_is_the_pilots_only() -> None:
    with pytest.raises(InvalidArgument, match="only with epsilon_relative"):
        AuditConfig(epsilon=1.0, epsilon_variance=2.0, delta=0.1)
    with pytest.raises(InvalidArgument, match="epsilon_relative x epsilon_variance"):
        AuditConfig(epsilon=1.0, epsilon_relative=0.5, epsilon_variance=3.0, delta=0.1)
    with pytest.raises(InvalidArgument, match="epsilon must be finite and > 0"):
        AuditConfig(epsilon=0.0, delta=0.1)


def test_relative_epsilon_needs_the_pilot() -> None:
    with pytest.raises(InvalidArgument, match="needs the Verifier's pilot"):
        AuditConfig(epsilon_relative=0.5, delta=0.1, planning="rigorous")
    with pytest.raises(InvalidArgument, match="needs the Verifier's pilot"):
        AuditConfig(epsilon_relative=0.5, delta=0.1, variance=1.0)
    with pytest.raises(InvalidArgument, match="completeness_radius is absolute"):
        AuditConfig(epsilon_relative=0.5, delta=0.1, completeness_radius=0.1)


#: The CLI's dest of an AuditConfig field whose option is named otherwise.
_DEST = {"pilot_trainings": "pilot", "rpc_timeout_s": "timeout"}


@pytest.mark.parametrize("command", ["audit", "certify"])
def test_cli_options_take_the_fields_defaults_and_help(command: str) -> None:
    """Every field with a help text that the command offers: the field's default and help."""
    parser = argparse.ArgumentParser()
    importlib.import_module(f"verifier.cli.{command}").add_arguments(parser)
    options = {a.dest: a for a in parser._actions}
    offered = 0
    for f in fields(AuditConfig):
        option = options.get(_DEST.get(f.name, f.name))
        if "help" not in f.metadata or option is None:
            continue
        offered += 1
        assert option.default == f.default, f.name
        assert option.help is not None and option.help.startswith(f.metadata["help"]), f.name
    assert offered == {"audit": 14, "certify": 10}[command]
