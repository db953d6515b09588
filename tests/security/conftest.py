"""The API fixtures of tests/api (a fresh SQLite or PostgreSQL ledger per test, keys per role
and tenant) for the security tests."""

from tests.api.conftest import (
    anyio_backend,
    api,
    api_settings,
    api_template,
    postgres_api_template,
    sqlite_api_template,
)

__all__ = [
    "anyio_backend",
    "api",
    "api_settings",
    "api_template",
    "postgres_api_template",
    "sqlite_api_template",
]
