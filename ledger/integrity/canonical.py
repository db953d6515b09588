"""RFC 8785 (JSON Canonicalization Scheme) bytes of entry objects.

Guarantees: :func:`canonical_bytes` returns exactly the JCS serialization of its argument, the
only byte form pactledger ever hashes or signs. The allowed value domain is JSON: ``None``,
``bool``, ``int`` within ±(2**53 - 1) (the range JCS numbers represent exactly), finite
``float``, ``str`` (valid Unicode, no lone surrogates), ``list`` and ``dict`` with ``str``
keys. Stored bytes are never re-serialized, but note that a whole-number float beyond 2**53
prints as an integer (1e20 → ``100000000000000000000``) that a JSON reader returns as an int
outside the domain: send such quantities as strings.
Anything else raises :class:`~ledger.errors.ValidationError` naming the JSON path.

Speed: the reference implementation (``rfc8785``) costs ~60 µs for a typical entry; orjson with
sorted keys costs ~1 µs and yields identical bytes whenever the value holds no float (JCS number
formatting differs from orjson's) and no object key outside the Basic Multilingual Plane (JCS
sorts keys by UTF-16 code units, orjson by code points; the two orders agree inside the BMP).
The walk below checks the domain and picks the fast path only then; a Hypothesis property test
(tests/property/test_canonical_properties.py) proves byte equality on that domain.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

from ledger.errors import ValidationError

MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 64


class _OutOfDomainError(Exception):
    """Raised by the fast walk; the slow walk then finds the path and the reason."""


_WHOLE_VALUE = object()


def canonical_bytes(value: Any, *, untrusted: Any = _WHOLE_VALUE) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``; raise ValidationError if it is
    outside the JSON domain described in the module docstring.

    ``untrusted`` narrows the domain check to one part of ``value`` (paths in errors are then
    relative to it). Only pass it when the rest of ``value`` is ASCII strings, small ints and
    ``None`` built by the caller itself, as the sequencer's entry envelope is.
    """
    checked = value if untrusted is _WHOLE_VALUE else untrusted
    try:
        fast = _fast_path_ok(checked, 0)
    except _OutOfDomainError:
        _explain(checked, "$", 0)
        raise AssertionError("the slow walk accepted what the fast walk refused") from None
    if fast:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(value)


def _fast_path_ok(value: Any, depth: int) -> bool:
    """Check the domain without building paths; True when orjson is byte-exact for ``value``.

    This walk runs on every appended payload, so scalars inside containers are checked inline
    rather than by a call each.
    """
    kind = type(value)
    if kind is dict or kind is list:
        if depth >= _MAX_DEPTH:
            raise _OutOfDomainError
        fast = True
        items = value.items() if kind is dict else enumerate(value)
        for key, item in items:
            if kind is dict:
                if type(key) is not str:
                    raise _OutOfDomainError
                if not key.isascii():
                    _text_ok(key)
                    if max(map(ord, key)) > 0xFFFF:
                        fast = False
            item_kind = type(item)
            if item_kind is str:
                if not item.isascii():
                    _text_ok(item)
            elif item_kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    raise _OutOfDomainError
            elif item is None or item_kind is bool:
                pass
            elif not _fast_path_ok(item, depth + 1):
                fast = False
        return fast
    if kind is str:
        if not value.isascii():
            _text_ok(value)
        return True
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return True
        raise _OutOfDomainError
    if value is None or kind is bool:
        return True
    if kind is float:
        if value != value or value in (_INF, -_INF):
            raise _OutOfDomainError
        return False
    raise _OutOfDomainError


_INF = float("inf")


def _text_ok(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _OutOfDomainError from None


def _explain(value: Any, path: str, depth: int) -> None:
    """Walk again with paths and raise the ValidationError for the first value out of domain."""
    kind = type(value)
    if kind in (dict, list) and depth >= _MAX_DEPTH:
        raise ValidationError(f"nesting deeper than {_MAX_DEPTH} levels", field=path)
    if kind is str:
        _explain_text(value, path)
    elif kind is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise ValidationError(
            f"integer {value} is outside ±(2**53 - 1), which JSON numbers cannot hold exactly; "
            "send it as a string",
            field=path,
        )
    elif kind is float and (value != value or value in (_INF, -_INF)):
        raise ValidationError("NaN and infinity are not JSON numbers", field=path)
    elif kind is list:
        for index, item in enumerate(value):
            _explain(item, f"{path}[{index}]", depth + 1)
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise ValidationError(f"object key {key!r} is not a string", field=path)
            _explain_text(key, path)
            _explain(item, f"{path}.{key}", depth + 1)
    elif not (value is None or kind in (bool, int, float)):
        raise ValidationError(f"{kind.__name__} is not a JSON value", field=path)


def _explain_text(text: str, path: str) -> None:
    try:
        _text_ok(text)
    except _OutOfDomainError:
        raise ValidationError(
            "string holds a lone surrogate (not valid Unicode)", field=path
        ) from None


class DuplicateNameError(ValueError):
    """A JSON object names one member twice (``key`` is the name)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook that refuses a name twice in one object
    (:class:`DuplicateNameError`)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateNameError(key)
            seen.add(key)
    return found


def duplicate_key(text: bytes | str) -> str | None:
    """The first name that occurs twice in one object of the JSON ``text``, or None (also for
    text that is not JSON: its parser reports that). RFC 8785 (I-JSON) objects have unique
    names; a reader that kept the last of two would hash what the writer did not mean."""
    try:
        json.loads(text, object_pairs_hook=unique_names)
    except DuplicateNameError as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None
    return None
