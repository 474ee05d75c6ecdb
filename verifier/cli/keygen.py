"""``pacda-verifier keygen --out PREFIX``: a new Ed25519 key pair for signing reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.signing import key_id, load_public_key, write_keypair

HELP = "write a new Ed25519 key pair PREFIX.key (mode 0600) and PREFIX.pub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="PREFIX", help="key path prefix")
    parser.add_argument("--force", action="store_true", help="replace existing key files")


def run(args: argparse.Namespace) -> int:
    private, public = write_keypair(args.out, overwrite=args.force)
    print(f"private key: {private}")
    print(f"public key:  {public}  ({key_id(load_public_key(public))})")
    return 0
