"""``pacda-verifier show``: render a report as text, optionally as HTML with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.errors import InvalidArgument, SignatureError
from protocol.report import load_report_unverified, verify_report
from protocol.signing import key_id, load_public_key
from verifier.cli.common import atomic_write, check_output, read_details, read_file
from verifier.render import render_html, render_text

HELP = "render a report (text; --html writes a page with inline SVG plots)"
DESCRIPTION = """\
Render a signed audit report as text and, with --html, as a self-contained page.

With --public-key the report's signature is verified first: a report that
does not verify is not rendered (exit 1), and the page says whose signature
it carries.  Without --public-key nothing is verified, and the text and the
page say so with a prominent UNVERIFIED banner."""
EPILOG = (
    "exit codes: 0 rendered (whatever the report's verdict; with --public-key, the "
    "signature is valid), 1 --public-key given and the signature does not verify, "
    "2 usage error (unreadable or malformed report, --html exists without --force)"
)

UNVERIFIED = (
    "UNVERIFIED: this report's signature was not checked (anyone could have written it); "
    "pass --public-key, or run check-report"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, help="report.json")
    parser.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="the Verifier's public key (PEM): verify the signature before rendering",
    )
    parser.add_argument("--html", type=Path, default=None, metavar="OUT", help="write HTML here")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --html file (default: refuse)"
    )


def run(args: argparse.Namespace) -> int:
    if args.html is not None:
        check_output(args.html, force=args.force, what="--html")
    key = load_public_key(args.public_key) if args.public_key is not None else None
    document = read_file(args.report, "report")
    if key is None:
        report = load_report_unverified(document)
        signature = None
        print(UNVERIFIED)
    else:
        try:
            report = verify_report(document, key)
        except (SignatureError, InvalidArgument) as err:
            print(f"INVALID: {args.report}: {err}")
            return 1
        signature = f"signature verified: signed by {key_id(key)}"
        print(signature)
    print(render_text(report))
    if args.html is not None:
        page = render_html(report, read_details(args.report), signature=signature)
        atomic_write(args.html, page.encode())
        print(f"HTML written to {args.html}")
    return 0
