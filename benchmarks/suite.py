"""``python -m benchmarks``: pactledger beside the peers a user would otherwise pick, in one run
on one machine, and how its costs grow with the size of the ledger.

    python -m benchmarks                              # everything at 1,000,000 entries
    python -m benchmarks --scale 10k                  # a quick look (about 2 minutes)
    python -m benchmarks verify proofs --scale 100k   # some of them
    python -m benchmarks --json bench.json            # + bench.md and bench-scale.png

Each benchmark runs pactledger and its peer (or floor) in this one process run and reports the
ratio ours / peer (higher is better for every unit here but milliseconds). The results go to a
JSON file (``{"machine": {...}, "results": [{"name", "scale", "unit", "ours", "peer",
"peer_value", "ratio", ...}], "targets": [...]}``), a markdown table beside it, and the terminal.

The at-scale benchmarks share ONE ledger: a fresh PostgreSQL database grown to the run's scale
by :func:`benchmarks.scale.grow_ledger` through the store's batch append (the timed fill IS the
``batch-ingest`` row, and the ``scale`` curve is measured as it grows). The ``eventsourcing``
peer's database is likewise filled once (timed: the peer's ``batch-ingest`` figure) and read by
``verify``. Every database is called ``pactledger_bench_<12 hex digits>`` and dropped before
the run ends, however it ends; nothing is created in the maintenance database.

Method, targets and the latest figures: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from benchmarks import api, peers, projectors, scale
from benchmarks.ingest import (
    DEFAULT_ADMIN_URL,
    ENTRY_COLUMNS,
    Databases,
    git_revision,
    machine_info,
    new_progress,
    row,
    start_run,
)
from ledger.app.keys import create_signing_key
from ledger.app.service import Ledger
from ledger.policy import load_policy_set
from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore

SCALES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
SINGLE_EVENTS_MAX = 20_000  # single-event ingest: min(scale, this) events each side
PROJECTOR_ENTRIES_MAX = 100_000  # projectors: min(scale, this) entries of the mixed workload
PROOFS = 2_000
PEER_PROOF_BUDGET_S = 120.0
LOOKUPS = 5_000
DEFAULT_BROKER = "redis://127.0.0.1:6379/15"

TARGETS = (  # (benchmark name, peer prefix, minimum ratio)
    ("batch-ingest", "eventsourcing", 1.5),
    ("batch-ingest", "COPY floor", 0.6),
    ("single-ingest", "eventsourcing", 2.0),
    ("verify", "eventsourcing", 2.0),
    ("inclusion-proofs", "pymerkle", 50.0),
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


@dataclass
class Run:
    """What the benchmarks of one run share: its scale, databases, consoles and fixtures."""

    scale: str
    size: int
    databases: Databases
    directory: Path
    broker: str
    console: Console
    _ledger: scale.GrownLedger | None = None
    _eventsourcing: peers.EventsourcingStore | None = None

    def ledger(self) -> scale.GrownLedger:
        if self._ledger is None:
            self._ledger = scale.grow_ledger(
                self.databases, self.directory, self.size, self.console
            )
        return self._ledger

    def eventsourcing(self) -> peers.EventsourcingStore:
        if self._eventsourcing is None:
            url = self.databases.create()
            self.databases.settle()
            self.console.print(
                f"eventsourcing: {self.size:,} aggregates, "
                f"{peers.BATCH:,} per save (one transaction) …"
            )
            self._eventsourcing = peers.eventsourcing_batch_ingest(
                url, self.size, lambda i: api.routed_entry("e", i), self.console
            )
        return self._eventsourcing

    def close(self) -> None:
        if self._eventsourcing is not None:
            self._eventsourcing.close()
        if self._ledger is not None:
            self._ledger.store.engine.dispose()


Rows = list[dict[str, Any]]


def batch_ingest(run: Run) -> Rows:
    grown = run.ledger()
    es = run.eventsourcing()
    es_rate = es.events / sum(es.batch_times)
    floor_url = run.databases.create()
    run.databases.settle()
    floor_rate = copy_floor(grown.url, floor_url, run.console)
    run.databases.drop(floor_url)
    common = {"batch": scale.BATCH, "transactions": len(grown.batch_times)}
    return [
        row(
            "batch-ingest",
            run.scale,
            "events/s",
            grown.events_per_s,
            peer=f"eventsourcing {es.version} ({es.recorder}, {peers.BATCH:,} per transaction)",
            peer_value=es_rate,
            **common,
        ),
        row(
            "batch-ingest",
            run.scale,
            "events/s",
            grown.events_per_s,
            peer="COPY floor (psycopg 3 COPY of the same rows, no hashing)",
            peer_value=floor_rate,
            **common,
        ),
    ]


def copy_floor(source_url: str, target_url: str, console: Console) -> float:
    """The floor of batch ingest: the ``entries`` rows of ``source_url``, every column as
    stored, written into the migrated database at ``target_url`` with psycopg 3 ``COPY``,
    ``scale.BATCH`` rows and one commit per transaction, timed around the COPY and commit
    only. The rows are read from the source batch by batch (not timed), so memory stays
    bounded at any scale. Returns rows per second."""
    engine = make_engine(target_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    columns = sql.SQL(", ").join(map(sql.Identifier, ENTRY_COLUMNS))
    copy_in = sql.SQL("COPY entries ({}) FROM STDIN").format(columns)
    seconds = 0.0
    copied = 0
    with (
        psycopg.connect(source_url) as source,
        source.cursor(name="floor_rows") as rows,
        psycopg.connect(target_url) as target,
        new_progress(console) as progress,
    ):
        rows.execute(sql.SQL("SELECT {} FROM entries ORDER BY seq").format(columns))
        task = progress.add_task("COPY floor", total=None, rate="")
        while batch := rows.fetchmany(scale.BATCH):
            began = time.perf_counter()
            with target.cursor() as cursor, cursor.copy(copy_in) as copy:
                for values in batch:
                    copy.write_row(values)
            target.commit()
            seconds += time.perf_counter() - began
            copied += len(batch)
            progress.update(task, advance=len(batch), rate=f"{copied / seconds:,.0f}/s")
        count = target.execute("SELECT count(*) FROM entries").fetchone()
    if count is None or count[0] != copied:
        raise RuntimeError(f"COPY floor: {count} rows in the table, {copied} copied")
    return copied / seconds


def single_ingest(run: Run) -> Rows:
    count = min(run.size, SINGLE_EVENTS_MAX)
    url = run.databases.create()
    store, ingest_key, _ = api.prepare_ledger(url)
    key = run.directory / "single-signing-key.pem"
    create_signing_key(key)
    server = api.Server(url, key, 1, run.directory / "single-server.log")
    peer_url = ""
    try:
        server.wait_ready()
        run.databases.settle()
        ours = api.run_single(server, ingest_key, count, run.console)
        peer_url = run.databases.create()
        run.databases.settle()
        peer = api.run_peer(peer_url, count, run.console)
    finally:
        server.stop()
        store.engine.dispose()
        run.databases.drop(url)
        if peer_url:
            run.databases.drop(peer_url)
    return [
        row(
            "single-ingest",
            f"{count // 1000}k events",
            "events/s",
            ours.rate,
            peer=f"eventsourcing {_version('eventsourcing')} (one aggregate per transaction, "
            f"{api.SINGLE_CLIENTS} threads)",
            peer_value=peer.rate,
            clients=api.SINGLE_CLIENTS,
            p99_ms=round(ours.ms(0.99), 2),
            peer_p99_ms=round(peer.ms(0.99), 2),
        )
    ]


def verify(run: Run) -> Rows:
    grown = run.ledger()
    es = run.eventsourcing()
    run.databases.settle()
    run.console.print(f"verify: auditing {grown.size:,} entries from PostgreSQL …")
    began = time.perf_counter()
    report = grown.ledger.verify()
    ours_s = time.perf_counter() - began
    if report.size != grown.size:
        raise RuntimeError(f"verify audited {report.size} entries, not {grown.size}")
    ours = grown.size / ours_s
    read, read_s = peers.eventsourcing_read(es)
    began = time.perf_counter()
    hashed = 0
    for data in peers.entry_bytes(grown.url):
        hashlib.sha256(b"\x00" + data).digest()
        hashed += 1
    floor_s = time.perf_counter() - began
    return [
        row(
            "verify",
            run.scale,
            "entries/s",
            ours,
            peer=f"eventsourcing {es.version} (reading the notifications, "
            f"{peers.BATCH:,} per page)",
            peer_value=read / read_s,
            seconds=round(ours_s, 2),
        ),
        row(
            "verify",
            run.scale,
            "entries/s",
            ours,
            peer="hashlib floor (read the stored bytes, SHA-256 each)",
            peer_value=hashed / floor_s,
            seconds=round(ours_s, 2),
        ),
    ]


def inclusion_proofs(run: Run) -> Rows:
    """Random-leaf inclusion proofs at the run's scale, three ways, against pymerkle.

    ``inclusion-proofs``, the judged row: a long-running server, as ``pactledger serve`` proves
    (from its in-memory copy of the hashes), against pymerkle's ``SqliteTree`` (its subroot
    cache on, as it ships): each side first makes ``PROOFS`` untimed proofs, then ``PROOFS``
    timed ones. ``inclusion-proofs/cold``: the first ``PROOFS`` proofs of a fresh store and a
    fresh tree object, the copy's load included. ``inclusion-proofs/database``: reading every
    proof's hashes from PostgreSQL (a one-shot ``pactledger prove``), against warm pymerkle."""
    grown = run.ledger()
    checkpoint = grown.store.latest_checkpoint()
    if checkpoint is None or checkpoint.tree_size != grown.size:
        raise RuntimeError("the grown ledger has no checkpoint at its head")
    size, root = checkpoint.tree_size, checkpoint.root_hash
    served = SqlLogStore(grown.store.engine, tree_cache=size)
    try:
        run.console.print(f"proofs: {PROOFS:,} cold, then {PROOFS:,} warm, from memory …")
        began = time.perf_counter()
        cold = scale.time_proofs(Ledger(store=served), size, root, PROOFS, seed=1)
        cold_s = time.perf_counter() - began
        began = time.perf_counter()
        warm = scale.time_proofs(Ledger(store=served), size, root, PROOFS, seed=2)
        warm_s = time.perf_counter() - began
    finally:
        served.close()
    run.console.print(f"proofs: {PROOFS:,} from PostgreSQL …")
    began = time.perf_counter()
    database = scale.time_proofs(grown.ledger, size, root, PROOFS, seed=3)
    database_s = time.perf_counter() - began

    merkle = peers.pymerkle_tree(
        run.directory / "pymerkle.db", peers.entry_bytes(grown.url), size, run.console
    )
    try:
        if merkle.root != root:
            raise RuntimeError(
                "pymerkle's root differs from pactledger's over the same leaves: "
                f"{merkle.root.hex()} != {root.hex()}"
            )
        run.console.print(
            f"pymerkle: {size:,} leaves in {merkle.fill_seconds:.0f} s, same root as "
            f"pactledger; {PROOFS:,} cold proofs, then {PROOFS:,} warm …"
        )
        rng = random.Random(6962)
        peer_cold = peers.pymerkle_proofs(
            merkle, [rng.randrange(size) for _ in range(PROOFS)], budget_s=PEER_PROOF_BUDGET_S
        )
        peer_warm = peers.pymerkle_proofs(
            merkle, [rng.randrange(size) for _ in range(PROOFS)], budget_s=PEER_PROOF_BUDGET_S
        )
    finally:
        merkle.tree.close()
    peer_name = f"pymerkle {merkle.version} (SqliteTree, default options)"

    def proofs_row(
        name: str, latencies: list[float], seconds: float, peer: tuple[int, float, list[float]]
    ) -> dict[str, Any]:
        count, peer_s, peer_latencies = peer
        return row(
            name,
            run.scale,
            "proofs/s",
            len(latencies) / seconds,
            peer=peer_name,
            peer_value=count / peer_s,
            p50_ms=round(1000 * api.percentile(latencies, 0.5), 3),
            p99_ms=round(1000 * api.percentile(latencies, 0.99), 3),
            peer_p50_ms=round(1000 * api.percentile(peer_latencies, 0.5), 3),
            peer_p99_ms=round(1000 * api.percentile(peer_latencies, 0.99), 3),
            proofs=len(latencies),
            peer_proofs=count,
            same_root=True,
        )

    return [
        proofs_row("inclusion-proofs", warm, warm_s, peer_warm),
        proofs_row("inclusion-proofs/cold", cold, cold_s, peer_cold),
        proofs_row("inclusion-proofs/database", database, database_s, peer_warm),
    ]


def provenance(run: Run) -> Rows:
    grown = run.ledger()
    api.analyze(grown.url)
    server = api.Server(
        grown.url,
        grown.signing_key,
        1,
        run.directory / "provenance.log",
        # the server's in-memory proof copy holds the whole ledger at every scale
        env={"PACTLEDGER_PROOF_CACHE_ENTRIES": str(max(grown.size, 2_097_152))},
    )
    try:
        server.wait_ready()
        run.databases.settle()
        timing = api.run_provenance(
            server,
            grown.viewer_key,
            name="provenance-16",
            clients=api.LOOKUP_CLIENTS,
            lookups=LOOKUPS,
            ids=lambda index: api.request_id("f", index),
            population=grown.filled,
            expected_size=grown.size,
            console=run.console,
        )
    finally:
        server.stop()
    return [
        row(
            "provenance-http",
            run.scale,
            "ms (p99)",
            timing.ms(0.99),
            p50_ms=round(timing.ms(0.5), 2),
            lookups_per_s=round(timing.rate, 1),
            clients=api.LOOKUP_CLIENTS,
            lookups=LOOKUPS,
        )
    ]


def projector_throughput(run: Run) -> Rows:
    entries = min(run.size, PROJECTOR_ENTRIES_MAX)
    policies = load_policy_set()
    run.console.print(f"projectors: building a {entries:,}-entry mixed workload …")
    workload = projectors.build_workload(entries, policies)
    before = list(run.databases.created)
    gc.collect()
    gc.freeze()
    try:
        ingest, catch_up, _ = projectors.run_ingest_and_catch_up(
            run.databases, workload, policies, scale.BATCH, run.console
        )
        problem = projectors.broker_problem(run.broker)
        burst = None
        if problem is None:
            burst = projectors.run_burst_lag(
                run.databases, workload, policies, scale.BATCH, run.broker, run.console
            )
    finally:
        gc.unfreeze()
        for name in [n for n in run.databases.created if n not in before]:
            run.databases.drop(run.databases.url(name))
    scale_name = f"{entries // 1000}k entries"
    rows = [
        row(
            "projector-catch-up",
            scale_name,
            "entries/s",
            catch_up.rate,
            peer="batch ingest of the same entries (Ledger.append, same run)",
            peer_value=ingest.rate,
            projectors=len(projectors.PROJECTORS),
        )
    ]
    if burst is None:
        rows.append(row("projector-burst-lag", scale_name, "entries", None, skipped=problem))
    else:
        rows.append(
            row(
                "projector-burst-lag",
                scale_name,
                "entries (max lag)",
                burst["max_lag_entries"],
                max_lag_seconds=burst["max_lag_seconds"],
                drain_seconds=burst["drain_seconds"],
                worker_entries_per_s=burst["worker_entries_per_s"],
            )
        )
    return rows


def export(run: Run) -> Rows:
    grown = run.ledger()
    out = run.directory / "export.zip"
    run.console.print(f"export: {grown.size:,} entries to a bundle (child process) …")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.export",
            "--child",
            "export-url",
            grown.url,
            str(grown.signing_key),
            scale.ORIGIN,
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    ours: dict[str, Any] = json.loads(done.stdout)
    out.unlink()
    # The floor: the same bytes streamed from PostgreSQL into one deflated zip member.
    began = time.perf_counter()
    count = 0
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("entries.jsonl", "w") as member,
    ):
        for data in peers.entry_bytes(grown.url):
            member.write(data + b"\n")
            count += 1
    floor_s = time.perf_counter() - began
    out.unlink()
    return [
        row(
            "export",
            run.scale,
            "entries/s",
            ours["entries_per_s"],
            peer="zip floor (the entry bytes into one deflated zip member)",
            peer_value=count / floor_s,
            # VmHWM: the child's own high-water mark (ru_maxrss would carry this process's
            # over fork + exec, benchmarks/export.py)
            peak_rss_mib=ours["vm_hwm_mib"],
            bundle_mib=ours["bundle_mib"],
            seconds=ours["seconds"],
        )
    ]


def scale_curve(run: Run) -> Rows:
    grown = run.ledger()
    rows: Rows = []
    for point in grown.points:
        label = _size_label(point.entries)
        rows += [
            row("scale/append", label, "µs per entry", point.append_us_per_entry),
            row(
                "scale/proof-memory",
                label,
                "µs per proof",
                point.memory_proof_us_mean,
                p99_us=round(point.memory_proof_us_p99, 1),
                copy_load_s=round(point.copy_load_seconds, 3),
            ),
            row(
                "scale/proof-database",
                label,
                "µs per proof",
                point.proof_us_mean,
                p99_us=round(point.proof_us_p99, 1),
            ),
            row("scale/verify", label, "entries/s", point.verify_entries_per_s),
        ]
    return rows


BENCHMARKS: dict[str, tuple[Callable[[Run], Rows], str]] = {
    "batch-ingest": (batch_ingest, "1,000-entry batches into PostgreSQL vs eventsourcing, COPY"),
    "single-ingest": (single_ingest, "single events, 32 HTTP clients vs eventsourcing threads"),
    "verify": (verify, "full verification vs eventsourcing's read, hashlib floor"),
    "proofs": (inclusion_proofs, "inclusion proofs vs pymerkle's SQLite tree"),
    "provenance": (provenance, "provenance lookups over HTTP, 16 clients, p50/p99"),
    "projectors": (projector_throughput, "projector catch-up vs ingest; lag after a burst"),
    "export": (export, "regulator bundle of the whole ledger vs a zip floor; peak memory"),
    "scale": (scale_curve, "append, proof and verification cost at 10k … the run's scale"),
}


def _size_label(size: int) -> str:
    for label, value in SCALES.items():
        if size == value:
            return label
    return f"{size // 1000}k" if size < 1_000_000 else f"{size / 1e6:g}m"


# --- reporting ------------------------------------------------------------------------------


def judge(results: Rows) -> list[dict[str, Any]]:
    targets = []
    for name, peer, threshold in TARGETS:
        for result in results:
            if result["name"] == name and (result["peer"] or "").startswith(peer):
                ratio = result["ratio"]
                targets.append(
                    {
                        "description": f"{name} >= {threshold:g}x {peer}",
                        "scale": result["scale"],
                        "value": ratio,
                        "threshold": threshold,
                        "met": ratio is not None and ratio >= threshold,
                    }
                )
    return targets


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


_NOTE_KEYS = (
    "p50_ms",
    "p99_ms",
    "peer_p99_ms",
    "p99_us",
    "copy_load_s",
    "lookups_per_s",
    "peak_rss_mib",
    "max_lag_seconds",
    "drain_seconds",
    "skipped",
)


def _notes(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{key} {_number(result[key]) if isinstance(result[key], float | int) else result[key]}"
        for key in _NOTE_KEYS
        if result.get(key) is not None
    )


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    server = machine.get("postgresql") or {}
    lines = [
        f"Run of {report['timestamp'][:16]} UTC, scale {report['parameters']['scale']}, "
        f"revision `{(report['git_revision'] or '?')[:12]}`: {machine['cpu_count']} cores "
        f"({machine['cpu_model']}), {machine.get('memory_gib')} GiB, {machine['python']}, "
        f"PostgreSQL {server.get('server_version', '?')}, SQLite {machine['sqlite']}, "
        f"Redis {machine.get('redis') or '?'}; CPUs "
        f"{_number(100 * (machine['cpu_busy_before_start'] or 0))} % busy before the run.",
        "",
        "| benchmark | scale | unit | pactledger | peer | peer value | ratio | notes |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for result in report["results"]:
        lines.append(
            f"| {result['name']} | {result['scale']} | {result['unit']} | "
            f"{_number(result['ours'])} | {result['peer'] or '–'} | "
            f"{_number(result['peer_value'])} | "
            f"{'–' if result['ratio'] is None else format(result['ratio'], ',.2f') + '×'} | "
            f"{_notes(result)} |"
        )
    if report["targets"]:
        lines += ["", "| target | scale | ratio | met |", "| --- | --- | ---: | --- |"]
        for target in report["targets"]:
            value = "–" if target["value"] is None else f"{target['value']:,.2f}×"
            verdict = "yes" if target["met"] else "**no**"
            lines.append(f"| {target['description']} | {target['scale']} | {value} | {verdict} |")
    return "\n".join(lines) + "\n"


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"pactledger benchmarks at {report['parameters']['scale']}")
    for column in ("benchmark", "scale", "unit", "pactledger", "peer", "peer value", "ratio"):
        right = column in ("pactledger", "peer value", "ratio")
        table.add_column(column, justify="right" if right else "left")
    for result in report["results"]:
        ratio = result["ratio"]
        table.add_row(
            result["name"],
            result["scale"],
            result["unit"],
            _number(result["ours"]),
            result["peer"] or "–",
            _number(result["peer_value"]),
            "–" if ratio is None else f"{ratio:,.2f}×",
        )
    console.print(table)
    for target in report["targets"]:
        verdict = "[green]met[/green]" if target["met"] else "[red]NOT met[/red]"
        value = "–" if target["value"] is None else f"{target['value']:,.2f}×"
        console.print(f"target {target['description']}: {value} → {verdict}", highlight=False)


def redis_version(url: str) -> str | None:
    try:
        import redis

        info = redis.Redis.from_url(url, socket_connect_timeout=2).info("server")
        return str(info.get("redis_version"))
    except Exception:
        return None


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = "\n".join(f"  {name:<14} {text}" for name, (_, text) in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="pactledger beside its peers, in one run on this machine.\n\n"
        f"benchmarks (default: all of them):\n{names}",
        epilog="examples:\n"
        "  python -m benchmarks --scale 10k              quick look, about 2 minutes\n"
        "  python -m benchmarks verify proofs --scale 100k\n"
        "  python -m benchmarks --json bench.json        + bench.md, bench-scale.png\n"
        "method and latest figures: docs/benchmarks.md",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run")
    parser.add_argument(
        "--scale",
        choices=list(SCALES),
        default="1m",
        help="entries in the shared ledger (default 1m; 10m is the optional long run)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT", help="write the results here, the table to OUT.md"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="where the scale curve goes (default: OUT-scale.png beside --json)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_ADMIN_URL,
        help="maintenance database, used only to create and drop the benchmark databases",
    )
    parser.add_argument(
        "--broker",
        default=DEFAULT_BROKER,
        help=f"the Celery broker of the projector burst (default {DEFAULT_BROKER})",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.names or list(BENCHMARKS)
    out, err, load_at_start, busy = start_run(False, wide=True)
    databases = Databases(args.postgres_url, err)
    results: Rows = []
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pactledger-benchmarks-") as directory:
        run = Run(args.scale, SCALES[args.scale], databases, Path(directory), args.broker, err)
        try:
            settings = databases.server_settings()
            for name in names:
                err.rule(f"{name} at {args.scale}")
                began = time.perf_counter()
                results += BENCHMARKS[name][0](run)
                timings[name] = round(time.perf_counter() - began, 1)
            points = [p.to_json() for p in run._ledger.points] if run._ledger else []
        finally:
            run.close()
            databases.drop_all()
    machine = machine_info(settings, load_at_start, busy)
    machine["memory_gib"] = api.memory_gib()
    machine["redis"] = redis_version(args.broker)
    for package in ("eventsourcing", "pymerkle", "aiohttp", "uvicorn", "celery", "matplotlib"):
        machine["packages"][package] = _version(package)
    report: dict[str, Any] = {
        "benchmark": "pactledger benchmarks",
        "timestamp": datetime.now(UTC).isoformat(),
        "git_revision": git_revision(),
        "parameters": {"scale": args.scale, "entries": SCALES[args.scale], "names": names},
        "machine": machine,
        "results": results,
        "targets": judge(results),
        "scale_curve": points,
        "seconds": {**timings, "total": round(time.perf_counter() - started, 1)},
    }
    render(report, out)
    table = markdown(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(table)
        out.print(f"results: {args.json} and {args.json.with_suffix('.md')}")
    plot_to = args.plot
    if plot_to is None and args.json is not None:
        plot_to = args.json.with_name(args.json.stem + "-scale.png")
    if plot_to is not None and len(points) > 1:
        scale.plot(points, plot_to, f"pactledger on PostgreSQL, 1 to {args.scale} entries")
        out.print(f"scale curve: {plot_to}")
    return 0
