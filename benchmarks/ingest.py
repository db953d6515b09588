"""Batch ingest throughput of pactledger against a plain PostgreSQL ``COPY`` floor.

What it measures, in one run (defaults: 100,000 entries in batches of 1,000):

1. ``pactledger/sqlite`` — :class:`~ledger.store.sql.SqlLogStore` on a SQLite file in a temporary
   directory (WAL, ``synchronous=FULL``, as :func:`~ledger.store.engine.make_engine` sets it up).
2. ``pactledger/postgres`` — the same store on a fresh, migrated PostgreSQL database.
3. ``copy-floor/postgres`` — the exact rows pactledger wrote in step 2 (every ``entries`` column,
   same values and bytes, read back and held in memory before timing) written again into another
   fresh, migrated database with psycopg 3 ``COPY entries (...) FROM STDIN`` / ``write_row``, in
   the same batches, one transaction per batch: what the server costs with no validation,
   canonicalisation, hashing, Merkle nodes, head update or lookups.

For the pactledger rows the timed section of each batch is ``store.append(dicts)`` on the raw
entry objects, as an ingest endpoint hands them over: validation into ``EntryInput`` (which the
store overlaps with its lookups on PostgreSQL), RFC 8785 canonicalisation, leaf/chain hashing,
Merkle node storage, head update, commit. The entry dicts (type
``InferenceRouted``, one ``request:<uuid>`` stream per entry, a few tenants, a realistic routing
payload; about 570 bytes canonical) are built before any timing, from a fixed seed. Migration,
initialisation, connection set-up and the floor's row read-back are outside the timed sections.

The target is that pactledger on PostgreSQL reaches at least 0.6 of the ``COPY`` floor's events/s;
the result says whether it was met. The machine (cores, Python, SQLite and PostgreSQL versions,
the server's ``fsync``/``synchronous_commit``) is recorded with the figures.

Guarantees:

* The script only ever creates databases named ``pactledger_bench_<12 hex digits>`` and drops
  every one it created (``DROP DATABASE ... WITH (FORCE)``) before it exits, on success, on an
  error, on Ctrl-C and on SIGTERM. It never creates or alters anything in the maintenance
  database it connects to (only ``CREATE DATABASE``/``DROP DATABASE``/``SHOW`` are issued there).
* The SQLite file lives in a temporary directory that is removed at the end.
* Each pactledger run is checked after timing: the head size and the row count equal the number
  of entries appended; the floor's row count is checked too. A failed check aborts the run.
* Pactledger's code is used as it is; nothing is patched.

Run it from the repository root::

    .venv/bin/python -m benchmarks.ingest                      # full run, Rich table
    .venv/bin/python -m benchmarks.ingest --entries 10000      # quick check
    .venv/bin/python -m benchmarks.ingest --json --out ingest.json

The server comes from ``--postgres-url`` or ``PACTLEDGER_BENCH_POSTGRES_URL`` (default:
``postgresql://postgres@127.0.0.1:5432/postgres``, a maintenance database).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import func, select

from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore
from ledger.store.tables import entries as entries_table

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ORIGIN = "bench.example/log"
TARGET_RATIO = 0.6
SEED = 6962
DATABASE_PREFIX = "pactledger_bench_"
BACKENDS = ("sqlite", "postgres")
ENTRY_COLUMNS: tuple[str, ...] = tuple(column.name for column in entries_table.columns)

SQLITE_ROW = "pactledger/sqlite"
POSTGRES_ROW = "pactledger/postgres"
FLOOR_ROW = "copy-floor/postgres"

TENANTS = ("acme-insurance", "globex-bank", "initech-health", "umbrella-eu")
MODELS = (
    ("gpt-4o-2024-08-06", "openai", 2.50, 10.00),
    ("claude-3-5-sonnet-20241022", "anthropic", 3.00, 15.00),
    ("gemini-1.5-pro-002", "google", 1.25, 5.00),
    ("llama-3.1-70b-instruct", "aws-bedrock", 0.72, 0.72),
    ("mistral-large-2411", "mistral", 2.00, 6.00),
)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
BUSINESS_UNITS = ("claims", "underwriting", "customer-support", "fraud-detection", "marketing")
ROUTING_REASONS = ("lowest-cost", "latency-slo", "data-residency", "fallback", "pinned")


# --- entries --------------------------------------------------------------------------------


def build_entries(count: int, *, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` entry dicts as a client would submit them (JSON-shaped, not yet validated)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    result: list[dict[str, Any]] = []
    for index in range(count):
        model, provider, input_price, output_price = rng.choice(MODELS)
        request_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        prompt_tokens = rng.randint(40, 12_000)
        completion_tokens = rng.randint(5, 2_500)
        cost = (
            Decimal(prompt_tokens) * Decimal(str(input_price))
            + Decimal(completion_tokens) * Decimal(str(output_price))
        ) / Decimal(1_000_000)
        payload = {
            "model": model,
            "provider": provider,
            "region": rng.choice(REGIONS),
            "business_unit": rng.choice(BUSINESS_UNITS),
            "routing_reason": rng.choice(ROUTING_REASONS),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost_usd": f"{cost:.8f}",
            "latency_ms": rng.randint(80, 9_000),
            "cache_hit": rng.random() < 0.15,
        }
        occurred_at = start + timedelta(milliseconds=10 * index)
        result.append(
            {
                "type": "InferenceRouted",
                "stream": f"request:{request_id}",
                "tenant": rng.choice(TENANTS),
                "payload": payload,
                "occurred_at": occurred_at.isoformat(),  # "...+00:00"
            }
        )
    return result


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- results --------------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    entries: int
    batches: int
    seconds: float
    events_per_s: float
    batch_seconds_p50: float
    batch_seconds_p95: float
    batch_seconds_max: float
    validate_seconds: float | None = None
    append_seconds: float | None = None
    entry_bytes_mean: float | None = None
    entry_bytes_min: int | None = None
    entry_bytes_max: int | None = None
    ratio_to_floor: float | None = None


def make_result(
    backend: str, count: int, batch_times: Sequence[float], **extra: Any
) -> BackendResult:
    """``batch_times`` are the timed seconds of each batch; their sum is the row's seconds."""
    seconds = sum(batch_times)
    ordered = sorted(batch_times)
    last = len(ordered) - 1
    return BackendResult(
        backend=backend,
        entries=count,
        batches=len(ordered),
        seconds=seconds,
        events_per_s=count / seconds if seconds > 0 else float("inf"),
        batch_seconds_p50=ordered[last // 2],
        batch_seconds_p95=ordered[round(0.95 * last)],
        batch_seconds_max=ordered[last],
        **extra,
    )


# --- databases ------------------------------------------------------------------------------


class Databases:
    """Creates uniquely named benchmark databases; :meth:`drop_all` drops every one of them."""

    def __init__(self, admin_url: str, console: Console) -> None:
        self.admin_url = admin_url
        self.console = console
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def url(self, name: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    def create(self) -> str:
        """Create an empty database and return its URL."""
        name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
        self.created.append(name)  # recorded first: a half-made database is dropped too
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database at ``url`` (one this object created) now."""
        name = url.rpartition("/")[2]
        if name in self.created:
            self.created.remove(name)
            self._drop(name)

    def drop_all(self) -> None:
        while self.created:
            self._drop(self.created.pop())

    def _drop(self, name: str) -> None:
        try:
            with self._admin() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        except psycopg.Error as exc:
            self.console.print(f"[red]could not drop database {name}: {exc}[/red]")

    def settle(self) -> None:
        """Flush dirty buffers (CHECKPOINT) so no run pays for the writes of the one before."""
        with self._admin() as conn:
            conn.execute("CHECKPOINT")

    def server_settings(self) -> dict[str, str]:
        with self._admin() as conn:
            settings: dict[str, str] = {}
            for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers"):
                row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
                settings[name] = str(row[0]) if row else "?"
            return settings


# --- runs -----------------------------------------------------------------------------------


def new_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=4,
    )


def run_pactledger(
    backend: str,
    url: str,
    dicts: Sequence[dict[str, Any]],
    batch: int,
    console: Console,
    *,
    profiler: cProfile.Profile | None = None,
) -> BackendResult:
    """Append ``dicts`` through :class:`SqlLogStore` and time validation + append per batch."""
    engine = make_engine(url)
    try:
        migrate(engine)
        store = SqlLogStore(engine)
        store.initialize(ORIGIN)
        validate_s = append_s = 0.0
        batch_times: list[float] = []
        gc.collect()
        # The harness holds its whole input in memory; freeze it out of the collector's view so
        # collections cost what they would in an ingest process that streams its input.
        gc.freeze()
        with new_progress(console) as progress:
            task = progress.add_task(backend, total=len(dicts), rate="")
            for chunk in batches(dicts, batch):
                if profiler is not None:
                    profiler.enable()
                t0 = t1 = time.perf_counter()  # validation happens inside append
                receipts = store.append(chunk)
                t2 = time.perf_counter()
                if profiler is not None:
                    profiler.disable()
                validate_s += t1 - t0
                append_s += t2 - t1
                batch_times.append(t2 - t0)
                if len(receipts) != len(chunk):
                    raise RuntimeError(f"{backend}: {len(receipts)} receipts for {len(chunk)}")
                done = progress.tasks[0].completed + len(chunk)
                progress.update(
                    task, advance=len(chunk), rate=f"{done / (validate_s + append_s):,.0f}/s"
                )
        gc.unfreeze()
        size = store.head().size
        with engine.connect() as conn:
            count, mean, smallest, largest = conn.execute(
                select(
                    func.count(),
                    func.avg(func.length(entries_table.c.entry_bytes)),
                    func.min(func.length(entries_table.c.entry_bytes)),
                    func.max(func.length(entries_table.c.entry_bytes)),
                )
            ).one()
        if size != len(dicts) or count != len(dicts):
            raise RuntimeError(f"{backend}: head size {size}, {count} rows, {len(dicts)} expected")
        return make_result(
            backend,
            len(dicts),
            batch_times,
            validate_seconds=validate_s,
            append_seconds=append_s,
            entry_bytes_mean=float(mean),
            entry_bytes_min=int(smallest),
            entry_bytes_max=int(largest),
        )
    finally:
        engine.dispose()


def read_rows(url: str) -> list[tuple[Any, ...]]:
    """Every ``entries`` row of the database at ``url``, in ``seq`` order."""
    query = sql.SQL("SELECT {} FROM entries ORDER BY seq").format(
        sql.SQL(", ").join(map(sql.Identifier, ENTRY_COLUMNS))
    )
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def run_copy_floor(
    url: str, rows: Sequence[tuple[Any, ...]], batch: int, console: Console
) -> BackendResult:
    """COPY ``rows`` into ``entries`` of a migrated database, one transaction per batch."""
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    statement = sql.SQL("COPY entries ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, ENTRY_COLUMNS))
    )
    batch_times: list[float] = []
    with psycopg.connect(url) as conn:
        gc.collect()
        # The harness holds its whole input in memory; freeze it out of the collector's view so
        # collections cost what they would in an ingest process that streams its input.
        gc.freeze()
        with new_progress(console) as progress:
            task = progress.add_task(FLOOR_ROW, total=len(rows), rate="")
            for chunk in batches(rows, batch):
                t0 = time.perf_counter()
                with conn.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in chunk:
                        copy.write_row(row)
                conn.commit()
                batch_times.append(time.perf_counter() - t0)
                done = progress.tasks[0].completed + len(chunk)
                rate = f"{done / sum(batch_times):,.0f}/s"
                progress.update(task, advance=len(chunk), rate=rate)
        gc.unfreeze()
        row = conn.execute("SELECT count(*) FROM entries").fetchone()
    count = row[0] if row else 0
    if count != len(rows):
        raise RuntimeError(f"{FLOOR_ROW}: {count} rows, {len(rows)} expected")
    return make_result(FLOOR_ROW, len(rows), batch_times)


# --- machine --------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages (other work on the machine skews every figure)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def cpu_busy(interval: float = 1.0) -> float | None:
    """Fraction of all cores busy during ``interval`` seconds (Linux ``/proc/stat``), measured
    before the run starts: anything else running on the machine skews every figure."""
    stat = Path("/proc/stat")

    def sample() -> tuple[int, int]:
        fields = [int(value) for value in stat.read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total_before, idle_before = sample()
        time.sleep(interval)
        total_after, idle_after = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total_after - total_before
    return round(1 - (idle_after - idle_before) / total, 3) if total > 0 else None


def git_revision() -> str | None:
    """The commit of the checkout being measured, ``+dirty`` when it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if status.strip() else commit


def machine_info(
    server: dict[str, str] | None, load_at_start: list[float] | None, busy: float | None
) -> dict[str, Any]:
    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    versions: dict[str, str | None] = {}
    for package in ("pactledger", "sqlalchemy", "psycopg", "pydantic", "orjson"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": server,
        "packages": versions,
        "cpu_busy_before_start": busy,
        "load_average_start": load_at_start,
        "load_average_end": load_average(),
    }


# --- output ---------------------------------------------------------------------------------


def row(
    name: str,
    scale: str,
    unit: str,
    ours: float | None,
    *,
    peer: str | None = None,
    peer_value: float | None = None,
    digits: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    """One row of a benchmark's JSON ``results``: ours against the peer, with their ratio."""
    ratio = ours / peer_value if ours is not None and peer_value else None
    return {
        "name": name,
        "scale": scale,
        "unit": unit,
        "ours": None if ours is None else round(ours, 2),
        "peer": peer,
        "peer_value": None if peer_value is None else round(peer_value, 2),
        "ratio": None if ratio is None else round(ratio, digits),
        **extra,
    }


def emit(
    report: dict[str, Any],
    args: argparse.Namespace,
    render: Callable[[dict[str, Any], Console], None],
    console: Console,
) -> None:
    """Print the report (a table, or JSON with ``--json``) and save it to ``--out``."""
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
        return
    render(report, console)
    if args.out is not None:
        console.print(f"JSON saved to {args.out}")


def render(report: dict[str, Any], console: Console) -> None:
    params = report["parameters"]
    table = Table(
        title=f"pactledger ingest: {params['entries']:,} entries in batches of {params['batch']:,}"
    )
    table.add_column("backend")
    table.add_column("entries", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("ratio to COPY floor", justify="right")
    for row in report["results"]:
        ratio = row["ratio_to_floor"]
        table.add_row(
            row["backend"],
            f"{row['entries']:,}",
            f"{row['seconds']:.2f}",
            f"{row['events_per_s']:,.0f}",
            "-" if ratio is None else f"{ratio:.2f}",
        )
    console.print(table)
    for row in report["results"]:
        detail = (
            f"  {row['backend']}: batch seconds p50 {row['batch_seconds_p50']:.3f}, "
            f"p95 {row['batch_seconds_p95']:.3f}, max {row['batch_seconds_max']:.3f}"
        )
        if row["validate_seconds"] is not None:
            detail += (
                f"; validation {row['validate_seconds']:.2f} s + append "
                f"{row['append_seconds']:.2f} s; entry_bytes mean {row['entry_bytes_mean']:.0f} "
                f"(min {row['entry_bytes_min']}, max {row['entry_bytes_max']})"
            )
        console.print(detail, highlight=False, soft_wrap=True)
    target = report["target"]
    if target["ratio"] is None:
        console.print(
            f"Target: {target['description']} — not measured (needs postgres).", soft_wrap=True
        )
    else:
        if len(report["rounds"]) > 1:
            ratios = ", ".join(f"{r['ratio']:.2f}" for r in report["rounds"])
            console.print(
                f"Rounds (pactledger/postgres ÷ floor, each pair in fresh databases): {ratios}; "
                "the table shows the median round.",
                soft_wrap=True,
            )
        verdict = "[green]MET[/green]" if target["met"] else "[red]NOT MET[/red]"
        console.print(
            f"Target: {target['description']}: {target['ratio']:.2f} → {verdict}",
            highlight=False,
            soft_wrap=True,
        )
    machine = report["machine"]
    server = machine["postgresql"] or {}
    busy = (
        "?"
        if machine["cpu_busy_before_start"] is None
        else f"{machine['cpu_busy_before_start']:.0%}"
    )
    console.print(
        f"Machine: {machine['cpu_count']} cores ({machine['cpu_model']}), {machine['python']}, "
        f"SQLite {machine['sqlite']}, PostgreSQL {server.get('server_version', '-')} "
        f"(fsync={server.get('fsync', '-')}, "
        f"synchronous_commit={server.get('synchronous_commit', '-')}); "
        f"CPUs {busy} busy before the run; load average {machine['load_average_start']} at start, "
        f"{machine['load_average_end']} at end",
        highlight=False,
        soft_wrap=True,
    )


# --- main -----------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def backend_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose from {', '.join(BACKENDS)} (comma-separated), not {text!r}"
        )
    return list(dict.fromkeys(names))


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: ``--json``, ``--out FILE``, ``--postgres-url``."""
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", type=Path, help="also save the JSON results to this file")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PACTLEDGER_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="maintenance-database URL used to create/drop the benchmark databases",
    )


def print_targets(console: Console, targets: Sequence[Mapping[str, Any]]) -> None:
    """One line per target of a report: its value, met or NOT met, and any note."""
    for target in targets:
        verdict = "[green]met[/green]" if target["met"] else "[red]NOT met[/red]"
        console.print(
            f"Target: {target['description']}: {target['value']:.2f} → {verdict}"
            + (f" ({target['note']})" if target.get("note") else ""),
            highlight=False,
            soft_wrap=True,
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description="Batch append throughput of pactledger vs a plain PostgreSQL COPY floor.",
    )
    parser.add_argument("--entries", type=positive_int, default=100_000, help="default 100000")
    parser.add_argument("--batch", type=positive_int, default=1_000, help="default 1000")
    parser.add_argument(
        "--backends",
        type=backend_list,
        default=list(BACKENDS),
        help="comma-separated: sqlite,postgres (postgres also runs the COPY floor)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="PostgreSQL rounds (pactledger then floor, alternating); the table shows the round "
        "with the median ratio and the target is judged on the median (default 3)",
    )
    add_report_arguments(parser)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="afterwards, run pactledger/postgres once more under cProfile (validation + "
        "append only, not timed), save the stats to FILE and print the top functions",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that drop databases


def start_run(as_json: bool, *, wide: bool = False) -> tuple[Console, Console, Any, float | None]:
    """What every benchmark does first: SIGTERM unwinds like Ctrl-C (through the ``finally``
    blocks that drop databases and stop processes); the consoles (with ``as_json`` stdout
    carries nothing but the JSON; ``wide`` keeps a table's rows on one line in a log file);
    and the machine's load and CPU use at the start, with a warning when the CPUs were busy.
    Returns (out, err, load average, CPU share busy)."""
    signal.signal(signal.SIGTERM, _terminate)
    out = Console(stderr=as_json)
    if wide and not out.is_terminal:
        out.width = max(out.width, 160)
    err = Console(stderr=True)
    load = load_average()
    busy = cpu_busy()
    if busy is not None and busy > 0.25:
        err.print(
            f"[yellow]warning: the CPUs were {busy:.0%} busy before the run; other work on "
            "this machine will skew the figures[/yellow]"
        )
    return out, err, load, busy


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out, err, load_at_start, busy = start_run(args.json)
    use_postgres = "postgres" in args.backends
    err.print(f"building {args.entries:,} entry dicts (seed {SEED}) …")
    dicts = build_entries(args.entries)
    results: list[BackendResult] = []
    rounds: list[dict[str, float]] = []
    server: dict[str, str] | None = None
    databases = Databases(args.postgres_url, err)
    try:
        if use_postgres:
            server = databases.server_settings()
        if "sqlite" in args.backends:
            with tempfile.TemporaryDirectory(prefix="pactledger-bench-") as directory:
                url = f"sqlite:///{directory}/ledger.db"
                results.append(run_pactledger(SQLITE_ROW, url, dicts, args.batch, err))
        if use_postgres:
            pairs = []
            for _ in range(args.rounds):
                ledger_url = databases.create()
                databases.settle()
                ledger_run = run_pactledger(POSTGRES_ROW, ledger_url, dicts, args.batch, err)
                rows = read_rows(ledger_url)
                floor_url = databases.create()
                databases.settle()
                pairs.append((ledger_run, run_copy_floor(floor_url, rows, args.batch, err)))
                del rows
                databases.drop_all()
            rounds = [
                {
                    "pactledger_events_per_s": ledger_run.events_per_s,
                    "floor_events_per_s": floor_run.events_per_s,
                    "ratio": ledger_run.events_per_s / floor_run.events_per_s,
                }
                for ledger_run, floor_run in pairs
            ]
            median_round = sorted(range(len(pairs)), key=lambda i: rounds[i]["ratio"])[
                len(pairs) // 2
            ]
            results.extend(pairs[median_round])
        if args.profile is not None and use_postgres:
            profiler = cProfile.Profile()
            run_pactledger(
                "profile/postgres", databases.create(), dicts, args.batch, err, profiler=profiler
            )
            profiler.dump_stats(str(args.profile))
            out.print(
                f"cProfile of pactledger/postgres (validation + append), saved to {args.profile}"
            )
            stats = pstats.Stats(profiler, stream=sys.stderr if args.json else sys.stdout)
            stats.sort_stats("cumulative").print_stats(30)
    finally:
        databases.drop_all()

    floor = next((r for r in results if r.backend == FLOOR_ROW), None)
    for result in results:
        if floor is not None:
            result.ratio_to_floor = result.events_per_s / floor.events_per_s
    ledger_pg = next((r for r in results if r.backend == POSTGRES_ROW), None)
    ratio = ledger_pg.ratio_to_floor if ledger_pg is not None else None
    report: dict[str, Any] = {
        "benchmark": "pactledger ingest",
        "timestamp": datetime.now(UTC).isoformat(),
        "git_revision": git_revision(),
        "parameters": {
            "entries": args.entries,
            "batch": args.batch,
            "backends": args.backends,
            "seed": SEED,
        },
        "machine": machine_info(server, load_at_start, busy),
        "results": [asdict(result) for result in results],
        "rounds": rounds,
        "target": {
            "description": f"pactledger/postgres events/s >= {TARGET_RATIO} x COPY floor",
            "threshold": TARGET_RATIO,
            "ratio": ratio,
            "met": None if ratio is None else ratio >= TARGET_RATIO,
        },
    }
    emit(report, args, render, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
