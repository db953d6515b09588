"""Value types of governance events: money and measured quantities as exact decimals, times as
timezone-aware UTC, digests as lowercase SHA-256 hex.

Guarantees: a float is never accepted where a decimal goes (``0.1`` cannot be represented
exactly, and its text would differ between serializers); decimals travel as strings; naive
datetimes are refused; every value dumps to one fixed text form, so a payload hashes the same
whoever built it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from ledger.log.entry import format_time

_DECIMAL_TEXT = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")


def _exact_decimal(value: Any) -> Decimal:
    if isinstance(value, (bool, float)):
        raise ValueError('decimals travel as strings, never floats: send e.g. "0.0042"')
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.match(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
            pass
    raise ValueError('must be a decimal string such as "12.50" (no exponent, no spaces)')


_DECIMAL_SCHEMA = {"type": "string", "pattern": _DECIMAL_TEXT.pattern}

DecimalText = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    PlainSerializer(lambda value: format(value, "f"), return_type=str),
    WithJsonSchema(_DECIMAL_SCHEMA),
]
"""An exact decimal quantity (a string on the wire)."""

Money = Annotated[DecimalText, Field(description="An amount in the event's currency, as text")]
"""An amount of money: a :data:`DecimalText`; the currency is a field of the event."""

NonNegativeDecimal = Annotated[DecimalText, Field(ge=0)]


def _time_text(value: Any) -> Any:
    if isinstance(value, (bool, int, float)):
        raise ValueError(
            'times travel as RFC 3339 text with an offset, e.g. "2026-11-25T09:30:00Z"'
        )
    return value


UtcTime = Annotated[
    AwareDatetime,
    BeforeValidator(_time_text),
    PlainSerializer(format_time, return_type=str),
]
"""A timezone-aware instant, dumped as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest in lowercase hex."""

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")]
"""A printable identifier: request, decision, tranche, policy ids and the like."""

Label = Annotated[str, Field(min_length=1, max_length=200)]
"""Free human-readable text of bounded length (a reason, a name)."""

PersonalText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="Personal data: sent in clear, stored only encrypted with the data "
        "subject's key (a pdk1 envelope); reads show [erased] once the key is destroyed",
    ),
]
"""A personal value (end-user id, e-mail, free text); see ``ledger/privacy``."""
