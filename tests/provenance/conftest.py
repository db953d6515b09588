"""Fixtures shared with the provenance tests: the CLI's (``env``: settings in a temporary
folder; ``ready``: an initialised ledger with a fixed signing key) from tests/cli and the API's
(``api``: the real app over a fresh ledger with one key per role and tenant) from tests/api."""

from __future__ import annotations

from tests.api.conftest import (
    anyio_backend,
    api,
    api_settings,
    api_template,
    postgres_api_template,
    sqlite_api_template,
)
from tests.cli.test_cli import env, ready

__all__ = [
    "anyio_backend",
    "api",
    "api_settings",
    "api_template",
    "env",
    "postgres_api_template",
    "ready",
    "sqlite_api_template",
]
