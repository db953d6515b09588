"""Hypothesis properties of canonical_bytes against the rfc8785 reference implementation.

Proves:

* on the orjson fast-path domain (no floats, object keys inside the Basic Multilingual Plane),
  orjson's sorted output equals rfc8785 byte for byte, and so does canonical_bytes;
* for any JSON value (full Unicode without lone surrogates, including keys outside the BMP,
  safe integers, and with or without finite floats), canonical_bytes equals rfc8785.dumps;
* canonical bytes are a fixed point: parsing them with json.loads and canonicalizing again
  gives the same bytes, for every float-free value;
* an out-of-domain value anywhere in a document raises ValidationError whose .field is its
  JSON path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ValidationError
from ledger.integrity.canonical import MAX_SAFE_INTEGER, canonical_bytes

SPECIAL_BMP = [
    "\x00", "\x07", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/", "\x7f",
    "\x80", "\u00f6", "\u2028", "\u2029", "\u20ac", "\ud7ff", "\ue000", "\ufb33", "\ufeff",
    "\uffff",
]  # fmt: skip
SPECIAL_ASTRAL = ["\U00010000", "\U0001f600", "\U0001f602", "\U0010ffff"]

bmp_chars = st.one_of(
    st.characters(codec="utf-8", max_codepoint=0xFFFF), st.sampled_from(SPECIAL_BMP)
)
all_chars = st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIAL_BMP + SPECIAL_ASTRAL))
bmp_text = st.text(bmp_chars, max_size=8)
# Short keys from the characters where UTF-16 and code point order disagree (U+E000..U+FFFF
# sorts after a surrogate pair in UTF-16 but before its code point), so that dictionaries with
# both kinds of key are common.
order_sensitive = st.text(
    st.sampled_from(["a", "\ud7ff", "\ue000", "\ufb33", "\uffff", *SPECIAL_ASTRAL]),
    max_size=3,
)
all_text = st.one_of(st.text(all_chars, max_size=8), order_sensitive)
safe_ints = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, -(2**32), 10**15]),
)
finite_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 5e-324, 1e21, 1e-7, 333333333.33333329, 1e23, 9007199254740993.0]),
)


def json_values(keys: st.SearchStrategy[str], scalars: st.SearchStrategy[Any]) -> Any:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=25,
    )


def scalars(text: st.SearchStrategy[str], *, floats: bool) -> st.SearchStrategy[Any]:
    base = st.one_of(st.none(), st.booleans(), safe_ints, text)
    return st.one_of(base, finite_floats) if floats else base


fast_domain = json_values(bmp_text, scalars(all_text, floats=False))
no_float_values = json_values(all_text, scalars(all_text, floats=False))
any_values = json_values(all_text, scalars(all_text, floats=True))


@settings(max_examples=400, deadline=None)
@given(fast_domain)
def test_orjson_fast_path_is_byte_exact(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == expected
    assert canonical_bytes(value) == expected


@settings(max_examples=400, deadline=None)
@given(no_float_values)
def test_equals_rfc8785_without_floats(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=400, deadline=None)
@given(any_values)
def test_equals_rfc8785_with_floats(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(all_text, safe_ints, min_size=2, max_size=8))
def test_keys_sort_by_utf16_code_units(value: dict[str, int]) -> None:
    pairs = json.loads(canonical_bytes(value), object_pairs_hook=list)
    keys = [key for key, _ in pairs]
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


@settings(max_examples=300, deadline=None)
@given(no_float_values)
def test_canonical_bytes_are_a_fixed_point(value: Any) -> None:
    once = canonical_bytes(value)
    assert canonical_bytes(json.loads(once)) == once


@settings(max_examples=300, deadline=None)
@given(
    json_values(
        all_text,
        scalars(all_text, floats=True).filter(
            lambda v: not isinstance(v, float) or not v.is_integer() or abs(v) <= MAX_SAFE_INTEGER
        ),
    )
)
def test_fixed_point_with_floats_in_the_safe_range(value: Any) -> None:
    once = canonical_bytes(value)
    assert canonical_bytes(json.loads(once)) == once


def test_large_integral_float_reads_back_as_an_int_out_of_domain() -> None:
    """The documented limit (canonical.py docstring): RFC 8785 prints 1e20 as an integer
    literal, which a JSON reader returns as an int beyond 2**53 that canonical_bytes refuses;
    such quantities belong in strings."""
    once = canonical_bytes({"amount": 1e20})
    assert once == b'{"amount":100000000000000000000}'
    with pytest.raises(ValidationError) as caught:
        canonical_bytes(json.loads(once))
    assert caught.value.field == "$.amount"


# --- .field names the culprit --------------------------------------------------------------

BAD_SCALARS = st.sampled_from(
    [2**53, -(2**53), 2**64, float("nan"), float("inf"), float("-inf"), "lone \ud800",
     "\udfff", (1,), b"x", {1}, object()]
)  # fmt: skip
GOOD_SCALARS = scalars(st.text(st.characters(codec="ascii"), max_size=4), floats=False)
SEGMENTS = st.lists(
    st.one_of(
        st.tuples(st.just("key"), st.text(st.characters(codec="ascii"), max_size=5)),
        st.tuples(st.just("index"), st.integers(0, 3)),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(BAD_SCALARS, SEGMENTS, GOOD_SCALARS)
def test_field_is_the_path_of_the_bad_value(bad: Any, segments: list[Any], good: Any) -> None:
    value: Any = bad
    for kind, where in reversed(segments):
        if kind == "key":
            value = {where: value, **({} if where == "~" else {"~": good})}
        else:
            value = [good] * where + [value, good]
    path = "$" + "".join(f".{w}" if kind == "key" else f"[{w}]" for kind, w in segments)
    with pytest.raises(ValidationError) as caught:
        canonical_bytes(value)
    assert caught.value.field == path
