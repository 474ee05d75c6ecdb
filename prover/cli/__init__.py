"""``pacda-prover``: one subcommand per module (``prover/cli/<command>.py``).

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.  Exit codes: 0 success, 1 failure of the job, 2 usage
errors (argparse and :class:`protocol.errors.InvalidArgument`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from protocol.errors import InvalidArgument, PacdaError

__all__ = ["main"]

# Subcommand name -> module under prover.cli.  Add new commands here.
COMMANDS: dict[str, str] = {
    "attribute": "prover.cli.attribute",
    "import-scores": "prover.cli.import_scores",
    "serve": "prover.cli.serve",
    "spectrum": "prover.cli.spectrum",
    "keygen": "prover.cli.keygen",
    "tls": "prover.cli.tls",
}


def _available() -> dict[str, object]:
    found: dict[str, object] = {}
    for name, module in COMMANDS.items():
        try:
            found[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency, not a missing command
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacda-prover", description="The Prover side of pacda: attributions and the service."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _available().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)  # type: ignore[attr-defined]
        module.add_arguments(p)  # type: ignore[attr-defined]
        p.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except InvalidArgument as exc:
        print(f"pacda-prover {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except PacdaError as exc:
        print(f"pacda-prover {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
