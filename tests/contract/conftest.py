"""The ``store`` fixture: every contract test runs against the in-memory, SQLite and PostgreSQL
implementations of the LogStore port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.log.ports import LogStore
from ledger.store.memory import MemoryLogStore
from tests.conftest import ORIGIN, TickingClock, open_sql_store


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "sqlite+tree-cache",
        pytest.param("postgres+tree-cache", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[LogStore]:
    """Each implementation; ``+tree-cache``: the SQL store as ``pactledger serve`` runs it,
    proving from its in-memory copy of the Merkle hashes (ledger.store.tree_cache)."""
    clock = TickingClock()
    if request.param == "memory":
        yield MemoryLogStore(ORIGIN, clock=clock)
        return
    backend, _, cached = request.param.partition("+")
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    sql_store = open_sql_store(url, clock=clock, tree_cache=1_000_000 if cached else 0)
    yield sql_store
    sql_store.engine.dispose()
