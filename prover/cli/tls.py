"""``pacda-prover tls --out PREFIX``: a self-signed TLS certificate and key for local use.

Writes ``PREFIX-cert.pem`` (an X.509 certificate, ECDSA P-256, valid for the
given host names and IP addresses, usable as its own trust root) and
``PREFIX-key.pem`` (its PKCS #8 private key, mode 0600).  Serve with
``pacda-prover serve --tls-cert PREFIX-cert.pem --tls-key PREFIX-key.pem`` and
give the Verifier ``--tls-ca PREFIX-cert.pem``.  For anything beyond local use,
get a certificate from a real authority.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.errors import InvalidArgument

__all__ = ["HELP", "add_arguments", "run", "self_signed_pair", "write_tls_pair"]

HELP = "write a self-signed TLS certificate PREFIX-cert.pem and key PREFIX-key.pem (local use)"
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed_pair(
    names: Sequence[str] = DEFAULT_NAMES, *, days: int = 365, now: dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``names`` (DNS names or IP addresses) and its key.

    Args:
        names: subject alternative names; the first is also the common name.
        days: validity from ``now``.
        now: start of validity (default: the current UTC time, minus 5 minutes of slack).

    Returns:
        ``(certificate PEM, private key PEM)``.

    Raises:
        InvalidArgument: no names, or ``days < 1``.
    """
    if not names:
        raise InvalidArgument("a TLS certificate needs at least one host name")
    if days < 1:
        raise InvalidArgument(f"days must be >= 1, got {days}")
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise InvalidArgument(f"refusing to overwrite existing file {path}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def write_tls_pair(
    prefix: str | Path,
    names: Sequence[str] = DEFAULT_NAMES,
    *,
    days: int = 365,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``PREFIX-cert.pem`` and ``PREFIX-key.pem`` (0600); returns their paths.

    Raises:
        InvalidArgument: a file exists and ``overwrite`` is false.
    """
    cert_path = Path(f"{prefix}-cert.pem")
    key_path = Path(f"{prefix}-key.pem")
    if not overwrite:
        for path in (cert_path, key_path):
            if path.exists():
                raise InvalidArgument(f"refusing to overwrite existing file {path}")
    cert_pem, key_pem = self_signed_pair(names, days=days)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    _write(key_path, key_pem, 0o600, overwrite)
    _write(cert_path, cert_pem, 0o644, overwrite)
    return cert_path, key_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tls``."""
    parser.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the files")
    parser.add_argument(
        "--name",
        action="append",
        dest="names",
        metavar="HOST",
        help="host name or IP address the certificate is for (repeatable; "
        f"default: {', '.join(DEFAULT_NAMES)})",
    )
    parser.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")


def run(args: argparse.Namespace) -> int:
    """Write the pair and say how to use it."""
    names = tuple(args.names) if args.names else DEFAULT_NAMES
    cert, key = write_tls_pair(args.out, names, days=args.days, overwrite=args.overwrite)
    print(f"certificate: {cert} (for {', '.join(names)}; give it to the Verifier as --tls-ca)")
    print(f"private key: {key} (mode 0600)")
    return 0
