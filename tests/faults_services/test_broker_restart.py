"""The broker restarts and a worker is SIGKILLed while the views are projected; the views still
converge to exactly the reference.

A ledger on PostgreSQL (a database of the test's own on the shared server) appends ENTRIES
mixed entries (tests/projections/scenario.py) in batches of BATCH through a ``Ledger`` whose
after-append trigger is ``celery_trigger`` on a PRIVATE Redis (tests/faults_services/private.py).
A ``pactledger worker`` (PACTLEDGER_PROJECT_BATCH=WORKER_BATCH, so a catch-up takes many
transactions) and a ``pactledger beat`` (periodic catch-up every BEAT_EVERY_S) run from the
start; the appends begin once the worker is connected. While they go on:

1. once a quarter of the entries are in and the worker is projecting, Redis is shut down
   (``SHUTDOWN NOSAVE``: queued and unacknowledged messages are lost) and, after another
   eighth, started again on the same port; triggers sent meanwhile fail and are swallowed
   (appends never fail);
2. once the worker has reconnected (its log says so) and the projectors have moved on, it is
   SIGKILLed with its pool
   process while it is behind the head (asserted), and a new worker is started;
3. the rest is appended.

Proves that the appends all succeed, that the projector positions reach the head (through the
periodic catch-up and the triggers that get through) with no projector in error, and that every
view equals, row for row, the reference computed in memory from the same log
(tests/projections/reference.py): nothing lost to the lost messages or the kill, nothing counted
twice by the worker that took over.

Reuses the worker/beat process handling of tests/integration/test_workers.py. PACTLEDGER_SOAK=1
appends SOAK_ENTRIES entries with three broker restarts and three kills.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.app.projection import Projectors
from ledger.app.service import Ledger
from ledger.compose import projectors_for
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.conftest import open_sql_store
from tests.faults_services.private import RedisServer, redis_server
from tests.integration.test_workers import (
    Broker,
    Processes,
    assert_views_equal_reference,
    positions,
)
from tests.projections.scenario import fill_ledger

pytestmark = pytest.mark.postgres

SOAK = os.environ.get("PACTLEDGER_SOAK", "") == "1"
ENTRIES = 60_000 if SOAK else 4_000
ROUNDS = 3 if SOAK else 1  # broker restarts, each followed by a worker kill
BATCH = 100  # entries per append, one trigger each
WORKER_BATCH = 100
BEAT_EVERY_S = 1.0
FAULT_TIMEOUT_S = 90.0
CATCH_UP_TIMEOUT_S = 900.0 if SOAK else 120.0


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def ledger_url(postgres_url: str) -> str:
    open_sql_store(postgres_url).engine.dispose()
    return postgres_url


@pytest.fixture
def processes(ledger_url: str, tmp_path: Path) -> Iterator[Processes]:
    running = Processes(ledger_url, tmp_path)
    yield running
    running.kill_all()


@pytest.fixture
def projectors(ledger_url: str) -> Iterator[Projectors]:
    engine = make_engine(ledger_url)
    yield projectors_for(engine)
    engine.dispose()


class Appender(threading.Thread):
    """Fills the ledger in batches, each append followed by the Celery trigger."""

    def __init__(self, url: str, broker: Broker) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.ledger = Ledger(store=SqlLogStore(self.engine), after_append=broker.trigger())
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            fill_ledger(self.ledger, entries=ENTRIES, seed=41, batch=BATCH)
        except BaseException as exc:  # reported by the test's thread
            self.error = exc

    def size(self) -> int:
        return self.ledger.head().size


def wait_until(
    condition: Callable[[], bool],
    what: str,
    processes: Processes,
    *,
    timeout: float = FAULT_TIMEOUT_S,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        processes.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}\n{processes.tail()}")
        time.sleep(0.02)


def wait_for_head(projectors: Projectors, processes: Processes, size: int) -> None:
    """Every projector at the last seq (and none in error)."""
    wait_until(
        lambda: set(positions(projectors).values()) == {size - 1},
        f"the projectors reach seq {size - 1}",
        processes,
        timeout=CATCH_UP_TIMEOUT_S,
    )
    assert all(status.error is None for status in projectors.status())


def connections(processes: Processes, index: int) -> int:
    """How often the worker ``index`` has (re)connected to the broker, from its log."""
    log = processes.logs / f"worker-{index}.log"
    return log.read_text(errors="replace").count("Connected to redis://")


def test_views_converge_to_the_reference_through_a_broker_restart_and_a_killed_worker(
    private_redis: RedisServer,
    processes: Processes,
    projectors: Projectors,
    ledger_url: str,
) -> None:
    broker = Broker("redis", private_redis.url, f"pactledger.test.{uuid.uuid4().hex[:12]}")
    worker = processes.start("worker", broker, batch=WORKER_BATCH)
    processes.start("beat", broker, every=BEAT_EVERY_S)
    wait_until(lambda: connections(processes, worker) >= 1, "the worker is connected", processes)
    appender = Appender(ledger_url, broker)
    behind_at_kill: list[int] = []
    try:
        appender.start()
        for round_ in range(ROUNDS):
            step = ENTRIES // (ROUNDS * 4)
            down_at = ENTRIES * round_ // ROUNDS + step
            moved = min(positions(projectors).values())
            wait_until(
                lambda at=down_at, moved=moved: (
                    appender.size() >= at and min(positions(projectors).values()) > moved
                ),
                f"{down_at} entries are in and the worker is projecting",
                processes,
            )
            private_redis.shutdown()
            up_at = down_at + step // 2
            wait_until(
                lambda at=up_at: appender.size() >= at or not appender.is_alive(),
                f"{up_at} entries",
                processes,
            )
            private_redis.start()

            wait_until(
                lambda worker=worker: connections(processes, worker) >= 2,
                "the worker reconnects to the restarted broker",
                processes,
            )
            moved = min(positions(projectors).values())
            wait_until(
                lambda moved=moved: min(positions(projectors).values()) > moved,
                "the projectors move on after the broker restart",
                processes,
            )
            processes.kill(worker)
            head = appender.size()
            behind_at_kill.append(head - 1 - min(positions(projectors).values()))
            worker = processes.start("worker", broker, batch=WORKER_BATCH)
        appender.join(timeout=FAULT_TIMEOUT_S * 2)
        assert not appender.is_alive(), "the appends did not finish"
        assert appender.error is None, repr(appender.error)
        size = appender.size()
    finally:
        for trigger in broker.triggers:
            trigger.close()
        appender.engine.dispose()
    assert size >= ENTRIES
    assert private_redis.starts == ROUNDS + 1
    assert all(behind > 0 for behind in behind_at_kill), f"caught up at a kill: {behind_at_kill}"

    wait_for_head(projectors, processes, size)
    assert_views_equal_reference(ledger_url)
    print(  # figures for docs/reliability.md (pytest -s)
        f"\nbroker restart: {size} entries, {ROUNDS} Redis restart(s), worker killed "
        f"{behind_at_kill} entries behind the head"
    )
