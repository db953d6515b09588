"""``SqlLogStore.reading()``: several reads share one connection and one transaction, give the
same answers as reads made one by one, nest, and end cleanly when the block raises. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from ledger.integrity.merkle import prove_inclusion
from ledger.store.sql import SqlLogStore
from tests.conftest import open_sql_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[SqlLogStore]:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    opened = open_sql_store(request.getfixturevalue(fixture))
    opened.append(
        [
            {"type": "Note", "stream": f"request:r{i % 7}", "tenant": "acme", "payload": {"i": i}}
            for i in range(40)
        ]
    )
    yield opened
    opened.engine.dispose()


def checkouts(store: SqlLogStore) -> list[Any]:
    seen: list[Any] = []
    event.listen(store.engine, "checkout", lambda conn, *_: seen.append(conn))
    return seen


def reads(store: SqlLogStore) -> tuple[Any, ...]:
    return (
        store.head(),
        store.stream_entries("request:r3"),
        prove_inclusion(store, index=17, size=40),
        store.entry(5),
    )


def test_reads_in_a_block_share_one_connection_and_answer_alike(store: SqlLogStore) -> None:
    one_by_one = reads(store)
    seen = checkouts(store)
    with store.reading():
        shared = reads(store)
    assert shared == one_by_one
    assert len(seen) == 1
    reads(store)
    assert len(seen) > 2  # outside a block, each read checks a connection out


def test_a_nested_block_joins_the_outer_one(store: SqlLogStore) -> None:
    seen = checkouts(store)
    with store.reading():
        with store.reading():
            store.head()
        store.entry(0)
    assert len(seen) == 1


def failing_read(store: SqlLogStore) -> None:
    with store.reading():
        store.head()
        raise RuntimeError("the caller failed")


def test_a_block_that_raises_ends_its_transaction(store: SqlLogStore) -> None:
    with pytest.raises(RuntimeError):
        failing_read(store)
    receipts = store.append([{"type": "Note", "stream": "s:x", "tenant": "acme", "payload": {}}])
    assert receipts[0].seq == 40  # the writer was not blocked by a dangling read
    assert store.head().size == 41
