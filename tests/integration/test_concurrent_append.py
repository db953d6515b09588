"""Eight processes append 1,000 entries each to one PostgreSQL ledger at the same time; the log
ends with 8,000 gapless entries, each writer's entries in its own order, and it verifies."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from itertools import pairwise
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.app.service import Ledger
from ledger.integrity.note import NoteSigner
from ledger.log.entry import EntryInput
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.conftest import ORIGIN, open_sql_store

WRITERS = 8
PER_WRITER = 1000
BATCH = 50

pytestmark = pytest.mark.postgres


def write(url: str, writer: int, start: Any) -> None:
    store = SqlLogStore(make_engine(url))
    start.wait()
    for first in range(0, PER_WRITER, BATCH):
        store.append(
            [
                EntryInput(
                    type="InferenceRouted",
                    stream=f"writer:{writer}",
                    tenant=f"tenant-{writer}",
                    payload={"writer": writer, "n": n},
                    idempotency_key=f"w{writer}-{n}",
                )
                for n in range(first, first + BATCH)
            ]
        )
    store.engine.dispose()


def test_eight_processes_append_gapless_and_the_log_verifies(postgres_url: str) -> None:
    store = open_sql_store(postgres_url)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    workers = [
        context.Process(target=write, args=(postgres_url, writer, start))
        for writer in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * WRITERS

    entries = list(store.iter_entries())
    assert [e.seq for e in entries] == list(range(WRITERS * PER_WRITER))
    assert Counter(e.tenant for e in entries) == {f"tenant-{w}": PER_WRITER for w in range(WRITERS)}
    for writer in range(WRITERS):
        versions = [e.stream_version for e in entries if e.stream == f"writer:{writer}"]
        assert versions == list(range(1, PER_WRITER + 1))
    switches = sum(1 for a, b in pairwise(entries) if a.tenant != b.tenant)
    assert switches > WRITERS - 1, "the writers ran one after another: the test proves nothing"

    ledger = Ledger(store=store, signer=NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))
    ledger.checkpoint()
    report = ledger.verify()
    assert report.size == WRITERS * PER_WRITER
    size = WRITERS * PER_WRITER
    assert report.nodes_checked == sum(size >> level for level in range(4, size.bit_length()))
    store.engine.dispose()
