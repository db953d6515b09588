"""The ``api`` fixture: the real ASGI app (lifespan, group committer and all) over a fresh
SQLite or PostgreSQL ledger, driven with httpx, with the shipped policies and a price list
published and one API key per role and tenant scope (``api.keys[name]``).

Async tests: mark them ``pytest.mark.anyio`` (the anyio plugin runs them on asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from api.app import create_app
from api.services import Services
from ledger.access import Role, create_key
from ledger.app.governance import publish_policies
from ledger.log.entry import utc_now
from ledger.policy import load_policy_set
from ledger.settings import Settings
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import price_list

# name: (role, tenants); an empty tenant list means all tenants
KEYS: dict[str, tuple[Role, list[str]]] = {
    "admin": (Role.ADMIN, []),
    "ingest-acme": (Role.INGEST, ["acme"]),
    "ingest-globex": (Role.INGEST, ["globex"]),
    "viewer-acme": (Role.VIEWER, ["acme"]),
    "viewer-globex": (Role.VIEWER, ["globex"]),
    "auditor-all": (Role.AUDITOR, []),
    "auditor-acme": (Role.AUDITOR, ["acme"]),
}


@dataclass
class Api:
    client: httpx.AsyncClient
    keys: dict[str, str]
    services: Services

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    async def post(self, path: str, key: str, json: Any, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, json=json, headers=self.auth(key), **kwargs)

    async def get(self, path: str, key: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(key), **kwargs)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    open_sql_store(url).engine.dispose()  # migrated and initialised
    key_path = tmp_path / "signing-key.pem"
    key_path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    return Settings(database_url=url, signing_key=key_path, origin=ORIGIN)


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[Api]:
    app = create_app(api_settings)
    found: Services = app.state.services
    publish_policies(found.ledger, load_policy_set())
    found.ledger.append([price_list()])
    keys = {
        name: create_key(
            found.keys,
            role=role,
            tenants=tenants,
            all_tenants=not tenants,
            name=name,
            now=utc_now(),
        )[0]
        for name, (role, tenants) in KEYS.items()
    }
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pactledger.test") as client,
    ):
        yield Api(client, keys, found)
