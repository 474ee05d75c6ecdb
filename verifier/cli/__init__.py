"""``pacda-verifier``: one subcommand per module (``verifier/cli/<command>.py``).

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``, and imports heavy dependencies (grpc, torch, the
task implementations) only inside ``run``: ``check-report`` and ``show``
work with nothing but :mod:`protocol` installed.

Exit codes: 0 success / accept, 1 abort or failed check, 2 usage errors
(argparse and :class:`protocol.errors.InvalidArgument`, refused output paths,
plans above the cost caps without ``--yes``), 3 transport failure before the
challenge is issued (after it, a Prover that goes away is an abort), 130 interrupted
(Ctrl-C).  Each subcommand's ``--help`` states its own.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from protocol.errors import InvalidArgument, PacdaError

__all__ = ["EXIT_ABORT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TRANSPORT", "EXIT_USAGE", "main"]

EXIT_OK, EXIT_ABORT, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

COMMANDS: dict[str, str] = {
    "audit": "verifier.cli.audit",
    "certify": "verifier.cli.certify",
    "check-report": "verifier.cli.check_report",
    "show": "verifier.cli.show",
    "keygen": "verifier.cli.keygen",
}

EPILOG = (
    "exit codes: 0 accept / success, 1 abort or failed check, 2 usage error, "
    "3 transport failure before the challenge, 130 interrupted (Ctrl-C); "
    "each command's --help states its own"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacda-verifier",
        description="The Verifier side of pacda: audit a Prover, check and show reports.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=getattr(module, "EPILOG", EPILOG),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except InvalidArgument as exc:
        print(f"pacda-verifier {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PacdaError as exc:
        print(f"pacda-verifier {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ABORT
    except KeyboardInterrupt:
        print(f"pacda-verifier {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
