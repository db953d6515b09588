"""The spliced entry bytes (entry.entry_bytes: fixed key order, payload bytes spliced in) are
byte-identical to the reference RFC 8785 implementation on the whole entry object, for any
valid envelope and any payload in the JSON domain."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.log.entry import EntryInput, entry_bytes, entry_object, format_time, payload_bytes

SAFE_INT = 2**53 - 1
ID_CHARS = "".join(c for c in string.printable[:94] if c not in '"\\')

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE_INT, SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=20,
)
payloads = st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), json_values, max_size=6
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    payload=payloads,
    stream_id=st.text(ID_CHARS, min_size=1, max_size=20),
    key=st.none() | st.text(ID_CHARS, min_size=1, max_size=20),
    occurred=st.none() | moments,
    schema_version=st.integers(1, 1000),
    seq=st.integers(0, SAFE_INT),
    stream_version=st.integers(1, 10**9),
    recorded=moments,
)
def test_spliced_bytes_equal_the_reference_jcs(
    payload: dict[str, Any],
    stream_id: str,
    key: str | None,
    occurred: datetime | None,
    schema_version: int,
    seq: int,
    stream_version: int,
    recorded: datetime,
) -> None:
    inp = EntryInput(
        type="InferenceRouted",
        stream=f"request:{stream_id}",
        tenant="acme-eu",
        payload=payload,
        schema_version=schema_version,
        occurred_at=occurred,
        idempotency_key=key,
    )
    fields = {
        "seq": seq,
        "event_id": "01a2136a-756c-70eb-9ee0-73a5539a5d30",
        "stream_version": stream_version,
        "recorded_at": format_time(recorded),
    }
    spliced = entry_bytes(inp, payload_bytes(inp), **fields)
    assert spliced == rfc8785.dumps(entry_object(inp, **fields))
