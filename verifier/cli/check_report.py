"""``pacda-verifier check-report``: verify a signed report offline (needs only ``protocol``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.errors import InvalidArgument, SignatureError
from protocol.report import verify_report
from protocol.signing import key_id, load_public_key
from verifier.cli.common import read_file

HELP = "verify a report's Ed25519 signature offline (no torch or grpc needed)"
EPILOG = "exit codes: 0 valid signature, 1 invalid or altered report, 2 usage error"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, help="report.json")
    parser.add_argument(
        "--public-key", required=True, type=Path, help="the Verifier's public key (PEM)"
    )


def run(args: argparse.Namespace) -> int:
    key = load_public_key(args.public_key)
    document = read_file(args.report, "report")
    try:
        report = verify_report(document, key)
    except (SignatureError, InvalidArgument) as err:
        print(f"INVALID: {args.report}: {err}")
        return 1
    print(f"valid: {args.report} is signed by {key_id(key)}")
    print(f"decision: {report.decision}" + (f" ({report.reason})" if report.reason else ""))
    return 0
