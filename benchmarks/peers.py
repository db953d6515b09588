"""The peers of ``python -m benchmarks``, driven exactly as their own documentation drives them.

* ``eventsourcing`` (PostgreSQL persistence module, ``PostgresApplicationRecorder``): an
  ``Application`` saving one new aggregate per routed inference, 1,000 aggregates per
  ``app.save(*aggregates)`` call, which the library records in one transaction; then the same
  events read back as notifications, 1,000 per ``select_notifications`` page (what a projector
  of that library does).
* ``pymerkle`` (``SqliteTree``, its SQLite backend, default options: SHA-256, RFC 6962
  domain separation, its subroot cache): filled with the very entry bytes of the pactledger
  log, whose root must then equal pactledger's (both are RFC 6962 trees over the same leaves);
  then inclusion proofs of random leaves.

Nothing here is timed with the peer's set-up: aggregates' input dicts are built and the
pymerkle tree is filled before the clock starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from benchmarks.ingest import new_progress

BATCH = 1_000


def _need(package: str, extra: str) -> None:
    raise SystemExit(
        f"this benchmark's peer needs {package}: .venv/bin/pip install -e '.[bench]' "
        f"(or make bench) installs {extra}"
    )


# --- eventsourcing --------------------------------------------------------------------------


@dataclass
class EventsourcingStore:
    """An ``eventsourcing`` application on its own PostgreSQL database, and how its batch
    ingest went."""

    app: Any
    events: int
    batch_times: list[float] = field(default_factory=list)

    @property
    def version(self) -> str:
        return metadata.version("eventsourcing")

    @property
    def recorder(self) -> str:
        return type(self.app.recorder).__name__

    def close(self) -> None:
        self.app.close()


def eventsourcing_application(url: str, pool_size: int = 2) -> Any:
    """An ``Application`` whose events go to the PostgreSQL database at ``url``."""
    try:
        from eventsourcing.application import Application
    except ImportError:
        _need("eventsourcing[postgres]", "eventsourcing")
    params = conninfo_to_dict(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params["dbname"]),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
        "POSTGRES_CONNECT_TIMEOUT": "30",
        "CREATE_TABLE": "yes",
    }

    class BenchApplication(Application[Any]):
        pass

    return BenchApplication(env=env)


def routed_inference_class() -> Any:
    """The aggregate the peer saves: one ``Created`` event holding the routed inference."""
    from eventsourcing.domain import Aggregate

    class RoutedInference(Aggregate):
        def __init__(self, tenant: str, stream: str, occurred_at: str, payload: dict[str, Any]):
            self.tenant = tenant
            self.stream = stream
            self.occurred_at = occurred_at
            self.payload = payload

    return RoutedInference


def eventsourcing_batch_ingest(
    url: str, count: int, entry: Callable[[int], dict[str, Any]], console: Console
) -> EventsourcingStore:
    """Save ``count`` aggregates, ``BATCH`` per ``app.save`` (one transaction each), timing
    each call: the aggregates' construction (the library's validation and event creation)
    and the save. Checks that the notification log holds exactly ``count`` events."""
    app = eventsourcing_application(url)
    routed = routed_inference_class()
    store = EventsourcingStore(app, count)
    with new_progress(console) as progress:
        task = progress.add_task("eventsourcing", total=count, rate="")
        for start in range(0, count, BATCH):
            dicts = [entry(i) for i in range(start, min(count, start + BATCH))]
            began = time.perf_counter()
            app.save(
                *(routed(d["tenant"], d["stream"], d["occurred_at"], d["payload"]) for d in dicts)
            )
            store.batch_times.append(time.perf_counter() - began)
            done = start + len(dicts)
            progress.update(
                task, advance=len(dicts), rate=f"{done / sum(store.batch_times):,.0f}/s"
            )
    recorded = app.recorder.max_notification_id()
    if recorded != count:
        app.close()
        raise RuntimeError(f"eventsourcing recorded {recorded} events, not {count}")
    return store


def eventsourcing_read(store: EventsourcingStore) -> tuple[int, float]:
    """Read every notification, ``BATCH`` per page, in order; returns (count, seconds)."""
    recorder = store.app.recorder
    began = time.perf_counter()
    count = 0
    start = 1
    while True:
        page = recorder.select_notifications(start, BATCH)
        if not page:
            break
        count += len(page)
        start = page[-1].id + 1
    seconds = time.perf_counter() - began
    if count != store.events:
        raise RuntimeError(f"eventsourcing: read {count} notifications, not {store.events}")
    return count, seconds


# --- pymerkle -------------------------------------------------------------------------------


def entry_bytes(url: str, batch: int = 10_000) -> Iterator[bytes]:
    """Every stored entry's canonical bytes in ``seq`` order, streamed (server-side cursor)."""
    with psycopg.connect(url) as conn, conn.cursor(name="entry_bytes") as cursor:
        cursor.itersize = batch
        cursor.execute("SELECT entry_bytes FROM entries ORDER BY seq")
        for (data,) in cursor:
            yield bytes(data)


@dataclass
class PymerkleTree:
    tree: Any
    size: int
    root: bytes
    fill_seconds: float

    @property
    def version(self) -> str:
        return metadata.version("pymerkle")


def pymerkle_tree(path: Path, leaves: Iterator[bytes], size: int, console: Console) -> PymerkleTree:
    """A ``pymerkle.SqliteTree`` at ``path`` holding ``leaves`` (default options)."""
    try:
        from pymerkle import SqliteTree
    except ImportError:
        _need("pymerkle", "pymerkle")
    tree = SqliteTree(str(path))
    began = time.perf_counter()
    with new_progress(console) as progress:
        task = progress.add_task("pymerkle fill", total=size, rate="")
        chunk: list[bytes] = []
        for data in leaves:
            chunk.append(data)
            if len(chunk) == 50_000:
                tree.append_entries(chunk)
                progress.update(task, advance=len(chunk), rate="")
                chunk = []
        if chunk:
            tree.append_entries(chunk)
            progress.update(task, advance=len(chunk), rate="")
    seconds = time.perf_counter() - began
    stored = tree.get_size()
    if stored != size:
        raise RuntimeError(f"pymerkle holds {stored} leaves, not {size}")
    return PymerkleTree(tree, size, bytes(tree.get_root()), seconds)


def pymerkle_proofs(
    merkle: PymerkleTree, indices: Sequence[int], *, budget_s: float
) -> tuple[int, float, list[float]]:
    """Inclusion proofs of the leaves at ``indices`` (0-based) against the whole tree, one
    in 50 verified after timing; stops early after ``budget_s`` seconds. Returns (proofs,
    seconds, latencies in ascending order)."""
    from pymerkle import verify_inclusion

    latencies: list[float] = []
    proofs = []
    began = time.perf_counter()
    for index in indices:
        t0 = time.perf_counter()
        proofs.append(merkle.tree.prove_inclusion(index + 1, merkle.size))
        latencies.append(time.perf_counter() - t0)
        if time.perf_counter() - began > budget_s:
            break
    seconds = time.perf_counter() - began
    for index, proof in list(zip(indices, proofs, strict=False))[::50]:
        verify_inclusion(merkle.tree.get_leaf(index + 1), merkle.root, proof)
    return len(latencies), seconds, sorted(latencies)
