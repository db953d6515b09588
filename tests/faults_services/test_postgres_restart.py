"""PostgreSQL crashes and comes back during concurrent ingest through the real API app.

The app (``api.app.create_app``, lifespan, group committer and lean ingest path, driven
in-process through ``httpx.ASGITransport``) serves a ledger on a PRIVATE PostgreSQL cluster
(tests/faults_services/private.py). CLIENTS concurrent clients send every one of their entries
with an idempotency key, half one entry per ``POST /v1/events`` (``Idempotency-Key`` header),
half ``POST /v1/events:batch`` of BATCH entries (keys ``<header>:<index>``). Once a third of the
entries are acknowledged the cluster is crashed (``pg_ctl stop -m immediate``) and held down
until the clients have been refused at least MIN_REFUSALS times and ``/readyz`` has said not
ready; then it is started again (WAL recovery) and the clients retry their unacknowledged keys
until every one is acknowledged.

Proves that while the database is down every refusal is a 503 with the api/errors.py body
(``{"error": {"status": 503, "code": "unavailable", …}}``, no driver details) and a
``Retry-After`` header, never a 500 or another status; ``/readyz`` answers 503 while it is
down and 200 after; and that afterwards each idempotency key is in the log exactly once, the
seqs are gapless, and ``Ledger.verify`` passes.

Clients wait RETRY_PAUSE_S between tries instead of Retry-After's 2 s, to keep the test short.
PACTLEDGER_SOAK=1 runs SOAK_ROUNDS crashes over SOAK_ENTRIES entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ledger.app.service import Ledger
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.api.conftest import Api, serve
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import routed
from tests.faults_services.private import PostgresCluster, postgres_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

SOAK = os.environ.get("PACTLEDGER_SOAK", "") == "1"
CLIENTS = 16
ENTRIES = 40_000 if SOAK else 1_600  # in all, an equal share per client
ROUNDS = 5 if SOAK else 1  # crashes
BATCH = 10
MIN_REFUSALS = 48  # 503s seen before the cluster comes back
RETRY_PAUSE_S = 0.02
OUTAGE_TIMEOUT_S = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster() as started:
        yield started


@pytest.fixture
def settings(cluster: PostgresCluster, tmp_path: Path) -> Settings:
    url = cluster.create_database(f"pactledger_{uuid.uuid4().hex[:8]}")
    open_sql_store(url).engine.dispose()  # migrated and initialised
    key = tmp_path / "signing-key.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    key.chmod(0o600)
    return Settings(database_url=url, signing_key=key, origin=ORIGIN)


@dataclass
class Tally:
    acknowledged: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refused_paths: Counter[str] = field(default_factory=Counter)
    refusals: int = 0  # 503s
    duplicates: int = 0  # acknowledged as an idempotent retry (200)
    bad: list[str] = field(default_factory=list)  # anything but 200/201/503, or a bad 503


def check_refusal(response: httpx.Response, tally: Tally) -> None:
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if (
        not isinstance(error, dict)
        or error.get("status") != 503
        or error.get("code") != "unavailable"
        or not error.get("message")
        or "psycopg" in str(error.get("message"))
        or not response.headers.get("Retry-After", "").isdigit()
    ):
        tally.bad.append(f"503 {response.headers} {response.text[:300]}")
    tally.refusals += 1


async def post_until_acknowledged(
    api: Api, path: str, json: Any, key: str, tally: Tally, count: int
) -> None:
    headers = {**api.auth("ingest-acme"), "Idempotency-Key": key}
    while True:
        response = await api.client.post(path, json=json, headers=headers)
        tally.statuses[response.status_code] += 1
        if response.status_code in (200, 201):
            tally.acknowledged += count
            if response.status_code == 200:
                tally.duplicates += count
            return
        if response.status_code == 503:
            check_refusal(response, tally)
            tally.refused_paths[path] += 1
        else:
            tally.bad.append(f"{response.status_code} {response.text[:300]}")
            return
        await asyncio.sleep(RETRY_PAUSE_S)


async def client(api: Api, number: int, share: int, tally: Tally) -> list[str]:
    """Send ``share`` entries; return the idempotency keys they carry in the log."""
    first = number * share
    keys: list[str] = []
    if number % 2 == 0:
        for n in range(first, first + share):
            keys.append(f"pg-{n}")
            await post_until_acknowledged(api, "/v1/events", routed(n), keys[-1], tally, 1)
        return keys
    for start in range(first, first + share, BATCH):
        size = min(BATCH, first + share - start)
        body = {"events": [routed(n) for n in range(start, start + size)]}
        header = f"pg-batch-{start}"
        keys += [f"{header}:{index}" for index in range(size)]
        await post_until_acknowledged(api, "/v1/events:batch", body, header, tally, size)
    return keys


async def crash_and_recover(
    api: Api, cluster: PostgresCluster, tally: Tally, *, at: int, readiness: list[int]
) -> None:
    """Crash the cluster once ``at`` entries are acknowledged; start it after enough 503s."""
    while tally.acknowledged < at:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(cluster.crash)
    seen = tally.refusals
    deadline = asyncio.get_running_loop().time() + OUTAGE_TIMEOUT_S
    while tally.refusals - seen < MIN_REFUSALS:
        assert asyncio.get_running_loop().time() < deadline, "no request was refused"
        await asyncio.sleep(0.01)
    ready = await api.client.get("/readyz")
    readiness.append(ready.status_code)
    await asyncio.to_thread(cluster.start)
    ready = await api.client.get("/readyz")
    readiness.append(ready.status_code)


async def test_a_crashed_postgres_answers_503_with_retry_after_and_retries_land_once(
    settings: Settings, cluster: PostgresCluster
) -> None:
    tally, readiness = Tally(), []
    share = ENTRIES // CLIENTS
    async with serve(settings) as api:
        before = api.services.ledger.head().size  # policies and the price list
        clients = [asyncio.create_task(client(api, n, share, tally)) for n in range(CLIENTS)]
        for round_ in range(ROUNDS):
            at = ENTRIES * (round_ + 1) // (ROUNDS + 2)
            await crash_and_recover(api, cluster, tally, at=at, readiness=readiness)
        keys = [key for keys in await asyncio.gather(*clients) for key in keys]
        ready = await api.client.get("/readyz")

    assert not tally.bad, f"{len(tally.bad)} bad answers, first: {tally.bad[:3]}"
    assert set(tally.statuses) <= {200, 201, 503}, tally.statuses
    assert tally.refusals >= MIN_REFUSALS * ROUNDS
    assert set(tally.refused_paths) == {"/v1/events", "/v1/events:batch"}, tally.refused_paths
    assert tally.acknowledged == ENTRIES
    assert readiness == [503, 200] * ROUNDS
    assert ready.status_code == 200

    engine = make_engine(settings.database_url)
    try:
        store = SqlLogStore(engine)
        stored = list(store.iter_entries())
        assert [entry.seq for entry in stored] == list(range(len(stored)))  # gapless
        assert len(stored) == before + ENTRIES
        logged = Counter(e.idempotency_key for e in stored[before:])
        assert set(logged) == set(keys), "keys missing from, or foreign to, the log"
        twice = {key: n for key, n in logged.items() if n > 1}
        assert not twice, f"appended more than once: {list(twice)[:5]}"
        report = Ledger(store=store).verify()
        assert report.size == len(stored)
    finally:
        engine.dispose()
    print(  # figures for docs/reliability.md (pytest -s)
        f"\npostgres restart: {ENTRIES} entries, {ROUNDS} crash(es), statuses "
        f"{dict(tally.statuses)} (503s: {dict(tally.refused_paths)}), "
        f"{tally.duplicates} acknowledged as duplicates"
    )
