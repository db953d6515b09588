"""Security basics (issue 9 item 4; docs/security.md).

Proves:

* API keys are stored only as the SHA-256 of their secret: no row or byte of the database holds
  the secret, and authentication compares digests with ``hmac.compare_digest`` (recorded by
  monkeypatching it), for a good key and a forged one;
* ``pactledger init`` creates the signing key and the key-encryption key with mode 0600 even
  under a permissive umask, and both ``load_signer`` and ``load_kek`` refuse a file readable by
  group or others with a message saying ``chmod 600`` and no key material;
* per-key rate limits: the token bucket refills at its rate up to its burst and is off at 0;
  through the API (SQLite and PostgreSQL, the lean ``POST /v1/events`` path, the batch route
  and a GET route) a key over a low limit gets 429 ``rate_limited`` with ``Retry-After``, writes
  nothing, and another key is not affected;
* the PostgreSQL application role of :mod:`ledger.store.roles`: connected as that role, appends,
  checkpoints, projection, key revocation and erasure work, while ``UPDATE entries``,
  ``DELETE FROM entries`` and ``TRUNCATE entries`` are refused with *permission denied* (not
  by the append-only trigger, which the role never reaches).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

import ledger.access
from api.app import create_app
from api.rate_limit import RateLimiter
from api.services import Services
from ledger.access import Role, authenticate, create_key, revoke_key
from ledger.app.keys import create_kek, create_signing_key, load_kek, load_signer
from ledger.app.personal_data import erase_subject, reveal
from ledger.app.service import Ledger
from ledger.cli.main import app as cli
from ledger.compose import projectors_for
from ledger.errors import ConfigurationError, ValidationError
from ledger.log.entry import utc_now
from ledger.privacy import Vault
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.keys import SqlKeyStore
from ledger.store.roles import app_role_sql, create_app_role, table_grants
from ledger.store.sql import SqlLogStore
from ledger.store.subject_keys import SqlSubjectKeys
from tests.api.conftest import Template
from tests.conftest import ADMIN_URL, ORIGIN, create_database, database_url, drop_database
from tests.conftest import open_sql_store as open_store
from tests.domain import price_list, routed

ALICE = {"end_user_id": "alice-4711", "end_user_email": "alice@example.eu"}


# --- keys stored hashed, compared in constant time ---------------------------------------------


def test_api_keys_are_stored_only_as_sha256_of_the_secret(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    keys = SqlKeyStore(store.engine)
    token, record = create_key(
        keys, role=Role.INGEST, tenants=["acme"], all_tenants=False, name="gw", now=utc_now()
    )
    secret = token[len("plk_") + 12 + 1 :]  # the secret may itself hold "_"
    assert len(secret) == 43
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM api_keys").all()
    store.engine.dispose()
    assert len(rows) == 1
    assert secret not in repr(rows)
    assert bytes(rows[0].secret_hash) == hashlib.sha256(secret.encode()).digest()
    files = [tmp_path / name for name in os.listdir(tmp_path) if name.startswith("ledger.db")]
    database = b"".join(f.read_bytes() for f in files)
    assert secret.encode() not in database
    assert token.encode() not in database
    assert record.secret_hash == hashlib.sha256(secret.encode()).digest()


def test_authentication_compares_digests_with_compare_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    keys = SqlKeyStore(store.engine)
    token, _ = create_key(
        keys, role=Role.ADMIN, tenants=[], all_tenants=True, name=None, now=utc_now()
    )
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ledger.access.hmac, "compare_digest", recording)
    assert authenticate(keys, token) is not None
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert authenticate(keys, forged) is None
    store.engine.dispose()
    assert len(calls) == 2
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests, never the secret itself


# --- key files ---------------------------------------------------------------------------------


def test_init_creates_both_key_files_0600_under_a_permissive_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing, kek = tmp_path / "keys" / "sig.pem", tmp_path / "keys" / "kek.key"
    monkeypatch.setenv("PACTLEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("PACTLEDGER_SIGNING_KEY", str(signing))
    monkeypatch.setenv("PACTLEDGER_KEK", str(kek))
    monkeypatch.setenv("PACTLEDGER_ORIGIN", ORIGIN)
    previous = os.umask(0)
    try:
        result = CliRunner().invoke(cli, ["init"])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert signing.stat().st_mode & 0o777 == 0o600
    assert kek.stat().st_mode & 0o777 == 0o600
    assert signing.read_bytes() not in result.output.encode()
    assert kek.read_bytes().strip() not in result.output.encode()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610])
def test_load_signer_refuses_a_key_readable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "sig.pem"
    assert create_signing_key(path)
    pem = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(ConfigurationError) as caught:
        load_signer(path, ORIGIN)
    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert f"{mode:o}" in message
    assert "PRIVATE KEY" not in message
    assert pem.decode() not in message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_load_kek_refuses_a_key_readable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.key"
    assert create_kek(path)
    secret = path.read_text().strip()
    path.chmod(mode)
    with pytest.raises(ConfigurationError) as caught:
        load_kek(path)
    assert f"chmod 600 {path}" in str(caught.value)
    assert secret not in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_files_are_accepted(tmp_path: Path, mode: int) -> None:
    signing, kek = tmp_path / "sig.pem", tmp_path / "kek.key"
    create_signing_key(signing)
    create_kek(kek)
    signing.chmod(mode)
    kek.chmod(mode)
    assert load_signer(signing, ORIGIN) is not None
    assert len(load_kek(kek)) == 32


# --- rate limits -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = FakeClock()
    assert RateLimiter(0.01).burst == 1  # at least one request
    limiter = RateLimiter(10, clock=clock)  # burst 20
    assert [limiter.take("a") for _ in range(20)] == [None] * 20
    wait = limiter.take("a")
    assert wait is not None
    assert 0 < wait <= 0.1
    assert limiter.take("b") is None  # another key has its own bucket
    clock.now += 0.5  # five tokens back
    assert [limiter.take("a") for _ in range(5)] == [None] * 5
    assert limiter.take("a") is not None
    clock.now += 3600  # never more than the burst
    assert sum(limiter.take("a") is None for _ in range(25)) == 20


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(0)
    assert not limiter.enabled
    assert all(limiter.take("a") is None for _ in range(10_000))
    with pytest.raises(ValueError, match="rate must be"):
        RateLimiter(-1)


def _limited_settings(api_settings: Settings) -> Settings:
    # one request per 1,000 s, a burst of one: the test cannot outrun the refill however slow
    return api_settings.model_copy(update={"api_rate_limit": 0.001})


def _assert_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "error": {
            "status": 429,
            "code": "rate_limited",
            "message": "too many requests for this API key; retry after the Retry-After seconds",
        }
    }
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.anyio
async def test_a_key_over_its_rate_gets_429_and_another_key_is_not_affected(
    api_settings: Settings, api_template: Template
) -> None:
    app = create_app(_limited_settings(api_settings))
    found: Services = app.state.services
    tokens = api_template.keys
    auth = {name: {"Authorization": f"Bearer {tokens[name]}"} for name in tokens}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pactledger.test") as client,
    ):
        size = found.ledger.head().size
        # the first request takes the route (the key is not remembered yet), the second the lean
        # path, which refuses it
        ok = await client.post("/v1/events", json=routed(1), headers=auth["ingest-acme"])
        assert ok.status_code == 201, ok.text
        refused = await client.post("/v1/events", json=routed(3), headers=auth["ingest-acme"])
        _assert_429(refused)
        batch = {"events": [routed(4), routed(5)]}
        _assert_429(await client.post("/v1/events:batch", json=batch, headers=auth["ingest-acme"]))
        assert found.ledger.head().size == size + 1  # nothing of the refused ones written
        # another key of the same tenant and role still writes
        other = await client.post("/v1/events", json=routed(6), headers=auth["admin"])
        assert other.status_code == 201, other.text
        # reads are limited per key too
        read = await client.get("/v1/audit/inferences", headers=auth["viewer-acme"])
        assert read.status_code == 200, read.text
        _assert_429(await client.get("/v1/audit/inferences", headers=auth["viewer-acme"]))
        assert (await client.get("/v1/audit/inferences", headers=auth["auditor-acme"])).is_success
        # an invalid key is a 401, never a 429, and does not use anyone's bucket
        forged = {"Authorization": "Bearer plk_000000000000_" + "A" * 43}
        assert (await client.get("/v1/audit/inferences", headers=forged)).status_code == 401
        assert found.ledger.head().size == size + 2


# --- the application role ----------------------------------------------------------------------


def test_the_role_sql_grants_no_update_or_delete_on_the_log() -> None:
    grants = table_grants()
    assert grants["entries"] == ("SELECT", "INSERT")
    assert grants["merkle_nodes"] == ("SELECT", "INSERT")
    assert grants["checkpoints"] == ("SELECT", "INSERT")
    statements = app_role_sql("pactledger_app")
    on_entries = [s for s in statements if '"entries"' in s]
    assert on_entries == ['GRANT SELECT, INSERT ON "public"."entries" TO "pactledger_app"']
    for bad in ('x"; DROP TABLE entries; --', "Robert'); DROP", "1abc", "", "a" * 64):
        with pytest.raises(ValidationError):
            app_role_sql(bad)


@pytest.fixture
def role_database(postgres_template: str) -> Iterator[tuple[str, str]]:
    """A migrated, initialised PostgreSQL ledger and an application role (owner URL, role URL)."""
    name = create_database(template=postgres_template)
    owner_url = database_url(name)
    role = f"pactledger_app_{uuid.uuid4().hex[:10]}"
    store = open_store(owner_url)
    create_app_role(store.engine, role)
    store.engine.dispose()
    base = ADMIN_URL.split("://", 1)[1].split("@", 1)[1].rsplit("/", 1)[0]
    yield owner_url, f"postgresql://{role}@{base}/{name}"
    drop_database(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.postgres
def test_the_application_role_appends_but_cannot_change_the_log(
    role_database: tuple[str, str], tmp_path: Path
) -> None:
    _, role_url = role_database
    engine = make_engine(role_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == role_url.split("@")[0][13:]
    store = SqlLogStore(engine)
    signing = tmp_path / "sig.pem"
    signing.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    signing.chmod(0o600)
    keys = SqlSubjectKeys(engine)
    ledger = Ledger(
        store=store,
        signer=load_signer(signing, ORIGIN),
        vault=Vault(bytes(range(32)), keys, lambda: datetime.now(UTC)),
    )
    ledger.append([price_list(), routed(1, **ALICE), routed(2)])  # appends
    checkpoint = ledger.checkpoint()  # checkpoints
    assert checkpoint.tree_size == 3
    results = projectors_for(engine).catch_up()  # projection
    assert results
    assert all(r.position == 2 for r in results)
    api_keys = SqlKeyStore(engine)  # keys: create and revoke
    _, record = create_key(
        api_keys, role=Role.VIEWER, tenants=["acme"], all_tenants=False, name=None, now=utc_now()
    )
    assert revoke_key(api_keys, record.key_id, now=utc_now()).revoked_at is not None
    erased = erase_subject(ledger, "alice-4711", request_ref="DSR-1", retention_days=183)
    assert erased["erased"]  # erasure
    (entry,) = [e for e in store.iter_entries() if e.seq == 1]
    assert reveal(ledger, [entry]) == [dict.fromkeys(ALICE, "[erased]")]
    assert ledger.head().size == 4
    ledger.verify()
    engine.dispose()

    with psycopg.connect(role_url, autocommit=True) as conn:
        for statement in (
            "UPDATE entries SET tenant = 'mallory' WHERE seq = 1",
            "DELETE FROM entries WHERE seq = 3",
            "TRUNCATE entries",
            "UPDATE merkle_nodes SET hash = hash",
            "DELETE FROM checkpoints",
            "DROP TRIGGER IF EXISTS entries_append_only ON entries",
            "ALTER TABLE entries DISABLE TRIGGER ALL",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(statement)
            text = str(refused.value)
            assert "permission denied" in text or "must be owner" in text, text
            assert "append-only" not in text
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (4,)
