"""The SQL schema: Alembic migrations create exactly the tables the store uses, upgrade and
downgrade cleanly, and an unmigrated or uninitialised database gives an error that says what
to do. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from ledger.errors import ConfigurationError
from ledger.store.engine import _alembic_config, make_engine, migrate, schema_is_current
from ledger.store.sql import SqlLogStore
from ledger.store.tables import metadata
from tests.conftest import ORIGIN


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    fixture = "sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    engine = make_engine(request.getfixturevalue(fixture))
    yield engine
    engine.dispose()


def test_migrations_create_exactly_the_tables_of_the_store(empty_engine: Engine) -> None:
    assert not schema_is_current(empty_engine)
    migrate(empty_engine)
    assert schema_is_current(empty_engine)
    with empty_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_migrations_downgrade_and_upgrade_again(empty_engine: Engine) -> None:
    migrate(empty_engine)
    config = _alembic_config()
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    migrate(empty_engine)
    assert {"entries", "merkle_nodes", "checkpoints", "ledger_head"} <= set(
        inspect(empty_engine).get_table_names()
    )


def test_an_unmigrated_database_says_to_run_init(empty_engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="pactledger init"):
        SqlLogStore(empty_engine).head()


def test_a_migrated_but_uninitialised_ledger_says_to_run_init(empty_engine: Engine) -> None:
    migrate(empty_engine)
    with pytest.raises(ConfigurationError, match="pactledger init"):
        SqlLogStore(empty_engine).head()


def test_initialise_is_idempotent_and_pins_the_origin(empty_engine: Engine) -> None:
    migrate(empty_engine)
    store = SqlLogStore(empty_engine)
    assert store.initialize(ORIGIN).size == 0
    assert store.initialize(ORIGIN).origin == ORIGIN
    with pytest.raises(ConfigurationError, match="PACTLEDGER_ORIGIN"):
        store.initialize("another.example/log")
