"""The ``store`` fixture: every contract test runs against the in-memory, SQLite and PostgreSQL
implementations of the LogStore port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.log.ports import LogStore
from ledger.store.memory import MemoryLogStore
from tests.conftest import ORIGIN, TickingClock, open_sql_store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[LogStore]:
    clock = TickingClock()
    if request.param == "memory":
        yield MemoryLogStore(ORIGIN, clock=clock)
        return
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("postgres_url")
    sql_store = open_sql_store(url, clock=clock)
    yield sql_store
    sql_store.engine.dispose()
