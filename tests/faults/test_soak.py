"""A soak: 32 clients ingest while the API server and a projector worker are SIGKILLed at random;
at the end nothing is lost, duplicated or out of order, and the views are exactly the reference.

Real processes throughout: ``pactledger serve`` on PostgreSQL with
``PACTLEDGER_BROKER_URL`` set (it asks the workers to catch up after each commit), a
``pactledger worker`` consuming that queue and one of the test's own, and a ``pactledger
beat`` sending the periodic catch-up to the test's queue every second (Redis database 11 by
default, ``PACTLEDGER_TEST_SOAK_REDIS_URL``; the queue names are removed afterwards).

32 client threads send ``InferenceRouted`` entries, each with an idempotency key, mostly in
batches of 250 to ``POST /v1/events:batch`` with every tenth unit a single entry to ``POST
/v1/events``, each unit retried with the same keys until acknowledged. Every 1–4 s (seeded) the
server or the worker (its process group, pool included) is SIGKILLed and started again. At the
end, read straight from the database:

* zero lost: every acknowledged entry is at its acknowledged seq with its leaf hash;
* zero duplicated: each idempotency key once in the log, every batch at consecutive seqs;
* zero out of order: seqs gapless, each client's units in the order it had them committed, and
  ``pactledger verify`` (the CLI) recomputes every leaf, chain link and Merkle node;
* the views converge: every projector's position reaches the head without error, with one
  residency and one provenance row per request and chargeback's requests and token sums exactly
  those of the entries (each counted once); with ``PACTLEDGER_SOAK=1`` (or at most 20,000
  entries) every view also equals, row for row, the plain reference computation over the log
  (tests/projections/reference.py), which takes about as long as the ingest itself.

CI runs 200,000 entries, as the issue asks: measured on the shared 2-core machine under load,
about 190–200 s of ingest (17 server and about 40 worker kills; a restart takes 2.6–13 s under
load, and between restarts the ingest runs at about 1,500 entries/s with server, worker,
PostgreSQL and clients on the same two cores) and 207–225 s for the whole test.
``PACTLEDGER_SOAK=1`` runs 1,000,000 entries with the full reference comparison (20 min 49 s,
zero lost, duplicated or reordered); ``PACTLEDGER_SOAK_ENTRIES=N`` any other number. The
figures are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.app.dispatch import PROJECT_QUEUE
from ledger.app.projection import PROJECTORS
from ledger.compose import projectors_for
from ledger.store.engine import make_engine
from tests.domain import price_list, routed
from tests.faults.servers import ApiServer, Ingest, Unit, check_log, init_ledger
from tests.integration.test_workers import (
    Broker,
    Processes,
    _forget_queue,
    _require,
    assert_views_equal_reference,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SOAK = os.environ.get("PACTLEDGER_SOAK", "") not in ("", "0")
ENTRIES = int(os.environ.get("PACTLEDGER_SOAK_ENTRIES", 1_000_000 if SOAK else 200_000))
REDIS_URL = os.environ.get("PACTLEDGER_TEST_SOAK_REDIS_URL", "redis://127.0.0.1:6379/11")
TENANT = "acme"
CLIENTS, BATCH, SINGLE_EVERY = 32, 250, 10
KILL_EVERY_S = {"server": (4.0, 10.0), "worker": (2.0, 5.0)}  # after the last restart
DEADLINE_S = 3600.0 if SOAK else 600.0
CATCH_UP_TIMEOUT_S = 600.0 if SOAK else 180.0
REFERENCE_UP_TO = 20_000  # beyond, CI compares the views' exact totals; the soak, every row
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
REGIONS = ("eu-central-1", "us-east-1", "eu-west-1")


def entry(n: int) -> dict[str, Any]:
    """Entry ``n``: a routed request with its own id, spread over models, regions and days."""
    day = 1 + n % 28
    return {
        **routed(
            n,
            tenant=TENANT,
            model=MODELS[n % 3],
            occurred_at=f"2026-10-{day:02d}T{n % 24:02d}:00:00Z",
            region=REGIONS[n % 5 % 3],
            business_unit=f"bu-{n % 7}",
        ),
        "idempotency_key": f"soak-{n}",
    }


def _work() -> list[list[Unit]]:
    """Units for each client, about ENTRIES entries in all."""
    work: list[list[Unit]] = [[] for _ in range(CLIENTS)]
    n, u = 0, 0
    while n < ENTRIES:
        size = 1 if u % SINGLE_EVERY == SINGLE_EVERY - 1 else min(BATCH, ENTRIES - n)
        work[u % CLIENTS].append(Unit(n, size, batch=size > 1, build=entry))
        n, u = n + size, u + 1
    return work


@pytest.fixture
def broker() -> Iterator[Broker]:
    _require("redis", REDIS_URL)
    own = Broker("redis", REDIS_URL, f"pactledger.soak.{uuid.uuid4().hex[:12]}")
    yield own
    _forget_queue(own)
    _forget_queue(Broker("redis", REDIS_URL, PROJECT_QUEUE))  # the server's triggers


def test_soak_with_random_kills_loses_duplicates_and_reorders_nothing(
    postgres_url: str, tmp_path: Path, broker: Broker
) -> None:
    ledger = init_ledger(postgres_url, tmp_path / "home")
    with ledger.open() as opened:
        opened.append([price_list()])
    server = ApiServer(
        ledger,
        tmp_path,
        extra_env={"PACTLEDGER_BROKER_URL": broker.url, "PACTLEDGER_API_RATE_LIMIT": "0"},
    )
    processes = Processes(postgres_url, tmp_path)
    # The worker takes the server's triggers (default queue) and the beat's (the test's own).
    worker_queues = Broker(broker.kind, broker.url, f"{broker.queue},{PROJECT_QUEUE}")
    work = _work()
    total = sum(unit.size for units in work for unit in units)
    rng = random.Random(9)
    kills = {"server": 0, "worker": 0}

    began = time.monotonic()
    try:
        server.launch()
        worker = processes.start("worker", worker_queues, batch=2000)
        processes.start("beat", broker, every=1.0)
        key = ledger.ingest_key(TENANT)
        server.wait_ready()
        ingest = Ingest(server.url, key, work, deadline_s=DEADLINE_S)
        ingest.start()
        due = {name: time.monotonic() + rng.uniform(*KILL_EVERY_S[name]) for name in kills}
        while ingest.running():
            time.sleep(0.05)
            victim = min(due, key=due.__getitem__)
            if time.monotonic() < due[victim]:
                continue
            kills[victim] += 1
            if victim == "server":
                server.kill()
                server.start()  # clients retry meanwhile
            else:
                processes.kill(worker)
                worker = processes.start("worker", worker_queues, batch=2000)
            due[victim] = time.monotonic() + rng.uniform(*KILL_EVERY_S[victim])
        ingest.join()
        ingested_s = time.monotonic() - began
        checked = check_log(postgres_url, ingest, tenant=TENANT)
        size = checked.size
        caught_up_s = _wait_for_views(postgres_url, processes, size)
    finally:
        server.stop()
        processes.kill_all()

    assert checked.keyed == total == ENTRIES
    assert size == total + 1  # the price list, then every entry once
    assert kills["server"] >= 1
    assert kills["worker"] >= 1
    assert ingest.stats.transport_errors > 0
    report = ledger.verify()
    assert report["size"] == size
    compared = time.monotonic()
    _assert_views_count_each_entry_once(postgres_url, total)
    if SOAK or total <= REFERENCE_UP_TO:
        assert_views_equal_reference(postgres_url)
    print(
        f"\nsoak: {total:,} entries from {CLIENTS} clients in {ingested_s:.1f} s "
        f"({total / ingested_s:,.0f} entries/s acknowledged, kills included); "
        f"SIGKILLs: server {kills['server']}, worker {kills['worker']}; "
        f"{ingest.stats.requests:,} requests, {ingest.stats.transport_errors:,} transport "
        f"errors, {ingest.stats.retryable_status} retryable statuses, "
        f"{ingest.stats.duplicates:,} entries acknowledged by a retry; views at the head "
        f"{caught_up_s:.1f} s after the last acknowledgement; reference compared in "
        f"{time.monotonic() - compared:.1f} s; total {time.monotonic() - began:.1f} s"
    )


def _assert_views_count_each_entry_once(url: str, total: int) -> None:
    """The views' totals are exactly what entries 0 … total-1 make, each counted once: one
    residency and one provenance row per request, and chargeback's requests and tokens
    summing to the entries' (input tokens of entry n: 1000 + n; output: 200)."""
    with psycopg.connect(url) as conn:
        residency = conn.execute(
            "SELECT count(*), sum(served_count) FROM view_residency WHERE tenant = %s", (TENANT,)
        ).fetchone()
        provenance = conn.execute(
            "SELECT count(*) FROM view_provenance WHERE tenant = %s", (TENANT,)
        ).fetchone()
        chargeback = conn.execute(
            "SELECT model, sum(requests), sum(input_tokens), sum(output_tokens) "
            "FROM view_chargeback WHERE tenant = %s GROUP BY model ORDER BY model",
            (TENANT,),
        ).fetchall()
    assert residency == (total, total)
    assert provenance == (total,)
    expected = {
        model: (
            len(ns := range(index, total, len(MODELS))),
            sum(1000 + n for n in ns),
            200 * len(ns),
        )
        for index, model in enumerate(MODELS)
    }
    got = {model: (int(r), int(i), int(o)) for model, r, i, o in chargeback}
    assert got == expected


def _wait_for_views(url: str, processes: Processes, size: int) -> float:
    """Seconds until every projector stands at seq ``size - 1`` (fails after the timeout)."""
    engine = make_engine(url)
    projectors = projectors_for(engine)
    began = time.monotonic()
    try:
        while True:
            status = projectors.status()
            errors = {s.name: s.error for s in status if s.error}
            assert not errors, f"a projector stopped: {errors}"
            positions = {s.name: s.position for s in status}
            if positions == dict.fromkeys(PROJECTORS, size - 1):
                return time.monotonic() - began
            processes.check_alive()
            if time.monotonic() - began > CATCH_UP_TIMEOUT_S:
                pytest.fail(f"views not at seq {size - 1}: {positions}\n{processes.tail()}")
            time.sleep(0.2)
    finally:
        engine.dispose()
