"""``pacda-prover keygen --out PREFIX``: write the Prover's Ed25519 signing key pair."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.errors import InvalidArgument
from protocol.signing import key_id, load_public_key, write_keypair

__all__ = ["HELP", "add_arguments", "run"]

HELP = "write an Ed25519 signing key pair PREFIX.key (mode 0600) and PREFIX.pub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``keygen``."""
    parser.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the files")
    parser.add_argument(
        "--force",
        "--overwrite",
        dest="force",
        action="store_true",
        help="replace existing key files (default: refuse); --overwrite is an old spelling",
    )


def run(args: argparse.Namespace) -> int:
    """Write the key pair and print where it went and the key id."""
    for path in (Path(args.out + ".key"), Path(args.out + ".pub")):  # appended, not substituted
        if path.is_dir():
            raise InvalidArgument(f"--out {path} is a directory")
        if path.exists() and not args.force:
            raise InvalidArgument(f"refusing to overwrite existing key file {path} (use --force)")
    private_path, public_path = write_keypair(args.out, overwrite=args.force)
    print(f"private key: {private_path} (keep it secret; mode 0600)")
    print(f"public key:  {public_path} ({key_id(load_public_key(public_path))})")
    return 0
