"""The Prover's signing key as the handlers see it: a public key and ``sign(obj)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.signing import public_key_bytes, sign_json

__all__ = ["Ed25519Signer", "Signer"]


class Signer(Protocol):
    """Signs JSON objects (RFC 8785 canonical form) with the Prover's key."""

    @property
    def public_key(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        ...

    def sign(self, obj: Mapping[str, Any]) -> bytes:
        """64-byte Ed25519 signature over ``canonical_json(obj)``."""
        ...


class Ed25519Signer:
    """:class:`Signer` over an Ed25519 private key (:mod:`protocol.signing`)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._public = public_key_bytes(private_key.public_key())

    @property
    def public_key(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        return self._public

    def sign(self, obj: Mapping[str, Any]) -> bytes:
        """Signature over the canonical JSON of ``obj``."""
        return sign_json(self._key, dict(obj))
