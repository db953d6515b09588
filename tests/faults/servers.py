"""Real processes for the fault tests, and the clients that ingest through them.

* :class:`LedgerHome` — a PostgreSQL ledger set up the way an operator does it, with the real
  CLI (``pactledger init``, ``keys create``, ``append``, ``checkpoint``, ``verify`` …) in child
  processes, each with the same ``PACTLEDGER_*`` environment.
* :class:`ApiServer` — a ``pactledger serve`` process on a port of its own, in its own process
  group, that a test SIGKILLs and restarts on the same port and database.
* ``pactledger worker`` / ``beat`` processes come from ``tests/integration/test_workers.py``'s
  :class:`Processes` (imported, not copied).
* :class:`Ingest` — client threads, each sending its own units (one entry to ``/v1/events`` or
  a batch to ``/v1/events:batch``, every entry with an idempotency key) in order, retrying a
  unit with the same keys until it is acknowledged, and recording every acknowledgement.
* :func:`read_log` and :func:`check_log` — what the log holds, read straight from the
  database, checked against what was acknowledged: every acknowledged entry at its seq with its
  leaf hash, each key once, no partial batch, seqs gapless and in each client's commit order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ledger.app.keys import load_signer
from ledger.app.service import Ledger
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.conftest import ORIGIN
from tests.integration.test_api_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from ledger.cli.main import app; app()"]
READY_TIMEOUT_S = 60.0
RETRYABLE = {429, 502, 503, 504}


@dataclass
class LedgerHome:
    """A PostgreSQL ledger, its signing key and its key-encryption key, driven by the CLI."""

    database_url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PACTLEDGER_DATABASE_URL": self.database_url,
            "PACTLEDGER_SIGNING_KEY": str(self.home / "signing-key.pem"),
            "PACTLEDGER_KEK": str(self.home / "kek.key"),
            "PACTLEDGER_ORIGIN": ORIGIN,
        }
        env.pop("PACTLEDGER_BROKER_URL", None)  # a broker only where a test passes one
        env.update(extra)
        return env

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run ``pactledger ARGS``; its stdout (a failure fails the test with its stderr)."""
        done = subprocess.run(
            [*CLI, *args], cwd=ROOT, env=self.env(), input=stdin, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        if check and done.returncode != 0:
            pytest.fail(f"pactledger {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    def append_cli(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """``pactledger append -`` of the entries as JSON Lines: its summary."""
        lines = "".join(json.dumps(entry) + "\n" for entry in entries)
        summary: dict[str, Any] = json.loads(self.cli("append", "-", "--json", stdin=lines))
        return summary

    @contextlib.contextmanager
    def open(self) -> Iterator[Ledger]:
        """The ledger in this process, with its signer (admission as the CLI and the API do
        it; no projection triggered): quicker than a CLI process for setting up."""
        engine = make_engine(self.database_url)
        try:
            store = SqlLogStore(engine)
            signer = load_signer(self.home / "signing-key.pem", store.head().origin)
            yield Ledger(store=store, signer=signer)
        finally:
            engine.dispose()

    def ingest_key(self, tenant: str) -> str:
        created = self.cli_json("keys", "create", "--role", "ingest", "--tenant", tenant)
        key: str = created["key"]
        return key

    def verify(self, *against: Path) -> dict[str, Any]:
        """``pactledger verify --json``; fails the test unless the log is intact."""
        args = [arg for note in against for arg in ("--against", str(note))]
        done = subprocess.run(
            [*CLI, "verify", *args, "--json"], cwd=ROOT, env=self.env(), capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"verify failed: {done.stdout}{done.stderr}"
        report: dict[str, Any] = json.loads(done.stdout)
        return report


def init_ledger(database_url: str, home: Path) -> LedgerHome:
    """``pactledger init`` on ``database_url`` (keys written under ``home``, mode 0600)."""
    home.mkdir(parents=True, exist_ok=True)
    ledger = LedgerHome(database_url, home)
    ledger.cli("init", "--json")
    return ledger


@dataclass
class ApiServer:
    """A ``pactledger serve`` process that can be SIGKILLed and started again on its port."""

    ledger: LedgerHome
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers ``/readyz``."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the server without waiting for it (see :meth:`wait_ready`)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        log = (self.logs / f"serve-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port)], cwd=ROOT,
            env=self.ledger.env(**self.extra_env), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.starts += 1

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2, verify=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not become ready:\n{self.tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (its whole process group): no shutdown, no flush, no goodbye."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.kills += 1
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def tail(self, lines: int = 40) -> str:
        text = []
        for path in sorted(self.logs.glob("serve-*.log")):
            body = path.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {path.name}\n" + "\n".join(body))
        return "\n".join(text)


@dataclass(frozen=True)
class Unit:
    """What one request carries: entries ``first`` … ``first + size - 1``, made by ``build`` (each
    with its idempotency key) when sent, so a million-entry soak holds no million dicts; one
    entry goes to ``/v1/events``, a batch to ``/v1/events:batch``."""

    first: int
    size: int
    batch: bool
    build: Callable[[int], dict[str, Any]]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [self.build(n) for n in range(self.first, self.first + self.size)]

    @property
    def keys(self) -> list[str]:
        return [entry["idempotency_key"] for entry in self.entries]


@dataclass(frozen=True)
class Ack:
    """One entry's acknowledgement: the receipt the server sent for it."""

    key: str
    seq: int
    leaf_hash: str
    duplicate: bool


@dataclass
class IngestStats:
    requests: int = 0
    transport_errors: int = 0  # refused connections, resets, read errors: the server died
    retryable_status: int = 0  # 429, 502, 503, 504
    duplicates: int = 0  # entries acknowledged by a retry: committed, first answer lost
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


class Ingest:
    """Client threads, one per list of units: each sends its units in order and retries a unit
    (same keys, same content) until the server acknowledges it or ``deadline_s`` passes."""

    def __init__(self, url: str, api_key: str, work: list[list[Unit]], *, deadline_s: float):
        self.url, self.api_key, self.work = url, api_key, work
        self.deadline = time.monotonic() + deadline_s
        self.acks: list[list[list[Ack]]] = [[] for _ in work]  # client → unit → acks
        self.stats = IngestStats()
        self.acked_entries = 0
        self.failures: list[str] = []
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True, name=f"client-{n}")
            for n in range(len(work))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=max(1.0, self.deadline - time.monotonic() + 30))
        assert not self.failures, "\n".join(self.failures[:5])
        assert not self.running(), "clients still running after their deadline"
        unacked = sum(
            len(units) - len(acks) for units, acks in zip(self.work, self.acks, strict=True)
        )
        assert unacked == 0, f"{unacked} units never acknowledged before the deadline"

    def _client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        # Plain HTTP on loopback: no TLS, so no CA bundle to load (verify=False).
        with httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=False) as client:
            for unit in self.work[n]:
                acks = self._send(client, unit)
                if acks is None:
                    return
                self.acks[n].append(acks)
                with self.stats.lock:
                    self.acked_entries += len(acks)

    def _send(self, client: httpx.Client, unit: Unit) -> list[Ack] | None:
        pause = 0.02
        while time.monotonic() < self.deadline:
            self.stats.add(requests=1)
            entries = unit.entries
            try:
                if unit.batch:
                    response = client.post("/v1/events:batch", json={"events": entries})
                else:
                    response = client.post("/v1/events", json=entries[0])
            except httpx.TransportError:
                self.stats.add(transport_errors=1)
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
                continue
            if response.status_code in RETRYABLE:
                self.stats.add(retryable_status=1)
                retry_after = float(response.headers.get("Retry-After", "0") or 0)
                time.sleep(min(max(pause, retry_after), 1.0))
                pause = min(pause * 2, 0.5)
                continue
            if response.status_code not in (200, 201):
                self.failures.append(f"unit {unit.first}: {response.status_code} {response.text}")
                return None
            body = response.json()
            receipts = body["receipts"] if unit.batch else [body]
            if len(receipts) != len(entries):
                self.failures.append(f"unit {unit.first}: {len(receipts)} receipts")
                return None
            acks = [
                Ack(entry["idempotency_key"], r["seq"], r["leaf_hash"], r["duplicate"])
                for entry, r in zip(entries, receipts, strict=True)
            ]
            self.stats.add(duplicates=sum(ack.duplicate for ack in acks))
            return acks
        return None


@dataclass(frozen=True)
class LoggedEntry:
    seq: int
    key: str | None
    leaf_hash: str
    entry_bytes: bytes | None


def read_log(database_url: str, *, tenant: str, with_bytes: bool) -> Iterator[LoggedEntry]:
    """Every entry of the log in seq order, read with a server-side cursor (constant memory);
    ``key`` is the idempotency key when the entry is ``tenant``'s, else None."""
    columns = "seq, tenant, idempotency_key, leaf_hash" + (", entry_bytes" if with_bytes else "")
    with (
        psycopg.connect(database_url) as conn,
        conn.cursor(name="faults_read_log") as cursor,
    ):
        cursor.itersize = 10_000
        cursor.execute(f"SELECT {columns} FROM entries ORDER BY seq")
        for row in cursor:
            key = row[2] if row[1] == tenant else None
            body = bytes(row[4]) if with_bytes else None
            yield LoggedEntry(int(row[0]), key, bytes(row[3]).hex(), body)


@dataclass
class LogCheck:
    size: int
    keyed: int


def check_log(
    database_url: str,
    ingest: Ingest,
    *,
    tenant: str,
    content: Callable[[str, bytes], None] | None = None,
) -> LogCheck:
    """Hold the log against what ``ingest`` was told; fails the test on the first breach.

    * seqs are 0..size-1 with no gap;
    * each idempotency key of ``tenant`` is in the log once, and every key sent is there;
    * every acknowledged entry is at its acknowledged seq, with its acknowledged leaf hash
      (and, given ``content``, the entry's bytes are what was sent: it is called with the key
      and the bytes);
    * each batch's entries sit at consecutive seqs in order: one transaction, never part of it
      committed before a retry and the rest after;
    * each client's units are in the log in the order it sent them (it sent a unit only once
      the previous one was acknowledged, i.e. committed: commit order is seq order).
    """
    expected: dict[str, Ack] = {}
    for client in ingest.acks:
        for acks in client:
            for ack in acks:
                assert ack.key not in expected, f"key {ack.key} acknowledged twice"
                expected[ack.key] = ack
    seen: dict[str, int] = {}
    size = 0
    for entry in read_log(database_url, tenant=tenant, with_bytes=content is not None):
        assert entry.seq == size, f"gap or disorder: seq {entry.seq} where {size} was due"
        size += 1
        if entry.key is None:
            continue
        assert entry.key not in seen, (
            f"key {entry.key} twice in the log: seq {seen[entry.key]} and {entry.seq}"
        )
        seen[entry.key] = entry.seq
        ack = expected.get(entry.key)
        assert ack is not None, f"key {entry.key} (seq {entry.seq}) was never acknowledged"
        assert (ack.seq, ack.leaf_hash) == (entry.seq, entry.leaf_hash), (
            f"{entry.key} acknowledged at seq {ack.seq} ({ack.leaf_hash[:12]}…), "
            f"in the log at {entry.seq} ({entry.leaf_hash[:12]}…)"
        )
        if content is not None:
            assert entry.entry_bytes is not None
            content(entry.key, entry.entry_bytes)
    missing = sorted(set(expected) - set(seen))
    assert not missing, f"{len(missing)} acknowledged entries lost, e.g. {missing[:5]}"
    for n, (units, client) in enumerate(zip(ingest.work, ingest.acks, strict=True)):
        last = -1
        for unit, acks in zip(units, client, strict=True):
            seqs = [seen[ack.key] for ack in acks]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (
                f"client {n}: batch {acks[0].key}… split over seqs {seqs[:3]}…{seqs[-3:]}"
            )
            assert [ack.key for ack in acks] == unit.keys
            assert seqs[0] > last, f"client {n}: {acks[0].key} at {seqs[0]}, after {last}"
            last = seqs[-1]
    return LogCheck(size=size, keyed=len(seen))
