"""Export a 1,000,000-entry scope to a regulator bundle and verify it: entries/s, peak memory.

    .venv/bin/python -m benchmarks.export                    # 1,000,000 entries (~3 min)
    .venv/bin/python -m benchmarks.export --entries 100000   # quick check
    .venv/bin/python -m benchmarks.export --json --out export.json

What it does, and what each figure means:

1. ``fill``: a fresh SQLite ledger (temporary directory, WAL, ``synchronous=FULL`` as
   ``make_engine`` sets it) gets ``--entries`` entries through the store's batch append
   (``SqlLogStore.append``, batches of ``--batch``; ~560 canonical bytes each, two tenants
   alternating 3:1, one ``request:<n>`` stream each), then one signed checkpoint. Not part of
   the figures.
2. ``export`` runs in a **child process** so that its peak RSS (``resource.getrusage``
   ``ru_maxrss``) is the export's own, not the fill's: ``pactledger export``'s use case
   (:func:`ledger.app.export.export_bundle`) for the whole log (every entry exported, no
   multiproof nodes), then again for one tenant (3 in 4 entries, a gap node after every
   fourth). Views are not projected here, so the reports are empty: the figure is the entries'
   path (scan, canonical bytes written through ``ZipFile.open(..., "w")``, hashing, spooling,
   multiproof). ``baseline`` is the child's RSS after imports and opening the store, before
   exporting.
3. ``verify`` runs :func:`ledger.bundle.verify.verify_bundle` on the whole-log bundle in
   another child process (no database), and reports the same figures.

entries/s = exported entries / wall seconds of the step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

ORIGIN = "bench.example/export"
START = datetime(2026, 10, 1, tzinfo=UTC)


def _peak_mib() -> float:
    """Peak RSS of this process: ``getrusage`` ``ru_maxrss`` (KiB on Linux). Linux carries
    ``ru_maxrss`` over ``fork`` + ``exec`` from the parent, so the parent of the measured
    children stays small (the fill runs in a child too) and ``VmHWM`` (the high-water mark
    of this process's own memory map, fresh at ``exec``) is reported beside it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def fill(directory: Path, entries: int, batch: int, console: Console) -> None:
    from ledger.app.keys import load_signer
    from ledger.app.service import Ledger
    from ledger.store.engine import make_engine, migrate
    from ledger.store.sql import SqlLogStore

    key = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
    (directory / "key.pem").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    (directory / "key.pem").chmod(0o600)  # load_signer refuses a key others can read
    engine = make_engine(f"sqlite:///{directory / 'ledger.db'}")
    migrate(engine)
    store = SqlLogStore(engine)
    store.initialize(ORIGIN)
    columns = (TextColumn("fill"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("fill", total=entries)
        for first in range(0, entries, batch):
            rows = [_entry(n) for n in range(first, min(first + batch, entries))]
            store.append(rows)
            bar.update(task, completed=first + len(rows))
    Ledger(store=store, signer=load_signer(directory / "key.pem", ORIGIN)).checkpoint()
    engine.dispose()


def _entry(n: int) -> dict[str, Any]:
    return {
        "type": "InferenceServed",
        "stream": f"request:r{n:09d}",
        "tenant": "globex" if n % 4 == 3 else "acme",
        "occurred_at": (START + timedelta(milliseconds=100 * n)).isoformat(),
        "payload": {
            "request_id": f"r{n:09d}",
            "model": "claude-sonnet-4-5",
            "provider": "aws",
            "region": "eu-central-1",
            "business_unit": "research",
            "application": "assistant",
            "input_tokens": 1000 + n % 997,
            "output_tokens": 200 + n % 311,
            "cost": f"{(n % 1000) / 10000:.4f}",
            "latency_ms": 100 + n % 900,
            "prompt_sha256": f"{n:064x}",
        },
    }


def export_child(directory: Path, tenant: str | None, out: Path) -> dict[str, Any]:
    return export_ledger(
        f"sqlite:///{directory / 'ledger.db'}", directory / "key.pem", ORIGIN, tenant, out
    )


def export_ledger(
    url: str, key: Path, origin: str, tenant: str | None, out: Path
) -> dict[str, Any]:
    """Export the ledger at ``url`` (every entry, or one tenant's) to ``out``, signed with
    ``key``; the figures of the step, this process's peak RSS included."""
    from ledger.app.export import ExportScope, export_bundle, load_private_key
    from ledger.app.keys import load_signer
    from ledger.events import default_catalogue
    from ledger.store.engine import make_engine
    from ledger.store.sql import SqlLogStore
    from ledger.store.views import SqlViewStore

    engine = make_engine(url)
    store = SqlLogStore(engine)
    store.head()
    baseline = _peak_mib()
    started = time.perf_counter()
    summary = export_bundle(
        store=store,
        views=SqlViewStore(engine),
        catalogue=default_catalogue(),
        signer=load_signer(key, origin),
        private_key=load_private_key(key),
        scope=ExportScope(tenants=None if tenant is None else [tenant]),
        out=out,
    )
    seconds = time.perf_counter() - started
    return {
        "step": f"export {'whole log' if tenant is None else 'tenant ' + tenant}",
        "entries": summary.entry_count,
        "multiproof_nodes": summary.multiproof_nodes,
        "seconds": round(seconds, 2),
        "entries_per_s": round(summary.entry_count / seconds),
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
        "vm_hwm_mib": _hwm_mib(),
        "bundle_mib": round(out.stat().st_size / 2**20, 1),
    }


def verify_child(bundle: Path) -> dict[str, Any]:
    from ledger.bundle.verify import verify_bundle

    baseline = _peak_mib()
    started = time.perf_counter()
    report = verify_bundle(bundle)
    seconds = time.perf_counter() - started
    count = int(report.manifest["entry_count"])
    return {
        "step": "verify whole log",
        "entries": count,
        "ok": report.ok,
        "seconds": round(seconds, 2),
        "entries_per_s": round(count / seconds),
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
        "vm_hwm_mib": _hwm_mib(),
    }


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.export", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "fill":
            directory, entries, batch = rest
            fill(Path(directory), int(entries), int(batch), Console(stderr=True))
            result = {"step": "fill", "entries": int(entries)}
        elif kind == "export":
            directory, tenant, out = rest
            result = export_child(Path(directory), tenant or None, Path(out))
        elif kind == "export-url":  # benchmarks.suite: a PostgreSQL ledger
            url, key, origin, out = rest
            result = export_ledger(url, Path(key), origin, None, Path(out))
        else:
            result = verify_child(Path(rest[0]))
        sys.stdout.write(json.dumps(result) + "\n")
        return
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="pactledger-export-bench-") as temporary:
        directory = Path(temporary)
        started = time.perf_counter()
        _child("fill", str(directory), str(args.entries), str(args.batch))
        console.print(f"filled {args.entries:,} entries in {time.perf_counter() - started:.0f} s")
        whole = directory / "whole.zip"
        rows = [
            _child("export", str(directory), "", str(whole)),
            _child("export", str(directory), "acme", str(directory / "acme.zip")),
            _child("verify", str(whole)),
        ]
    report = {"entries": args.entries, "python": sys.version.split()[0], "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table(title=f"Export bundle, {args.entries:,}-entry SQLite ledger")
    columns = ("step", "entries", "seconds", "entries/s", "baseline RSS", "peak RSS", "VmHWM")
    for column in columns:
        table.add_column(column, justify="left" if column == "step" else "right")
    for row in rows:
        table.add_row(
            row["step"],
            f"{row['entries']:,}",
            f"{row['seconds']:.1f}",
            f"{row['entries_per_s']:,}",
            f"{row['baseline_rss_mib']:.0f} MiB",
            f"{row['peak_rss_mib']:.0f} MiB",
            f"{row['vm_hwm_mib']:.0f} MiB" if row["vm_hwm_mib"] else "—",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
