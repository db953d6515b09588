"""The HTTP API under load, on PostgreSQL, against the ``eventsourcing`` library as a peer.

What it measures, in one run (defaults in brackets):

1. ``single/pactledger`` — the real server (``pactledger serve``, uvicorn, ``--workers`` [1]) in
   a subprocess; 32 clients POST one ``InferenceRouted`` entry at a time to ``/v1/events``
   until ``--single`` [20,000] events are in. The server group-commits concurrent POSTs; a 201
   means the entry is durable. Events/s over the wall time of the run, p50/p99 of the
   per-request latency seen by the client.
2. ``single/eventsourcing`` — the peer: the ``eventsourcing`` library (``Application`` with its
   PostgreSQL persistence module, ``PostgresApplicationRecorder``) in another fresh database on
   the same server; 32 threads in this process (the issue asks for the peer as 32 threads),
   each ``app.save(aggregate)`` of one new aggregate (created with the same request fields) per
   transaction, the same number of events as row 1. Events/s, p50/p99 of ``save``.
3. ``batch/pactledger`` — ``--batches`` [100] POSTs of 1,000 entries to ``/v1/events:batch``
   from ``BATCH_CLIENTS`` (2) clients. Events/s, p50/p99 per batch.
4. ``provenance/pactledger`` — the ledger is grown to ``--ledger-size`` [1,000,000] entries by
   appending ``InferenceRouted``-shaped entries straight through ``SqlLogStore.append`` in
   batches of 1,000 (not timed, not through HTTP, no admission: the payloads are written as
   admission would store them, priced), a checkpoint is signed and ``ANALYZE`` runs (as
   autovacuum would soon after a bulk load). Then ONE client makes min(``--lookups``,
   ``SERIAL_LOOKUPS_MAX`` [2,000]) lookups ``GET /v1/provenance/{request_id}`` of random
   existing request ids, one at a time: each answer holds the request's entry with an
   inclusion proof against that checkpoint. p50/p99 latency. The provenance target is judged
   on this row: the issue's "p99 <= 20 ms at 1,000,000 entries" states no concurrency, so it
   is the service latency of a lookup, without queueing.
5. ``provenance-16/pactledger`` — then ``LOOKUP_CLIENTS`` (16) clients make ``--lookups``
   [5,000] such lookups. p50/p99 and lookups/s; reported, not judged (it is the setting of a
   later benchmarks issue). On 2 shared cores it is throughput-bound: a closed-loop client
   waits on average clients / throughput (Little's law), so its latency says how many lookups
   a second the machine serves rather than how long one takes.

The HTTP clients (rows 1, 3, 4, 5) are ``aiohttp`` (its version is in the report's machine
packages): one ``ClientSession`` with ``TCPConnector(limit=N)`` and N asyncio tasks in one
event loop (uvloop where importable), one task per client. Client i sends requests i, i + N, …
one at a time (closed loop: it waits for the answer before it sends the next) over a keep-alive
connection (the connector's limit of N gives each client in effect one connection of its own).
Clients, server and database share this machine's cores, so the clients must be cheap: httpx
clients on threads cost about 0.6 ms CPU per single POST (3.5 ms per lookup with 16 threads),
taken from the server being measured; the asyncio clients about 0.13 ms per POST.

Targets (judged and printed as met / NOT met; the script exits 0 either way):

* single-event ingest: ``single/pactledger`` events/s >= 2x ``single/eventsourcing``;
* provenance: ``provenance/pactledger`` (one client) p99 <= 20 ms at the ledger size (the issue
  asks for 1,000,000 entries; a smaller ``--ledger-size`` is judged too, and says so).

Request bodies are serialised before any timing; every client makes one untimed request (peer:
one untimed save) and the timed run starts once all of them are answered, so connections and
pools are warm. Before each timed row PostgreSQL is asked to ``CHECKPOINT`` so no row pays for
the writes of the one before. Each row also reports the CPU it cost per event (or lookup): the
server process's (from ``/proc``) and this process's (the HTTP clients; for the peer, the
library itself), which on a machine shared by clients, server and database says where the time
went. For the single row, the server's ``/metrics`` give the group commits: transactions and
entries per transaction.

Checks (a failed one aborts the run): every ingest answer is 201 and the head grew by exactly
the events sent; the peer's notification log holds exactly its events; every provenance answer
is 200, and a sample of them (every 50th of each row) is verified: the request id, the
checkpoint's tree size, and each inclusion proof recomputed to the checkpoint's root.

Guarantees: the script only creates databases named ``pactledger_bench_<12 hex digits>`` and
drops every one it created (``DROP DATABASE ... WITH (FORCE)``) before it exits, on success, on
an error, on Ctrl-C and on SIGTERM; the server process is terminated; the temporary directory
(signing key, server log) is removed. Nothing is created in the maintenance database.

Run it from the repository root::

    .venv/bin/python -m benchmarks.api                                  # full run
    .venv/bin/python -m benchmarks.api --single 2000 --batches 10 \\
        --ledger-size 20000 --lookups 500                              # quick check
    .venv/bin/python -m benchmarks.api --json --out api.json

The peer needs ``eventsourcing[postgres]`` (9.5) and the clients ``aiohttp`` (3.9 or later),
both in the ``bench`` extra. The PostgreSQL server comes from ``--postgres-url`` or
``PACTLEDGER_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, a
maintenance database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psycopg
from rich.console import Console
from rich.table import Table

from benchmarks.ingest import (
    Databases,
    add_report_arguments,
    emit,
    git_revision,
    machine_info,
    new_progress,
    positive_int,
    print_targets,
    row,
    start_run,
)
from benchmarks.peers import eventsourcing_application, routed_inference_class
from ledger.access import Role, create_key
from ledger.app.governance import publish_policies
from ledger.app.keys import create_signing_key, load_signer
from ledger.app.service import Ledger
from ledger.integrity.merkle import InclusionProof
from ledger.log.entry import utc_now
from ledger.policy import load_policy_set
from ledger.store.engine import make_engine, migrate
from ledger.store.keys import SqlKeyStore
from ledger.store.sql import SqlLogStore

ORIGIN = "bench.example/api"
SEED = 4242
SINGLE_CLIENTS = 32
BATCH_CLIENTS = 2
BATCH_SIZE = 1_000
FILL_BATCH = 1_000
LOOKUP_CLIENTS = 16
SERIAL_LOOKUPS_MAX = 2_000  # the one-client provenance row: min(--lookups, this) lookups
VERIFY_EVERY = 50  # provenance answers kept and verified after timing: every 50th
REQUEST_TIMEOUT_S = 120.0  # per request of a timed row (a 1,000-entry batch takes < 1 s)
SINGLE_TARGET_RATIO = 2.0
PROVENANCE_TARGET_MS = 20.0
TARGET_LEDGER_SIZE = 1_000_000
READY_TIMEOUT_S = 60.0

SINGLE_ROW = "single/pactledger"
PEER_ROW = "single/eventsourcing"
BATCH_ROW = "batch/pactledger"
PROVENANCE_ROW = "provenance/pactledger"  # one client: the provenance target is judged here
CONCURRENT_PROVENANCE_ROW = f"provenance-{LOOKUP_CLIENTS}/pactledger"  # reported, not judged

TENANTS = ("acme", "globex", "initech", "umbrella")
PRICE_LIST_ID = "bench-2026"
PRICE_FROM = "2026-01-01T00:00:00Z"
OCCURRED_FROM = datetime(2026, 3, 1, tzinfo=UTC)  # after the price list takes effect
RATES = {  # model: (tier, input, output, cached input) USD per million tokens
    "claude-opus-4-1": ("opus", "15", "75", "1.50"),
    "claude-sonnet-4-5": ("sonnet", "3", "15", "0.30"),
    "claude-haiku-4-5": ("haiku", "1", "5", "0.10"),
}
MODELS = tuple(RATES)
PLACES = (("aws", "eu-central-1"), ("aws", "us-east-1"), ("azure", "westeurope"))
BUSINESS_UNITS = ("research", "claims", "underwriting", "support")
APPLICATIONS = ("contract-review", "triage-bot", "claims-summary", "search")


# --- entries --------------------------------------------------------------------------------


def price_list() -> dict[str, Any]:
    """The PriceListPublished entry every routed entry of the run is priced by."""
    return {
        "type": "PriceListPublished",
        "stream": f"price-list:{PRICE_LIST_ID}",
        "tenant": "governance",
        "payload": {
            "price_list_id": PRICE_LIST_ID,
            "version": 1,
            "effective_from": PRICE_FROM,
            "prices": [
                {
                    "model": model,
                    "provider": provider,
                    "input_per_million": rate[1],
                    "output_per_million": rate[2],
                    "cached_input_per_million": rate[3],
                }
                for model, rate in RATES.items()
                for provider in ("aws", "azure", "gcp")
            ],
        },
    }


def _digest(row: str, index: int) -> bytes:
    return hashlib.blake2b(f"{SEED}:{row}:{index}".encode(), digest_size=16).digest()


def request_id(row: str, index: int) -> str:
    """The request id of entry ``index`` of ``row`` (``s`` single, ``b`` batch, ``f`` fill):
    uuid-shaped and spread over the key space like real ids, yet recomputable from the index,
    so a million of them need not be held in memory."""
    return str(uuid.UUID(bytes=_digest(row, index), version=4))


def routed_entry(row: str, index: int) -> dict[str, Any]:
    """A routed inference as a gateway sends it (no cost: the ledger prices it). Its numbers
    come from the same digest as its request id: cheap, deterministic, spread out."""
    digest = _digest(row, index)
    rid = str(uuid.UUID(bytes=digest, version=4))
    model = MODELS[index % len(MODELS)]
    provider, region = PLACES[index % len(PLACES)]
    occurred = OCCURRED_FROM + timedelta(milliseconds=index)
    return {
        "type": "InferenceRouted",
        "stream": f"request:{rid}",
        "tenant": TENANTS[index % len(TENANTS)],
        "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
        "payload": {
            "request_id": rid,
            "business_unit": BUSINESS_UNITS[index % len(BUSINESS_UNITS)],
            "cost_center": f"cc-{4400 + index % 16}",
            "application": APPLICATIONS[index % len(APPLICATIONS)],
            "model_tier": RATES[model][0],
            "model": model,
            "provider": provider,
            "region": region,
            "input_tokens": 40 + int.from_bytes(digest[0:2]) % 11_961,
            "output_tokens": 5 + int.from_bytes(digest[2:4]) % 2_496,
            "latency_ms": 80 + int.from_bytes(digest[4:6]) % 8_921,
        },
    }


def priced_entry(row: str, index: int) -> dict[str, Any]:
    """A routed entry with the fields admission would fill in (cost, price list, defaults), for
    the bulk fill that bypasses admission: the stored payload looks like an admitted one."""
    entry = routed_entry(row, index)
    payload = entry["payload"]
    _, rate_in, rate_out, _ = RATES[payload["model"]]
    cost = (
        payload["input_tokens"] * Decimal(rate_in) + payload["output_tokens"] * Decimal(rate_out)
    ).scaleb(-6)
    payload.update(
        cached_tokens=0,
        status="ok",
        price_list_id=PRICE_LIST_ID,
        price_list_version=1,
        cost=format(cost.normalize(), "f"),
        currency="USD",
    )
    return entry


# --- measuring ------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Timing:
    """One timed row: ``count`` events (or lookups) in ``seconds`` of wall time."""

    count: int
    seconds: float
    latencies: list[float]  # seconds, one per request (or per save)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    def ms(self, fraction: float) -> float:
        return 1000 * percentile(sorted(self.latencies), fraction)


def run_threads(
    threads: int,
    setup: Callable[[int], Any],
    work: Callable[[int, Any, threading.Event], list[float]],
    teardown: Callable[[Any], None],
) -> tuple[float, list[float]]:
    """Run ``work(index, state, stop)`` on ``threads`` threads that start together; ``setup``
    (untimed, per thread, e.g. a client and one warm-up request) runs first. Returns the wall
    time from the common start to the last thread's end, and every latency recorded. The first
    error in any thread is raised here, after the others were told to stop."""
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def body(index: int) -> None:
        state = None
        try:
            state = setup(index)
            barrier.wait()
            latencies[index] = work(index, state, stop)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            barrier.abort()
        finally:
            if state is not None:
                teardown(state)

    pool = [
        threading.Thread(target=body, args=(i,), name=f"bench-{i}", daemon=True)
        for i in range(threads)
    ]
    for thread in pool:
        thread.start()
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        began = time.perf_counter()
        for thread in pool:
            thread.join()
        seconds = time.perf_counter() - began
    except BaseException:  # Ctrl-C, SIGTERM: stop the clients, then unwind
        stop.set()
        barrier.abort()
        for thread in pool:
            thread.join(timeout=10)
        raise
    if errors:
        raise errors[0]
    return seconds, [value for chunk in latencies for value in chunk]


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request of a row, its body already serialised (nothing is encoded while timed)."""

    method: str
    path: str
    body: bytes | None = None


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (``uvicorn[standard]`` brings it), else None:
    asyncio's own. The clients share the cores with the server; a cheaper loop leaves it more."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def http_client() -> str:
    """The HTTP clients in words, for the report."""
    factory = event_loop_factory()
    loop = "asyncio's loop" if factory is None else f"uvloop {metadata.version('uvloop')}"
    return f"aiohttp {aiohttp.__version__}, one ClientSession, one asyncio task a client, {loop}"


async def run_all(coroutines: Iterable[Coroutine[Any, Any, object]]) -> None:
    """Run the coroutines as tasks of one ``asyncio.TaskGroup``: the first to fail cancels the
    others, and its exception (not the group around it) is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failure:
        raise failure.exceptions[0] from None


def run_clients(
    base_url: str,
    headers: dict[str, str],
    clients: int,
    requests: Sequence[Request],
    *,
    warm: Sequence[Request],
    expect_status: int,
    what: str,
    keep: Callable[[int], bool] = lambda _: False,
    started: Callable[[], None] | None = None,
) -> tuple[float, list[float], dict[int, bytes]]:
    """Send ``requests`` from ``clients`` closed-loop HTTP clients and time them.

    The clients are asyncio tasks sharing one ``aiohttp.ClientSession`` whose connector is
    limited to ``clients`` keep-alive connections, so each client in effect holds one. Client
    i first sends ``warm[i]`` (untimed; all warm-ups run together, which opens the
    connections), then, once every warm-up is answered, ``started()`` is called (the place to
    read the server's state and start CPU meters; it may block, nothing else runs) and the timed
    run begins: client i sends requests i, i + clients, … one at a time, each after the answer
    to the one before. Every answer, warm-ups included, must have ``expect_status``; the first
    that does not raises a ``RuntimeError`` naming ``what``, the request, the status and the
    start of the body, after the other clients were cancelled.

    Returns the wall seconds from the common start to the last answer, every request's latency
    in seconds (send to body read), and the bodies of the requests whose index ``keep`` accepts.
    """
    if len(warm) != clients:
        raise ValueError(f"{what}: {len(warm)} warm-up requests for {clients} clients")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    kept: dict[int, bytes] = {}

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(
            base_url,
            headers=headers,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:

            async def send(request: Request, name: str) -> tuple[float, bytes]:
                began = time.perf_counter()
                async with session.request(
                    request.method, request.path, data=request.body
                ) as response:
                    body = await response.read()
                seconds = time.perf_counter() - began
                if response.status != expect_status:
                    raise RuntimeError(
                        f"{what}: {name} ({request.method} {request.path}): HTTP "
                        f"{response.status}, expected {expect_status}: "
                        f"{body[:500].decode(errors='replace')}"
                    )
                return seconds, body

            async def client(index: int) -> None:
                times = latencies[index]
                for position in range(index, len(requests), clients):
                    seconds, body = await send(requests[position], f"request {position}")
                    times.append(seconds)
                    if keep(position):
                        kept[position] = body

            await run_all(send(request, f"warm-up request {i}") for i, request in enumerate(warm))
            if started is not None:
                started()
            began = time.perf_counter()
            await run_all(client(index) for index in range(clients))
            return time.perf_counter() - began

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        seconds = runner.run(run())
    return seconds, [value for chunk in latencies for value in chunk], kept


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and its children (Linux ``/proc``), or
    None where that cannot be read."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()  # after "pid (comm)": state, ppid, ...
        this = int(stat.parent.name)
        if this == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
            found = found or this == pid
    return total if found else None


class CpuMeter:
    """CPU seconds spent by the server (and its worker processes) and by this process (the
    clients, or the peer) during one row: on a shared machine, where the time goes."""

    def __init__(self, server: Server | None) -> None:
        self.server = server
        self.server_began = process_cpu_seconds(server.process.pid) if server else None
        self.client_began = time.process_time()

    def per_op(self, count: int) -> dict[str, float | None]:
        client = time.process_time() - self.client_began
        server = None
        if self.server is not None and self.server_began is not None:
            now = process_cpu_seconds(self.server.process.pid)
            server = None if now is None else now - self.server_began
        return {
            "server_cpu_ms_per_op": None if server is None else round(1000 * server / count, 3),
            "client_cpu_ms_per_op": round(1000 * client / count, 3),
        }


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``pactledger serve`` in a subprocess of its own session, output to a log file."""

    def __init__(
        self,
        database_url: str,
        signing_key: Path,
        workers: int,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "PACTLEDGER_DATABASE_URL": database_url,
            "PACTLEDGER_SIGNING_KEY": str(signing_key),
            "PACTLEDGER_ORIGIN": ORIGIN,
            # The API as deployed at scale: projection runs elsewhere (Celery workers),
            # measured by benchmarks.projectors; here it would compete for the two cores.
            "PACTLEDGER_BROKER_URL": "",
            "PACTLEDGER_PROJECT_IN_PROCESS": "false",
            **(env or {}),
        }
        command = [sys.executable, "-c", "from ledger.cli.main import app; app()"]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, "serve", "--port", str(self.port), "--workers", str(workers)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
            )

    def wait_ready(self) -> int:
        """Wait for /readyz; returns the tree size it reports."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    size: int = response.json()["tree_size"]
                    return size
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def problems(self) -> int:
        """Lines of the server log that report an error (tracebacks, 5xx)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(
            1 for line in text.splitlines() if "Traceback" in line or line.startswith("ERROR")
        )

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples of the server (one process: with several workers, one of
        them answers)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        # uvicorn's worker processes, should any outlive their supervisor
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def group_commits(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Transactions and entries per transaction of the single-POST path between two scrapes."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    label = '{path="single"}'
    transactions = delta(f"pactledger_append_batch_entries_count{label}")
    entries = delta(f"pactledger_append_batch_entries_sum{label}")
    seconds = delta(f"pactledger_append_seconds_sum{label}")
    buckets: dict[str, int] = {}
    previous = 0.0
    prefix = "pactledger_append_batch_entries_bucket{"
    for name in after:
        if name.startswith(prefix) and 'path="single"' in name:
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            cumulative = delta(name)
            if cumulative - previous > 0:
                buckets[f"<={bound}"] = int(cumulative - previous)
            previous = cumulative
    return {
        "transactions": int(transactions),
        "entries": int(entries),
        "mean_entries_per_transaction": entries / transactions if transactions else None,
        "mean_commit_ms": 1000 * seconds / transactions if transactions else None,
        "entries_per_transaction_histogram": buckets,
    }


# --- rows -----------------------------------------------------------------------------------


def tree_size(server: Server) -> int:
    size: int = httpx.get(f"{server.url}/readyz", timeout=10).json()["tree_size"]
    return size


def run_single(server: Server, key: str, count: int, console: Console) -> Timing:
    post = "/v1/events"
    requests = [Request("POST", post, orjson.dumps(routed_entry("s", i))) for i in range(count)]
    warm = [
        Request("POST", post, orjson.dumps(routed_entry("sw", i))) for i in range(SINGLE_CLIENTS)
    ]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    state: dict[str, Any] = {}

    def started() -> None:  # after the warm-up POSTs: they are neither counted nor metered
        state.update(size=tree_size(server), metrics=server.metrics(), cpu=CpuMeter(server))

    console.print(
        f"{SINGLE_ROW}: {count:,} single POSTs from {SINGLE_CLIENTS} clients …", highlight=False
    )
    seconds, latencies, _ = run_clients(
        server.url,
        headers,
        SINGLE_CLIENTS,
        requests,
        warm=warm,
        expect_status=201,
        what=SINGLE_ROW,
        started=started,
    )
    used = state["cpu"].per_op(count)
    after = server.metrics()
    grown = tree_size(server) - state["size"]
    if grown != count:
        raise RuntimeError(f"{SINGLE_ROW}: the head grew by {grown}, not {count}")
    commits = group_commits(state["metrics"], after)
    return Timing(count, seconds, latencies, {"group_commit": commits, **used})


def run_batches(server: Server, key: str, batches: int, console: Console) -> Timing:
    post = "/v1/events:batch"
    requests = [
        Request(
            "POST",
            post,
            orjson.dumps(
                {"events": [routed_entry("b", b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]}
            ),
        )
        for b in range(batches)
    ]
    # a one-entry batch each: the same path, warmed, without adding much to the ledger
    warm = [
        Request("POST", post, orjson.dumps({"events": [routed_entry("bw", i)]}))
        for i in range(BATCH_CLIENTS)
    ]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    state: dict[str, Any] = {}

    def started() -> None:
        state.update(size=tree_size(server), cpu=CpuMeter(server))

    console.print(
        f"{BATCH_ROW}: {batches:,} batches of {BATCH_SIZE:,} from {BATCH_CLIENTS} clients …",
        highlight=False,
    )
    seconds, latencies, _ = run_clients(
        server.url,
        headers,
        BATCH_CLIENTS,
        requests,
        warm=warm,
        expect_status=201,
        what=BATCH_ROW,
        started=started,
    )
    count = batches * BATCH_SIZE
    used = state["cpu"].per_op(count)
    grown = tree_size(server) - state["size"]
    if grown != count:
        raise RuntimeError(f"{BATCH_ROW}: the head grew by {grown}, not {count}")
    return Timing(count, seconds, latencies, {"batch_size": BATCH_SIZE, **used})


def run_peer(url: str, count: int, console: Console) -> Timing:
    """``count`` aggregates saved by the ``eventsourcing`` library, one per transaction."""
    # one connection per thread, no waiting
    app = eventsourcing_application(url, pool_size=SINGLE_CLIENTS)
    RoutedInference = routed_inference_class()  # noqa: N806 - a class
    entries = [routed_entry("e", i) for i in range(count)]
    try:

        def setup(index: int) -> int:
            warm = routed_entry("ew", index)
            app.save(
                RoutedInference(
                    warm["tenant"], warm["stream"], warm["occurred_at"], warm["payload"]
                )
            )
            return index

        def work(index: int, _: int, stop: threading.Event) -> list[float]:
            times = []
            for entry in entries[index::SINGLE_CLIENTS]:
                if stop.is_set():
                    break
                began = time.perf_counter()
                app.save(
                    RoutedInference(
                        entry["tenant"], entry["stream"], entry["occurred_at"], entry["payload"]
                    )
                )
                times.append(time.perf_counter() - began)
            return times

        console.print(
            f"{PEER_ROW}: {count:,} saves from {SINGLE_CLIENTS} threads …", highlight=False
        )
        cpu = CpuMeter(None)
        seconds, latencies = run_threads(SINGLE_CLIENTS, setup, work, lambda _: None)
        used = cpu.per_op(count)
        recorded = app.recorder.max_notification_id()
        if recorded != count + SINGLE_CLIENTS:
            raise RuntimeError(f"{PEER_ROW}: {recorded} events recorded, not {count} + warm-up")
    finally:
        app.close()
    return Timing(
        count,
        seconds,
        latencies,
        {
            "recorder": type(app.recorder).__name__,
            "pool_size": SINGLE_CLIENTS,
            "version": metadata.version("eventsourcing"),
            **used,
        },
    )


def fill(store: SqlLogStore, target: int, console: Console) -> dict[str, Any]:
    """Append priced routed entries in batches until the log holds ``target`` entries."""
    start = store.head().size
    missing = max(0, target - start)
    began = time.perf_counter()
    with new_progress(console) as progress:
        task = progress.add_task("fill", total=missing, rate="")
        done = 0
        while done < missing:
            size = min(FILL_BATCH, missing - done)
            store.append([priced_entry("f", done + i) for i in range(size)])
            done += size
            rate = f"{done / (time.perf_counter() - began):,.0f}/s"
            progress.update(task, advance=size, rate=rate)
    seconds = time.perf_counter() - began
    size = store.head().size
    if size != max(target, start):
        raise RuntimeError(f"fill: the log holds {size} entries, not {target}")
    return {"filled": missing, "seconds": round(seconds, 1), "size": size}


def run_provenance(
    server: Server,
    key: str,
    *,
    name: str,
    clients: int,
    lookups: int,
    ids: Callable[[int], str],
    population: int,
    expected_size: int,
    console: Console,
) -> Timing:
    """``lookups`` provenance lookups of random existing request ids from ``clients`` clients;
    every ``VERIFY_EVERY``-th answer is verified after the timing."""
    rng = random.Random(f"{SEED}:{name}")  # each row its own ids, the same in every run
    wanted = [ids(rng.randrange(population)) for _ in range(lookups)]
    warm = [ids(rng.randrange(population)) for _ in range(clients)]
    meters: list[CpuMeter] = []
    console.print(
        f"{name}: {lookups:,} lookups from {clients} client{'s' if clients > 1 else ''} …",
        highlight=False,
    )
    seconds, latencies, kept = run_clients(
        server.url,
        {"Authorization": f"Bearer {key}"},
        clients,
        [Request("GET", f"/v1/provenance/{rid}") for rid in wanted],
        warm=[Request("GET", f"/v1/provenance/{rid}") for rid in warm],
        expect_status=200,
        what=name,
        keep=lambda position: position % VERIFY_EVERY == 0,
        started=lambda: meters.append(CpuMeter(server)),
    )
    used = meters[0].per_op(lookups)
    proofs = 0
    for position, content in kept.items():
        rid = wanted[position]
        body = orjson.loads(content)
        checkpoint = body["checkpoint"]
        if body["request_id"] != rid or not body["entries"] or checkpoint is None:
            raise RuntimeError(f"{name}: bad answer for {rid}: {content[:300]!r}")
        if checkpoint["tree_size"] != expected_size:
            raise RuntimeError(
                f"{name}: checkpoint size {checkpoint['tree_size']}, not {expected_size}"
            )
        for entry in body["entries"]:
            proof = InclusionProof.from_json(entry["inclusion_proof"])
            proof.verify()
            root, leaf = proof.root_hash.hex(), proof.leaf_hash.hex()
            if root != checkpoint["root_hash"] or leaf != entry["leaf_hash"]:
                raise RuntimeError(f"{name}: the proof for {rid} does not match")
            proofs += 1
    return Timing(
        lookups,
        seconds,
        latencies,
        {
            "ledger_size": expected_size,
            "clients": clients,
            "answers_verified": len(kept),
            "proofs_verified": proofs,
            **used,
        },
    )


# --- setup ----------------------------------------------------------------------------------


def prepare_ledger(url: str) -> tuple[SqlLogStore, str, str]:
    """Migrate and initialise the ledger, publish the shipped policies and a price list, and
    create an ingest and a viewer key for the bench tenants."""
    engine = make_engine(url)
    migrate(engine)
    store = SqlLogStore(engine)
    store.initialize(ORIGIN)
    ledger = Ledger(store=store)
    publish_policies(ledger, load_policy_set())
    ledger.append([price_list()])
    keys = SqlKeyStore(engine)
    tokens = []
    for role in (Role.INGEST, Role.VIEWER):
        token, _ = create_key(
            keys,
            role=role,
            tenants=list(TENANTS),
            all_tenants=False,
            name=f"benchmark {role.value}",
            now=utc_now(),
        )
        tokens.append(token)
    return store, tokens[0], tokens[1]


def analyze(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


# --- report ---------------------------------------------------------------------------------


def latency_keys(timing: Timing, prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}p50_ms": round(timing.ms(0.50), 2),
        f"{prefix}p99_ms": round(timing.ms(0.99), 2),
        f"{prefix}max_ms": round(timing.ms(1.0), 2),
    }


def cpu_keys(timing: Timing) -> dict[str, Any]:
    return {key: timing.extra.get(key) for key in ("server_cpu_ms_per_op", "client_cpu_ms_per_op")}


def render(report: dict[str, Any], console: Console) -> None:
    params = report["parameters"]
    table = Table(title=f"pactledger HTTP API on PostgreSQL ({params['workers']} server worker(s))")
    for column, justify in (
        ("row", "left"),
        ("scale", "left"),
        ("rate", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("vs peer", "right"),
        ("CPU ms/op server, client", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in report["results"]:
        rate = result.get("events_per_s", result.get("lookups_per_s"))
        unit = "lookups/s" if "lookups_per_s" in result else "events/s"
        table.add_row(
            result["name"],
            result["scale"],
            f"{rate:,.0f} {unit}",
            f"{result['p50_ms']:.1f}",
            f"{result['p99_ms']:.1f}",
            "-" if result["ratio"] is None else f"{result['ratio']:.2f}x",
            ", ".join(
                "-" if result[key] is None else f"{result[key]:.2f}"
                for key in ("server_cpu_ms_per_op", "client_cpu_ms_per_op")
            ),
        )
    console.print(table)
    commits = report["group_commit"]
    if commits is not None and commits["transactions"]:
        histogram = commits["entries_per_transaction_histogram"]
        console.print(
            f"  {SINGLE_ROW}: {commits['entries']:,} entries in {commits['transactions']:,} "
            f"group commits, mean {commits['mean_entries_per_transaction']:.1f} entries and "
            f"{commits['mean_commit_ms']:.1f} ms per transaction; entries per transaction: "
            + ", ".join(f"{k}: {v}" for k, v in histogram.items()),
            highlight=False,
            soft_wrap=True,
        )
    fill_info = report["fill"]
    console.print(
        f"  {PROVENANCE_ROW}, {CONCURRENT_PROVENANCE_ROW}: ledger of {fill_info['size']:,} "
        f"entries ({fill_info['filled']:,} bulk-appended in {fill_info['seconds']} s, "
        f"checkpoint signed in {fill_info['checkpoint_seconds']} s); "
        f"{report['provenance_checks']}",
        highlight=False,
        soft_wrap=True,
    )
    print_targets(console, report["targets"])
    machine = report["machine"]
    server = machine["postgresql"] or {}
    busy = machine["cpu_busy_before_start"]
    console.print(
        f"Machine: {machine['cpu_count']} cores ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, {machine['python']}, PostgreSQL "
        f"{server.get('server_version', '-')} (fsync={server.get('fsync', '-')}, "
        f"synchronous_commit={server.get('synchronous_commit', '-')}, "
        f"shared_buffers={server.get('shared_buffers', '-')}); clients, server and database on "
        f"this one machine; clients: {params['http_client']}; "
        f"CPUs {'?' if busy is None else f'{busy:.0%}'} busy before the run; "
        f"load average {machine['load_average_start']} at start, "
        f"{machine['load_average_end']} at end",
        highlight=False,
        soft_wrap=True,
    )
    if report["server_log_problems"]:
        console.print(
            f"[yellow]the server log had {report['server_log_problems']} error lines[/yellow]"
        )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.api",
        description="The HTTP API on PostgreSQL: single and batch ingest (vs the eventsourcing "
        "library) and provenance lookups on a large ledger.",
    )
    parser.add_argument(
        "--single", type=positive_int, default=20_000, help="single-event POSTs (default 20000)"
    )
    parser.add_argument(
        "--batches",
        type=positive_int,
        default=100,
        help=f"{BATCH_SIZE}-entry batch POSTs (default 100)",
    )
    parser.add_argument(
        "--ledger-size",
        type=positive_int,
        default=TARGET_LEDGER_SIZE,
        help="entries in the ledger for the provenance lookups (default 1000000)",
    )
    parser.add_argument(
        "--lookups", type=positive_int, default=5_000, help="provenance lookups (default 5000)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="server worker processes (default 1)"
    )
    add_report_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    serial_lookups = min(args.lookups, SERIAL_LOOKUPS_MAX)
    out, err, load_at_start, busy = start_run(args.json, wide=True)
    databases = Databases(args.postgres_url, err)
    server: Server | None = None
    store: SqlLogStore | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="pactledger-bench-api-") as directory:
            try:
                settings = databases.server_settings()
                ledger_url = databases.create()
                store, ingest_key, viewer_key = prepare_ledger(ledger_url)
                signing_key = Path(directory) / "signing-key.pem"
                create_signing_key(signing_key)
                server = Server(
                    ledger_url, signing_key, args.workers, Path(directory) / "server.log"
                )
                server.wait_ready()

                databases.settle()
                single = run_single(server, ingest_key, args.single, err)
                peer_url = databases.create()
                databases.settle()
                peer = run_peer(peer_url, args.single, err)
                databases.settle()
                batch = run_batches(server, ingest_key, args.batches, err)

                err.print(f"growing the ledger to {args.ledger_size:,} entries …")
                fill_info = fill(store, args.ledger_size, err)
                began = time.perf_counter()
                signer = load_signer(signing_key, ORIGIN)
                record = Ledger(store=store, signer=signer).checkpoint()
                fill_info["checkpoint_seconds"] = round(time.perf_counter() - began, 2)
                analyze(ledger_url)
                databases.settle()
                size = record.tree_size
                singles, batched = args.single, args.batches * BATCH_SIZE
                filled = fill_info["filled"]

                def ids(index: int) -> str:
                    if index < singles:
                        return request_id("s", index)
                    if index < singles + batched:
                        return request_id("b", index - singles)
                    return request_id("f", index - singles - batched)

                population = singles + batched + filled
                # one client first: the judged row, on caches no other row of lookups warmed
                provenance = run_provenance(
                    server,
                    viewer_key,
                    name=PROVENANCE_ROW,
                    clients=1,
                    lookups=serial_lookups,
                    ids=ids,
                    population=population,
                    expected_size=size,
                    console=err,
                )
                concurrent = run_provenance(
                    server,
                    viewer_key,
                    name=CONCURRENT_PROVENANCE_ROW,
                    clients=LOOKUP_CLIENTS,
                    lookups=args.lookups,
                    ids=ids,
                    population=population,
                    expected_size=size,
                    console=err,
                )
                problems = server.problems()
            finally:
                if server is not None:
                    server.stop()
                if store is not None:
                    store.engine.dispose()
    finally:
        databases.drop_all()

    es_version = peer.extra["version"]
    peer_name = f"eventsourcing {es_version} ({peer.extra['recorder']}, {SINGLE_CLIENTS} threads)"
    single_scale = f"{args.single:,} events, {SINGLE_CLIENTS} clients"
    results = [
        row(
            SINGLE_ROW,
            single_scale,
            "events/s",
            single.rate,
            peer=peer_name,
            peer_value=peer.rate,
            events_per_s=round(single.rate, 1),
            **latency_keys(single),
            peer_events_per_s=round(peer.rate, 1),
            **latency_keys(peer, "peer_"),
            **cpu_keys(single),
        ),
        row(
            PEER_ROW,
            single_scale.replace("clients", "threads"),
            "events/s",
            None,
            peer=peer_name,
            peer_value=peer.rate,
            events_per_s=round(peer.rate, 1),
            **latency_keys(peer),
            **cpu_keys(peer),
        ),
        row(
            BATCH_ROW,
            f"{args.batches:,} x {BATCH_SIZE:,} events, {BATCH_CLIENTS} clients",
            "events/s",
            batch.rate,
            events_per_s=round(batch.rate, 1),
            **latency_keys(batch),
            **cpu_keys(batch),
        ),
        row(
            PROVENANCE_ROW,
            f"{serial_lookups:,} lookups on {size:,} entries, 1 client",
            "ms (p99)",
            provenance.ms(0.99),
            lookups_per_s=round(provenance.rate, 1),
            clients=1,
            **latency_keys(provenance),
            **cpu_keys(provenance),
        ),
        row(
            CONCURRENT_PROVENANCE_ROW,
            f"{args.lookups:,} lookups on {size:,} entries, {LOOKUP_CLIENTS} clients",
            "ms (p99)",
            concurrent.ms(0.99),
            lookups_per_s=round(concurrent.rate, 1),
            clients=LOOKUP_CLIENTS,
            **latency_keys(concurrent),
            **cpu_keys(concurrent),
        ),
    ]
    ratio = single.rate / peer.rate
    p99 = provenance.ms(0.99)
    targets = [
        {
            "description": f"{SINGLE_ROW} events/s >= {SINGLE_TARGET_RATIO:g}x {PEER_ROW}",
            "value": round(ratio, 2),
            "threshold": SINGLE_TARGET_RATIO,
            "met": ratio >= SINGLE_TARGET_RATIO,
        },
        {
            "description": f"{PROVENANCE_ROW} p99 <= {PROVENANCE_TARGET_MS:g} ms at "
            f"{TARGET_LEDGER_SIZE:,} entries (one client, lookups one at a time)",
            "value": round(p99, 2),
            "threshold": PROVENANCE_TARGET_MS,
            "met": p99 <= PROVENANCE_TARGET_MS,
            "note": None
            if size >= TARGET_LEDGER_SIZE
            else f"measured at {size:,} entries, not {TARGET_LEDGER_SIZE:,}",
        },
    ]
    machine = machine_info(settings, load_at_start, busy)
    machine["memory_gib"] = memory_gib()
    for package in ("eventsourcing", "aiohttp", "uvloop", "httpx", "uvicorn", "fastapi"):
        try:
            machine["packages"][package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            machine["packages"][package] = None
    report: dict[str, Any] = {
        "benchmark": "pactledger api",
        "timestamp": datetime.now(UTC).isoformat(),
        "git_revision": git_revision(),
        "parameters": {
            "single": args.single,
            "batches": args.batches,
            "batch_size": BATCH_SIZE,
            "ledger_size": args.ledger_size,
            "lookups": args.lookups,
            "workers": args.workers,
            "single_clients": SINGLE_CLIENTS,
            "batch_clients": BATCH_CLIENTS,
            "serial_lookups": serial_lookups,
            "lookup_clients": LOOKUP_CLIENTS,
            "http_client": http_client(),
            "seed": SEED,
        },
        "machine": machine,
        "results": results,
        "targets": targets,
        "group_commit": single.extra["group_commit"] if args.workers == 1 else None,
        "fill": fill_info,
        "provenance_checks": (
            f"{provenance.extra['answers_verified'] + concurrent.extra['answers_verified']} "
            "answers and "
            f"{provenance.extra['proofs_verified'] + concurrent.extra['proofs_verified']} "
            "inclusion proofs verified"
        ),
        "server_log_problems": problems,
    }
    emit(report, args, render, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
