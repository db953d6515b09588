"""The ``api`` fixture: the real ASGI app (lifespan, group committer and all) over a fresh
SQLite or PostgreSQL ledger, driven with httpx, with the shipped policies and a price list
published and one API key per role and tenant scope (``api.keys[name]``).

Async tests: mark them ``pytest.mark.anyio`` (the anyio plugin runs them on asyncio)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
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
from ledger.app.keys import load_signer
from ledger.app.service import Ledger
from ledger.log.entry import utc_now
from ledger.policy import load_policy_set
from ledger.settings import Settings
from ledger.store.keys import SqlKeyStore
from tests.conftest import ORIGIN, create_database, database_url, drop_database, open_sql_store
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


@dataclass(frozen=True)
class Template:
    """A ledger set up once per session (policies, price list, keys) that tests copy."""

    url: str
    keys: dict[str, str]


def _prepare(url: str) -> dict[str, str]:
    store = open_sql_store(url)  # migrated and initialised
    ledger = Ledger(store=store)
    publish_policies(ledger, load_policy_set())
    ledger.append([price_list()])
    keys = SqlKeyStore(store.engine)
    tokens = {
        name: create_key(
            keys, role=role, tenants=tenants, all_tenants=not tenants, name=name, now=utc_now()
        )[0]
        for name, (role, tenants) in KEYS.items()
    }
    store.engine.dispose()
    return tokens


@pytest.fixture(scope="session")
def sqlite_api_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    url = f"sqlite:///{tmp_path_factory.mktemp('api-template')}/ledger.db"
    return Template(url, _prepare(url))


@pytest.fixture(scope="session")
def postgres_api_template(postgres_template: str) -> Iterator[Template]:
    name = create_database(template=postgres_template)
    url = database_url(name)
    yield Template(name, _prepare(url))
    drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_template(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Template]:
    """A fresh copy of the prepared ledger, this test's own."""
    if request.param == "sqlite":
        template: Template = request.getfixturevalue("sqlite_api_template")
        copy = tmp_path / "ledger.db"
        shutil.copyfile(template.url.removeprefix("sqlite:///"), copy)
        yield Template(f"sqlite:///{copy}", template.keys)
        return
    template = request.getfixturevalue("postgres_api_template")
    name = create_database(template=template.url)
    yield Template(database_url(name), template.keys)
    drop_database(name)


@pytest.fixture
def api_settings(api_template: Template, tmp_path: Path) -> Settings:
    key_path = tmp_path / "signing-key.pem"
    key_path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    key_path.chmod(0o600)  # load_signer refuses a key others can read
    return Settings(database_url=api_template.url, signing_key=key_path, origin=ORIGIN)


@pytest.fixture
async def api(api_settings: Settings, api_template: Template) -> AsyncIterator[Api]:
    app = create_app(api_settings)
    found: Services = app.state.services
    found.ledger.signer = load_signer(api_settings.signing_key, ORIGIN)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pactledger.test") as client,
    ):
        yield Api(client, dict(api_template.keys), found)


@asynccontextmanager
async def serve(settings: Settings, *, publish: bool = True) -> AsyncIterator[Api]:
    """An app of a test's own over ``settings``, with the keys of :data:`KEYS` created (and the
    shipped policies and a price list published unless ``publish`` is false)."""
    app = create_app(settings)
    found: Services = app.state.services
    if publish:
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
