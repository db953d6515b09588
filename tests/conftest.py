"""Shared fixtures: real databases made fresh for each test and dropped afterwards.

PostgreSQL comes from PACTLEDGER_TEST_POSTGRES_URL (default: the local server, maintenance
database ``postgres``). Each test gets its own database, cloned from a template migrated once
per session. When CI=true a missing server fails the tests; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore

ADMIN_URL = os.environ.get(
    "PACTLEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ORIGIN = "test.pactledger.example/log"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def _require_postgres() -> None:
    try:
        with _admin():
            pass
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (mandatory in CI)")
        pytest.skip(message)


def create_database(template: str | None = None) -> str:
    name = f"pactledger_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            # FILE_COPY (PostgreSQL 15+) copies a small template ~3x faster than WAL_LOG.
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy).format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(statement)
    return name


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated, empty database that tests clone (much faster than migrating each time)."""
    _require_postgres()
    name = create_database()
    engine = make_engine(database_url(name))
    migrate(engine)
    engine.dispose()
    yield name
    drop_database(name)


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database of this test's own."""
    name = create_database(template=postgres_template)
    yield database_url(name)
    drop_database(name)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database with no schema at all."""
    _require_postgres()
    name = create_database()
    yield database_url(name)
    drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


def open_sql_store(
    url: str, *, clock: Callable[[], datetime] | None = None, tree_cache: int = 0
) -> SqlLogStore:
    engine = make_engine(url)
    migrate(engine)
    store = (
        SqlLogStore(engine, clock=clock, tree_cache=tree_cache)
        if clock
        else SqlLogStore(engine, tree_cache=tree_cache)
    )
    store.initialize(ORIGIN)
    return store


class TickingClock:
    """A deterministic ledger clock that advances one millisecond per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now
