"""Ed25519 keys and signatures over canonical JSON.

Every signature in pacda is a pure Ed25519 signature (RFC 8032 §5.1) over the
RFC 8785 canonical JSON (:func:`protocol.canonical_json.canonical_json`) of a
small object, so both sides sign the same bytes whatever their JSON library.
Bytes inside signed objects are lowercase hex strings.  The wire statements
(``protos/pacda/v1/prover.proto``) are built by :func:`commitment_statement`
and :func:`root_statement` so Prover and Verifier cannot disagree on them.

Key files: private keys are PKCS #8 PEM, unencrypted, mode 0600, created with
``O_EXCL``; public keys are SubjectPublicKeyInfo PEM.  The Verifier's default
key lives at ``$PACDA_HOME/verifier.key`` or
``$XDG_CONFIG_HOME/pacda/verifier.key`` (XDG default ``~/.config``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from protocol.canonical_json import canonical_json
from protocol.errors import InvalidArgument, SignatureError

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "commitment_statement",
    "default_verifier_key_path",
    "generate_private_key",
    "key_id",
    "load_or_create_default_key",
    "load_private_key",
    "load_public_key",
    "public_key_bytes",
    "public_key_from_bytes",
    "root_statement",
    "sign_json",
    "verify_json",
    "write_keypair",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key from the operating system's CSPRNG."""
    return Ed25519PrivateKey.generate()


def _key_paths(prefix: str | Path) -> tuple[Path, Path]:
    text = os.fspath(prefix)
    if not text:
        raise InvalidArgument("key prefix must not be empty")
    return Path(text + ".key"), Path(text + ".pub")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively (``O_EXCL``) with ``mode`` and write ``data``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise InvalidArgument(f"refusing to overwrite existing key file {path}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or widened nothing; be exact
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace ``path``: write a fresh ``mode`` temp file, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_keypair(prefix: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Generate an Ed25519 key pair and write ``PREFIX.key`` and ``PREFIX.pub``.

    ``PREFIX.key`` is PKCS #8 PEM, unencrypted, file mode 0600;
    ``PREFIX.pub`` is SubjectPublicKeyInfo PEM, mode 0644.  Missing parent
    directories are created (mode 0700).

    Args:
        prefix: path prefix; ``.key`` / ``.pub`` are appended (not substituted).
        overwrite: replace existing files (atomically) instead of refusing.

    Returns:
        ``(private_key_path, public_key_path)``.

    Raises:
        InvalidArgument: a file exists and ``overwrite`` is false (naming it).
    """
    key_path, pub_path = _key_paths(prefix)
    if not overwrite:
        for path in (key_path, pub_path):
            if path.exists():
                raise InvalidArgument(f"refusing to overwrite existing key file {path}")
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_private_key()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if overwrite:
        _replace(key_path, private_pem, 0o600)
        _replace(pub_path, public_pem, 0o644)
    else:
        _write_new(key_path, private_pem, 0o600)
        try:
            _write_new(pub_path, public_pem, 0o644)
        except BaseException:
            key_path.unlink(missing_ok=True)
            raise
    return key_path, pub_path


def _read_key_file(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise InvalidArgument(f"{what} file {p} does not exist") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{what} file {p} is a directory") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {what} file {p}: {exc.strerror}") from None


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Load an unencrypted PEM (PKCS #8) Ed25519 private key.

    Raises:
        InvalidArgument: missing file, not a PEM private key, encrypted, or not Ed25519.
    """
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidArgument(
            f"private key file {path} is encrypted; pacda keys are unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgument(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument(
            f"private key file {path} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Load a SubjectPublicKeyInfo PEM Ed25519 public key.

    Raises:
        InvalidArgument: missing file, not a PEM public key, or not Ed25519.
    """
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgument(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgument(
            f"public key file {path} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte encoding of an Ed25519 public key (RFC 8032 §5.1.5)."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    """Decode a raw 32-byte Ed25519 public key (e.g. ``TaskDescription.prover_public_key``).

    Raises:
        InvalidArgument: not 32 bytes.
    """
    if not isinstance(raw, bytes | bytearray) or len(raw) != PUBLIC_KEY_BYTES:
        size = len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__
        raise InvalidArgument(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} raw bytes, got {size}")
    try:
        return Ed25519PublicKey.from_public_bytes(bytes(raw))
    except ValueError as exc:  # pragma: no cover - the length check above is the only rule
        raise InvalidArgument(f"invalid Ed25519 public key: {exc}") from None


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """``"ed25519:" + hex(raw public key)``; a private key is named by its public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return "ed25519:" + public_key_bytes(public).hex()


def sign_json(private_key: Ed25519PrivateKey, obj: Any) -> bytes:
    """Ed25519 signature (RFC 8032, 64 bytes) over ``canonical_json(obj)`` (RFC 8785).

    Raises:
        InvalidArgument: ``obj`` is not representable as canonical JSON.
    """
    return private_key.sign(canonical_json(obj))


def verify_json(public_key: Ed25519PublicKey, obj: Any, signature: bytes) -> None:
    """Check an Ed25519 signature over ``canonical_json(obj)``.

    Raises:
        SignatureError: the signature is malformed or does not verify under ``public_key``.
        InvalidArgument: ``obj`` is not representable as canonical JSON.
    """
    message = canonical_json(obj)
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_BYTES:
        size = len(signature) if isinstance(signature, bytes | bytearray) else "?"
        raise SignatureError(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes, got {size}")
    try:
        public_key.verify(bytes(signature), message)
    except InvalidSignature:
        raise SignatureError(
            f"Ed25519 signature does not verify under {key_id(public_key)}"
        ) from None


def commitment_statement(
    *, session_id: str, task_digest: str, attribution_digest: str, mode: str
) -> dict[str, Any]:
    """The object ``AttributionCommitment.signature`` signs (prover.proto).

    ``{session_id, task_digest, attribution_digest, mode}``, all strings.
    """
    return {
        "session_id": session_id,
        "task_digest": task_digest,
        "attribution_digest": attribution_digest,
        "mode": mode,
    }


def root_statement(
    *,
    session_id: str,
    task_digest: str,
    attribution_digest: str,
    challenge_seed: bytes,
    merkle_root: bytes,
    n_leaves: int,
) -> dict[str, Any]:
    """The object ``ResultRoot.signature`` signs (prover.proto).

    ``challenge_seed`` and ``merkle_root`` (32 bytes each) become lowercase
    hex strings; ``n_leaves`` stays an integer.

    Raises:
        InvalidArgument: a byte field is not 32 bytes or ``n_leaves`` is negative.
    """
    for name, value in (("challenge_seed", challenge_seed), ("merkle_root", merkle_root)):
        if not isinstance(value, bytes | bytearray) or len(value) != 32:
            raise InvalidArgument(f"{name} must be 32 bytes")
    if isinstance(n_leaves, bool) or not isinstance(n_leaves, int) or n_leaves < 0:
        raise InvalidArgument(f"n_leaves must be a non-negative integer, got {n_leaves!r}")
    return {
        "session_id": session_id,
        "task_digest": task_digest,
        "attribution_digest": attribution_digest,
        "challenge_seed": bytes(challenge_seed).hex(),
        "merkle_root": bytes(merkle_root).hex(),
        "n_leaves": n_leaves,
    }


def default_verifier_key_path() -> Path:
    """``$PACDA_HOME/verifier.key``, else ``$XDG_CONFIG_HOME/pacda/verifier.key``.

    An unset or empty ``XDG_CONFIG_HOME`` means ``~/.config`` (XDG Base Directory spec).
    """
    home = os.environ.get("PACDA_HOME")
    if home:
        return Path(home) / "verifier.key"
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "pacda" / "verifier.key"


def load_or_create_default_key() -> tuple[Ed25519PrivateKey, Path, bool]:
    """Load the per-user Verifier key, creating it (and its ``.pub``) on first use.

    Returns:
        ``(private_key, key_path, created)``.

    Raises:
        InvalidArgument: an existing key file is unreadable or not Ed25519.
    """
    path = default_verifier_key_path()
    if path.exists():
        return load_private_key(path), path, False
    prefix = Path(str(path)[: -len(".key")])
    try:
        write_keypair(prefix)
    except InvalidArgument:
        if path.exists():  # another process created it first
            return load_private_key(path), path, False
        raise
    return load_private_key(path), path, True
