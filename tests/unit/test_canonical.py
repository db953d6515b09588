"""Known-answer and failure tests of ledger.integrity.canonical (RFC 8785 JCS bytes).

Proves that canonical_bytes reproduces RFC 8785's own examples: the §3.2.2 sample with its
§3.2.4 UTF-8 bytes, the §3.2.3 UTF-16 key order, and the Appendix B number samples. It also
reproduces the reference test data of cyberphone/json-canonicalization
(tests/vectors/jcs.json). Every value outside the JSON domain is refused with ValidationError,
and `.field` is the JSON path of the culprit.
"""

from __future__ import annotations

import enum
import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import ValidationError
from ledger.integrity.canonical import MAX_SAFE_INTEGER, canonical_bytes

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "jcs.json").read_text())
NUMBERS = VECTORS["rfc8785_appendix_b_numbers"]


def ieee(hex_bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex_bits))[0]


# --- RFC 8785 examples ----------------------------------------------------------------------


def test_rfc8785_sample() -> None:
    sample = VECTORS["rfc8785_3_2_2"]
    out = canonical_bytes(json.loads(sample["input_json"]))
    assert out == sample["expected"].encode()
    assert out == bytes.fromhex(sample["expected_utf8_hex"])


def test_rfc8785_property_sorting() -> None:
    sample = VECTORS["rfc8785_3_2_3_sorting"]
    out = canonical_bytes(json.loads(sample["input_json"]))
    pairs = json.loads(out, object_pairs_hook=list)
    assert [value for _, value in pairs] == sample["expected_value_order"]


@pytest.mark.parametrize(
    "row", [r for r in NUMBERS if r["json"] is not None], ids=lambda r: r["ieee754_hex"]
)
def test_rfc8785_number_samples(row: dict[str, str]) -> None:
    value = ieee(row["ieee754_hex"])
    expected = row["json"].encode()
    assert canonical_bytes(value) == expected
    assert canonical_bytes([value]) == b"[" + expected + b"]"
    assert canonical_bytes({"n": value, "a": 1}) == b'{"a":1,"n":' + expected + b"}"


@pytest.mark.parametrize(
    "row", [r for r in NUMBERS if r["json"] is None], ids=lambda r: r["comment"]
)
def test_rfc8785_out_of_range_numbers(row: dict[str, str]) -> None:
    value = ieee(row["ieee754_hex"])
    for wrapped, field in [(value, "$"), ({"n": [1, -value]}, "$.n[1]")]:
        with pytest.raises(ValidationError) as caught:
            canonical_bytes(wrapped)
        assert caught.value.field == field


@pytest.mark.parametrize("case", VECTORS["cyberphone_testdata"], ids=lambda c: c["name"])
def test_cyberphone_testdata(case: dict[str, str]) -> None:
    assert canonical_bytes(json.loads(case["input_json"])) == case["expected"].encode()


# --- the value domain ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b"null"),
        (True, b"true"),
        (False, b"false"),
        (0, b"0"),
        (-0.0, b"0"),
        (1.0, b"1"),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        ("", b'""'),
        ("\u2028\u2029\x7f", '"\u2028\u2029\x7f"'.encode()),
        ('\x00\x08\t\n\x0c\r\x1f"\\/', b'"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\/"'),
        ([], b"[]"),
        ({}, b"{}"),
        ({"b": [1, {"d": 1, "c": 2}], "a": None}, b'{"a":null,"b":[1,{"c":2,"d":1}]}'),
        ({"\U00010000": 1, "\uffff": 2}, '{"\U00010000":1,"\uffff":2}'.encode()),
    ],
    ids=repr,
)
def test_domain_values(value: Any, expected: bytes) -> None:
    assert canonical_bytes(value) == expected


def test_max_safe_integer_is_the_documented_bound() -> None:
    assert MAX_SAFE_INTEGER == 2**53 - 1


class Color(enum.IntEnum):
    RED = 1


def nested_lists(containers: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(containers - 1):
        value = [value]
    return value


def nested_dicts(containers: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(containers - 1):
        value = {"a": value}
    return value


class Opaque:
    """A value of no JSON type, with a stable repr so parallel test runs agree on its id."""

    def __repr__(self) -> str:
        return "Opaque()"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (2**53, "$"),
        (-(2**53), "$"),
        ({"a": [1, {"b": 2**53}]}, "$.a[1].b"),
        ([0, [1, -(2**63)]], "$[1][1]"),
        (float("nan"), "$"),
        ({"x": float("inf")}, "$.x"),
        ({"x": [float("-inf")]}, "$.x[0]"),
        ("\ud800", "$"),
        ({"s": ["ok", "tail\udfff"]}, "$.s[1]"),
        ({"k": {"\udc00": 1}}, "$.k"),
        ({"a": [{"fine": 1, "\ud83d": 2}]}, "$.a[0]"),
        ({"a": {1: "x"}}, "$.a"),
        ({"a": {None: "x"}}, "$.a"),
        ({True: 1}, "$"),
        ({("t",): 1}, "$"),
        ((1, 2), "$"),
        ({"a": (1, 2)}, "$.a"),
        ({"a": b"bytes"}, "$.a"),
        ({"a": bytearray(b"x")}, "$.a"),
        ({"a": {1, 2}}, "$.a"),
        ({"a": Decimal("1.5")}, "$.a"),
        ({"a": 1j}, "$.a"),
        ({"a": Opaque()}, "$.a"),
        ({"a": [Color.RED]}, "$.a[0]"),
    ],
    ids=repr,
)
def test_values_outside_domain(value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        canonical_bytes(value)
    assert caught.value.field == field


def test_first_bad_value_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        canonical_bytes({"a": [1, 2, "x"], "b": {"c": [float("nan"), 2**60]}})
    assert caught.value.field == "$.b.c[0]"


def test_depth_limit_lists() -> None:
    assert canonical_bytes(nested_lists(64)) == b"[" * 64 + b"]" * 64
    with pytest.raises(ValidationError, match="nesting") as caught:
        canonical_bytes(nested_lists(65))
    assert caught.value.field == "$" + "[0]" * 64


def test_depth_limit_dicts() -> None:
    assert canonical_bytes(nested_dicts(64)).count(b"{") == 64
    with pytest.raises(ValidationError, match="nesting") as caught:
        canonical_bytes(nested_dicts(65))
    assert caught.value.field == "$" + ".a" * 64


def test_depth_limit_mixed() -> None:
    value: Any = [1]
    for index in range(64):
        value = {"k": value} if index % 2 else [0, value]
    with pytest.raises(ValidationError, match="nesting") as caught:
        canonical_bytes(value)
    assert caught.value.field is not None
    assert caught.value.field.count("[1]") + caught.value.field.count(".k") == 64
