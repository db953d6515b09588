"""SIGKILL the API server during concurrent ingest, restart it on the same database: nothing
acknowledged is lost, nothing is appended twice, no batch is cut in half, the log verifies.

24 client threads each send 30 units in order, alternating one entry (``POST /v1/events``,
group-committed) and a batch of 2–25 (``POST /v1/events:batch``), every entry with an
idempotency key. While they run the ``pactledger serve`` process is SIGKILLed (its whole
process group) twice, at a third and at two thirds of the entries acknowledged, and started
again on the same port and database; meanwhile the clients retry every unit they hold no
acknowledgement for, with the same keys and content, until one comes. Then, read straight from
the database: seqs are 0..size-1; each key is there once; every acknowledged entry is at its
acknowledged seq with its acknowledged leaf hash and the content its client sent; each batch's
entries sit at consecutive seqs; each client's units are in the order it sent them; and
``pactledger verify`` (the CLI, over that database, with a checkpoint signed mid-run) passes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.domain import price_list, routed
from tests.faults.servers import ApiServer, Ingest, Unit, check_log, init_ledger

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TENANT = "acme"
CLIENTS, UNITS = 24, 30
KILLS = 2
DEADLINE_S = 240.0


def entry(n: int) -> dict[str, Any]:
    return {**routed(n, tenant=TENANT), "idempotency_key": f"kill-{n}"}


def _work() -> tuple[list[list[Unit]], int]:
    work: list[list[Unit]] = []
    n = 0
    for client in range(CLIENTS):
        units = []
        for u in range(UNITS):
            size = 1 if u % 2 == 0 else 2 + (client * 7 + u) % 24
            units.append(Unit(n, size, batch=size > 1, build=entry))
            n += size
        work.append(units)
    return work, n


def test_acknowledged_entries_survive_sigkill_and_retries_land_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    ledger = init_ledger(postgres_url, tmp_path / "home")
    with ledger.open() as opened:
        opened.append([price_list()])  # seq 0: InferenceRouted entries are priced from it
    server = ApiServer(ledger, tmp_path)
    work, total = _work()
    server.launch()  # starts while the key is made
    try:
        key = ledger.ingest_key(TENANT)
        server.wait_ready()
        ingest = Ingest(server.url, key, work, deadline_s=DEADLINE_S)
        ingest.start()
        note = tmp_path / "mid-run.note"
        for kill in range(1, KILLS + 1):
            while ingest.acked_entries < total * kill // (KILLS + 1):
                assert ingest.running(), "the clients finished before the kill"
                time.sleep(0.01)
            if kill == 2:  # a checkpoint signed mid-run: verify holds the log against it
                with ledger.open() as opened:
                    note.write_text(opened.checkpoint().note)
            server.kill()
            server.start()
        ingest.join()
    finally:
        server.stop()

    def same_content(key: str, entry_bytes: bytes) -> None:
        logged, wanted = json.loads(entry_bytes), entry(int(key.removeprefix("kill-")))
        for name in ("type", "stream", "tenant", "idempotency_key"):
            assert logged[name] == wanted[name], (key, name)
        assert logged["payload"].items() >= wanted["payload"].items(), key

    checked = check_log(postgres_url, ingest, tenant=TENANT, content=same_content)
    assert checked.keyed == total
    assert checked.size == total + 1  # the price list and every entry once, nothing else
    assert server.kills == KILLS
    assert ingest.stats.transport_errors > 0  # the clients did see the server die
    report = ledger.verify(note)
    assert report["size"] == checked.size
    assert report["checkpoints_checked"] >= 1
    print(
        f"\napi-kill: {total} entries from {CLIENTS} clients, {KILLS} SIGKILLs; "
        f"{ingest.stats.requests} requests, {ingest.stats.transport_errors} transport errors, "
        f"{ingest.stats.retryable_status} retryable statuses, {ingest.stats.duplicates} "
        "entries acknowledged by a retry (committed, first answer lost)"
    )
