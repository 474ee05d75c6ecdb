"""``pacda-verifier show``: render a report as text, optionally as HTML with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.report import load_report_unverified
from verifier.cli.common import atomic_write, check_output, read_details, read_file
from verifier.render import render_html, render_text

HELP = "render a report (text; --html writes a page with inline SVG plots)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, help="report.json")
    parser.add_argument("--html", type=Path, default=None, metavar="OUT", help="write HTML here")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --html file (default: refuse)"
    )


def run(args: argparse.Namespace) -> int:
    if args.html is not None:
        check_output(args.html, force=args.force, what="--html")
    report = load_report_unverified(read_file(args.report, "report"))
    print("(signature not checked; use check-report)")
    print(render_text(report))
    if args.html is not None:
        atomic_write(args.html, render_html(report, read_details(args.report)).encode())
        print(f"HTML written to {args.html}")
    return 0
