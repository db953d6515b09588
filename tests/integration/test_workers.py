"""Real Celery workers (``pactledger worker`` processes) project a PostgreSQL ledger through a
real broker, Redis and RabbitMQ alike, into exactly the reference views.

Proves, for each broker:

* 20,000 mixed entries appended through a Ledger whose after-append trigger is
  ``celery_trigger`` end up in views equal, row for row, to the plain reference computation
  (tests/projections/reference.py);
* a worker SIGKILLed (with its pool process) in the middle of projecting, small batches so that
  a catch-up takes many transactions, loses nothing and double-counts nothing: a new worker,
  triggered again, brings the views to exactly the reference;
* two workers consuming the same queue, each asked to catch up after every append, do not
  project any entry twice;
* the trigger, called from eight threads at once, publishes one message per call;

and, on Redis, that with the ledger's broker unreachable (so no trigger arrives) appends still
succeed and ``pactledger beat``'s periodic catch-up projects them.

Each test has its own database and its own queue (parallel runs do not take each other's
tasks); worker processes run in their own process group and are killed with it in teardown.
The brokers come from PACTLEDGER_TEST_REDIS_URL / PACTLEDGER_TEST_AMQP_URL (default: local);
when CI=true an unreachable broker fails the test, elsewhere it is skipped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from kombu import Connection

from ledger.app.dispatch import CeleryTrigger, celery_trigger
from ledger.app.projection import PROJECTORS, Projectors
from ledger.app.service import Ledger
from ledger.compose import projectors_for
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from ledger.store.views import SqlViewStore
from tests.conftest import IN_CI, open_sql_store
from tests.projections.reference import VIEWS, normalise, reference_views
from tests.projections.scenario import fill_ledger

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
BROKER_URLS = {
    "redis": os.environ.get("PACTLEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
    "rabbitmq": os.environ.get("PACTLEDGER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}
DEAD_BROKER = "redis://127.0.0.1:1/0"
MAIN_ENTRIES = 20_000
CATCH_UP_TIMEOUT_S = 90.0
THREADS, CALLS_PER_THREAD = 8, 50


@dataclass
class Broker:
    kind: str
    url: str
    queue: str  # this test's own: a worker of another test never takes its tasks
    triggers: list[CeleryTrigger] = field(default_factory=list)

    def trigger(self) -> CeleryTrigger:
        self.triggers.append(celery_trigger(self.url, queue=self.queue))
        return self.triggers[-1]

    def dead_trigger(self) -> CeleryTrigger:
        """A trigger whose broker is down: what the ledger has during an outage."""
        self.triggers.append(celery_trigger(DEAD_BROKER, queue=self.queue))
        return self.triggers[-1]


def _require(kind: str, url: str) -> None:
    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=0, timeout=3)
    except Exception as exc:  # whatever the transport raises: the broker is not there
        message = f"{kind} is not reachable at {url}: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (mandatory in CI)")
        pytest.skip(message)


def _forget_queue(broker: Broker) -> None:
    """Delete the test's queue, with what a killed worker left unacknowledged on Redis."""
    if broker.kind == "redis":
        client = redis.Redis.from_url(broker.url)
        for key in client.scan_iter(match=f"*{broker.queue}*"):
            client.delete(key)
        for tag, value in client.hgetall("unacked").items():
            if broker.queue in value.decode(errors="replace"):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.close()
        return
    with Connection(broker.url, connect_timeout=3) as conn:
        channel = conn.default_channel
        channel.queue_delete(broker.queue)
        channel.exchange_delete(broker.queue)


def _broker(kind: str) -> Iterator[Broker]:
    url = BROKER_URLS[kind]
    _require(kind, url)
    broker = Broker(kind, url, f"pactledger.test.{uuid.uuid4().hex[:12]}")
    yield broker
    for trigger in broker.triggers:
        trigger.close()
    _forget_queue(broker)


@pytest.fixture(params=sorted(BROKER_URLS))
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    yield from _broker(request.param)


@pytest.fixture
def redis_broker() -> Iterator[Broker]:
    yield from _broker("redis")


@dataclass
class Processes:
    """``pactledger worker`` / ``beat`` processes of one test, each in its own process group."""

    database_url: str
    logs: Path
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, command: str, broker: Broker, *, batch: int = 1000, every: float = 5) -> int:
        env = {
            **os.environ,
            "PACTLEDGER_DATABASE_URL": self.database_url,
            "PACTLEDGER_BROKER_URL": broker.url,
            "PACTLEDGER_PROJECT_BATCH": str(batch),
            "PACTLEDGER_PROJECT_EVERY_S": str(every),
        }
        queue = ["--queues", broker.queue] if command == "worker" else ["--queue", broker.queue]
        extra = ["--concurrency", "1"] if command == "worker" else ["--schedule"]
        if command == "beat":
            extra.append(str(self.logs / f"beat-{len(self.running)}.schedule"))
        log = (self.logs / f"{command}-{len(self.running)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", "from ledger.cli.main import app; app()", command,
             *queue, *extra, "--loglevel", "info"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.running.append(process)
        return len(self.running) - 1

    def kill(self, index: int) -> None:
        process = self.running[index]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool process at once
        process.wait(timeout=30)

    def kill_all(self) -> None:
        for index in range(len(self.running)):
            with contextlib.suppress(ProcessLookupError):  # the group is already gone
                self.kill(index)

    def check_alive(self) -> None:
        for index, process in enumerate(self.running):
            if process.returncode is None and process.poll() is not None:
                pytest.fail(f"process {index} exited with {process.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = []
        for path in sorted(self.logs.glob("*.log")):
            body = path.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {path.name}\n" + "\n".join(body))
        return "\n".join(text)


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


OpenLedger = Callable[[Callable[[], None] | None], Ledger]


@pytest.fixture
def open_ledger(ledger_url: str) -> Iterator[OpenLedger]:
    """Opens the test's ledger with an after-append trigger (None: nothing is triggered)."""
    engine = make_engine(ledger_url)
    yield lambda after_append: Ledger(store=SqlLogStore(engine), after_append=after_append)
    engine.dispose()


def positions(projectors: Projectors) -> dict[str, int]:
    return {status.name: status.position for status in projectors.status()}


def wait_for_catch_up(projectors: Projectors, processes: Processes, size: int) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while (now := positions(projectors)) != dict.fromkeys(PROJECTORS, size - 1):
        processes.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(
                f"views not caught up to seq {size - 1} in {CATCH_UP_TIMEOUT_S:.0f} s: {now}\n"
                + processes.tail()
            )
        time.sleep(0.1)
    assert all(status.error is None for status in projectors.status())


def assert_views_equal_reference(url: str) -> None:
    engine = make_engine(url)
    try:
        expected = reference_views(SqlLogStore(engine).iter_entries())
        views = SqlViewStore(engine)
        differ = {
            table: (len(got), len(want))
            for table in VIEWS
            if (got := normalise(table, views.rows(table)))
            != (want := normalise(table, expected[table]))
        }
        assert not differ, f"views differ from the reference (rows: got, want): {differ}"
    finally:
        engine.dispose()


def test_a_worker_projects_20000_mixed_entries_into_the_reference_views(
    broker: Broker,
    processes: Processes,
    projectors: Projectors,
    open_ledger: OpenLedger,
    ledger_url: str,
) -> None:
    processes.start("worker", broker)
    ledger = open_ledger(broker.trigger())
    fill_ledger(ledger, entries=MAIN_ENTRIES, seed=11)
    size = ledger.head().size
    assert size >= MAIN_ENTRIES

    wait_for_catch_up(projectors, processes, size)
    assert_views_equal_reference(ledger_url)


def test_a_worker_killed_mid_projection_loses_nothing_and_counts_nothing_twice(
    broker: Broker,
    processes: Processes,
    projectors: Projectors,
    open_ledger: OpenLedger,
    ledger_url: str,
) -> None:
    ledger = open_ledger(None)  # nothing projects until the worker is asked
    fill_ledger(ledger, entries=6000, seed=23)
    size = ledger.head().size
    first = processes.start("worker", broker, batch=100)
    broker.trigger()()

    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while max(positions(projectors).values()) < 0:  # the first batch has committed
        processes.check_alive()
        assert time.monotonic() < deadline, processes.tail()
        time.sleep(0.005)
    processes.kill(first)
    at_kill = positions(projectors)
    assert min(at_kill.values()) < size - 1, f"caught up before the kill: {at_kill}"

    processes.start("worker", broker, batch=100)
    broker.trigger()()
    wait_for_catch_up(projectors, processes, size)
    assert_views_equal_reference(ledger_url)


def test_two_workers_on_one_queue_project_each_entry_once(
    broker: Broker,
    processes: Processes,
    projectors: Projectors,
    open_ledger: OpenLedger,
    ledger_url: str,
) -> None:
    processes.start("worker", broker, batch=100)
    processes.start("worker", broker, batch=100)
    ledger = open_ledger(broker.trigger())
    fill_ledger(ledger, entries=4000, seed=5, batch=100)  # a request for work per 100 entries
    size = ledger.head().size

    wait_for_catch_up(projectors, processes, size)
    assert_views_equal_reference(ledger_url)


def test_the_trigger_publishes_every_call_from_many_threads(broker: Broker) -> None:
    trigger = broker.trigger()
    threads = [
        threading.Thread(target=lambda: [trigger() for _ in range(CALLS_PER_THREAD)])
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    deadline = time.monotonic() + 10
    with Connection(broker.url, connect_timeout=3) as conn:
        while (queued := _queued(conn, broker.queue)) < THREADS * CALLS_PER_THREAD:
            assert time.monotonic() < deadline, f"{queued} messages queued"
            time.sleep(0.05)
    assert queued == THREADS * CALLS_PER_THREAD


def _queued(conn: Connection, queue: str) -> int:
    declared = conn.default_channel.queue_declare(queue, passive=True)
    return int(declared.message_count)


def test_with_the_broker_down_appends_succeed_and_beat_catches_the_views_up(
    redis_broker: Broker,
    processes: Processes,
    projectors: Projectors,
    open_ledger: OpenLedger,
    ledger_url: str,
) -> None:
    ledger = open_ledger(redis_broker.dead_trigger())
    fill_ledger(ledger, entries=2000, seed=3)
    size = ledger.head().size
    assert positions(projectors) == dict.fromkeys(PROJECTORS, -1)

    processes.start("worker", redis_broker)
    processes.start("beat", redis_broker, every=0.5)
    wait_for_catch_up(projectors, processes, size)
    assert_views_equal_reference(ledger_url)
