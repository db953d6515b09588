"""Event ids are RFC 9562 UUIDv7: version 7, RFC variant, the batch's Unix millisecond in the
top 48 bits, and distinct."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ledger.log.ids import uuid7_batch


def test_a_batch_of_ids_is_uuidv7_stamped_with_the_millisecond() -> None:
    moment = datetime(2026, 11, 25, 15, 16, 42, 123456, tzinfo=UTC)
    ids = uuid7_batch(5000, moment)
    parsed = [uuid.UUID(text) for text in ids]
    assert [str(u) for u in parsed] == ids  # canonical lowercase 8-4-4-4-12 form
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert {u.int >> 80 for u in parsed} == {int(moment.timestamp() * 1000)}
    assert len(set(ids)) == len(ids)
    # 74 random bits each: the variant nibble's two free bits must vary too.
    assert {text[19] for text in ids} == set("89ab")


def test_an_empty_batch() -> None:
    assert uuid7_batch(0, datetime.now(UTC)) == []
