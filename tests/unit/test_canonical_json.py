"""RFC 8785 canonical JSON: number forms, key order, refusals."""

from __future__ import annotations

import pytest

from protocol.canonical_json import canonical_json, sha256_digest
from protocol.errors import InvalidArgument


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (-0.000001, "-0.000001"),
        (5e-324, "5e-324"),
        (-0.0, "0"),
        (333333333.3333333, "333333333.3333333"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_numbers_follow_ecmascript(value: float, text: str) -> None:
    assert canonical_json(value) == text.encode()


def test_keys_sorted_by_utf16_and_no_whitespace() -> None:
    obj = {"\U0001f600": 2, "\u20ac": 1, "b": [1, 2.5, None, True], "a": "\u00e9\n"}
    assert (
        canonical_json(obj)
        == '{"a":"\u00e9\\n","b":[1,2.5,null,true],"\u20ac":1,"\U0001f600":2}'.encode()
    )
    assert sha256_digest(obj).startswith("sha256:") and len(sha256_digest(obj)) == 71


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "cannot encode nan"),
        (2**60, "outside the I-JSON safe range"),
        ({1: 2}, "keys must be str"),
        (b"x", "cannot encode a bytes"),
    ],
)
def test_refusals(value: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        canonical_json(value)
