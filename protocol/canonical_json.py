"""RFC 8785 (JSON Canonicalization Scheme) serialisation.

Digests and signatures in pacda are taken over the canonical JSON of an
object: UTF-8, no insignificant whitespace, object members sorted by the
UTF-16 code units of their names, numbers in the ECMAScript shortest
round-trip form (RFC 8785 §3.2.2.3).  Only JSON types are accepted: dict with
str keys, list/tuple, str, int, finite float, bool and None.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import InvalidArgument

__all__ = ["canonical_json", "sha256_digest"]

_MAX_SAFE_INT = 2**53 - 1


def _number(value: float) -> str:
    """ECMAScript Number::toString for a finite float (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise InvalidArgument(f"canonical JSON cannot encode {value!r}")
    if value == 0.0:
        return "0"
    text = repr(value)  # shortest round-trip digits
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # n: position of the decimal point relative to the digit string (ECMA-262 7.1.12.1).
    lead_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    n = len(int_part) + exponent - lead_zeros
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp_str = f"e+{e}" if e >= 0 else f"e-{-e}"
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + exp_str
    return sign + out


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise InvalidArgument(f"integer {value} is outside the I-JSON safe range")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise InvalidArgument(f"canonical JSON object keys must be str, got {key!r}")
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        out.append("{")
        for i, (key, item) in enumerate(items):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise InvalidArgument(f"canonical JSON cannot encode a {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON (UTF-8 bytes)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def sha256_digest(value: Any) -> str:
    """``"sha256:" + hex(SHA-256(canonical_json(value)))`` — a digest that names its algorithm."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()
