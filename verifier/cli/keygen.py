"""``pacda-verifier keygen --out PREFIX``: a new Ed25519 key pair for signing reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.errors import InvalidArgument
from protocol.signing import key_id, load_public_key, write_keypair
from verifier.cli.common import check_output

HELP = "write a new Ed25519 key pair PREFIX.key (mode 0600) and PREFIX.pub"
EPILOG = "exit codes: 0 written, 2 usage error (a key file exists without --force)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="PREFIX", help="key path prefix")
    parser.add_argument("--force", action="store_true", help="replace existing key files")


def run(args: argparse.Namespace) -> int:
    for suffix in (".key", ".pub"):  # appended to PREFIX, as write_keypair does
        path = Path(str(args.out) + suffix)
        if path.exists() and not args.force and not path.is_dir():
            raise InvalidArgument(f"refusing to overwrite existing key file {path} (use --force)")
        check_output(path, force=args.force, what="--out")
    private, public = write_keypair(args.out, overwrite=args.force)
    print(f"private key: {private}")
    print(f"public key:  {public}  ({key_id(load_public_key(public))})")
    return 0
