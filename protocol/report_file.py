"""Signed report files (:mod:`protocol.report`): canonical JSON, Ed25519, byte-exact checks."""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from protocol.canonical_json import canonical_json
from protocol.errors import InvalidArgument, SignatureError
from protocol.report_fields import _MAX_SAFE_INT, _exact_keys
from protocol.report_types import SIGNATURE_ALGORITHM, AuditReport
from protocol.signing import (
    key_id,
    public_key_bytes,
    public_key_from_bytes,
    sign_json,
    verify_json,
)


# -- signing and verification ---------------------------------------------------
def sign_report(report: AuditReport, private_key: Ed25519PrivateKey) -> bytes:
    """The signed report file: canonical JSON (RFC 8785), no trailing newline.

    The signature is Ed25519 (RFC 8032) over ``canonical_json(report.to_dict())``.
    """
    body = report.to_dict()
    signature = sign_json(private_key, body)
    return canonical_json(
        {
            "report": body,
            "signature": {
                "algorithm": SIGNATURE_ALGORITHM,
                "public_key": public_key_bytes(private_key.public_key()).hex(),
                "value": signature.hex(),
            },
        }
    )


def _reject_constant(name: str) -> Any:
    raise InvalidArgument(f"report is not valid JSON: {name} is not a JSON number")


def _parse_int(text: str) -> int | float:
    value = int(text)
    return value if abs(value) <= _MAX_SAFE_INT else float(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidArgument(f"report is not valid JSON: duplicate key {key!r}")
        out[key] = value
    return out


def _parse(document: bytes) -> Any:
    if not isinstance(document, bytes | bytearray):
        raise InvalidArgument(f"a report document is bytes, got {type(document).__name__}")
    try:
        text = bytes(document).decode("utf-8")
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"report is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"report is not valid JSON: {exc.msg} at byte {exc.pos}") from None
    except RecursionError:
        raise InvalidArgument("report is not valid JSON: nested too deeply") from None


def _envelope(parsed: Any) -> tuple[dict[str, Any], bytes, bytes]:
    """``(report object, raw public key, raw signature)`` of a parsed report file."""
    top = _exact_keys("report file", parsed, frozenset(("report", "signature")))
    sig = _exact_keys(
        "signature", top["signature"], frozenset(("algorithm", "public_key", "value"))
    )
    if sig["algorithm"] != SIGNATURE_ALGORITHM:
        raise InvalidArgument(f"unsupported signature algorithm {sig['algorithm']!r}")
    key_hex, value_hex = sig["public_key"], sig["value"]
    if not isinstance(key_hex, str) or not re.fullmatch("[0-9a-f]{64}", key_hex):
        raise InvalidArgument("signature.public_key must be 32 bytes as lowercase hex")
    if not isinstance(value_hex, str) or not re.fullmatch("[0-9a-f]{128}", value_hex):
        raise InvalidArgument("signature.value must be 64 bytes as lowercase hex")
    if not isinstance(top["report"], dict):
        raise InvalidArgument("report must be an object")
    return top["report"], bytes.fromhex(key_hex), bytes.fromhex(value_hex)


def verify_report(document: bytes, public_key: Ed25519PublicKey) -> AuditReport:
    """Verify a signed report file offline and return the report.

    Args:
        document: the file's exact bytes.
        public_key: the Verifier key the report must be signed with.

    Raises:
        InvalidArgument: not UTF-8 JSON, or a malformed envelope or report.
        SignatureError: the bytes are not exactly the RFC 8785 canonical
            encoding of their content (any edit after signing), the embedded
            key is not ``public_key``, or the Ed25519 signature fails.
    """
    parsed = _parse(document)
    try:
        canonical = canonical_json(parsed)
    except UnicodeEncodeError:
        raise InvalidArgument("report contains a string that is not valid Unicode") from None
    if canonical != bytes(document):
        raise SignatureError(
            "report file is not in RFC 8785 canonical form, so it was changed after signing"
        )
    body, key_raw, signature = _envelope(parsed)
    expected = public_key_bytes(public_key)
    if key_raw != expected:
        raise SignatureError(
            f"report is signed by ed25519:{key_raw.hex()}, not by the expected key "
            f"{key_id(public_key)}"
        )
    verify_json(public_key, body, signature)
    report = AuditReport.from_dict(body)
    if canonical_json(report.to_dict()) != canonical_json(body):
        raise InvalidArgument("report fields do not round-trip; refusing an ambiguous report")
    return report


def load_report_unverified(document: bytes) -> AuditReport:
    """Parse a report file for display WITHOUT checking its signature.

    Raises:
        InvalidArgument: not UTF-8 JSON, or a malformed envelope or report.
    """
    body, _, _ = _envelope(_parse(document))
    return AuditReport.from_dict(body)


def report_public_key(document: bytes) -> Ed25519PublicKey:
    """The (unverified) signer key embedded in a report file, e.g. to display its key id."""
    _, key_raw, _ = _envelope(_parse(document))
    return public_key_from_bytes(key_raw)
