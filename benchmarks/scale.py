"""The ledger every at-scale benchmark of ``python -m benchmarks`` reads, grown once, and the
scale curve measured while it grows.

:func:`grow_ledger` makes a fresh PostgreSQL ledger (migrated, initialised, the shipped
policies, a price list, an ingest and a viewer key, a signing key) and appends priced
``InferenceRouted`` entries through :meth:`SqlLogStore.append` in batches of 1,000, one
transaction each, timing each batch (validation, canonicalisation, hashing, Merkle nodes,
head, commit; the dicts are built before the clock starts). That timed fill is the
``batch-ingest`` row. Each time the log passes a size of the curve (10k, 30k, 100k, 300k,
1M, … up to the run's scale) growth pauses and three things are measured at that size:

* append cost per entry: the median batch time of the last ``WINDOW`` batches before the
  size, divided by the batch size (the local cost at that size, not an average since 0);
* inclusion proof time: ``PROOFS_PER_POINT`` proofs of random leaves against a checkpoint
  signed at that size (mean and p99, each proof checked against the signed root), read from
  PostgreSQL as a one-shot command proves, then from the in-memory copy of the hashes that
  ``pactledger serve`` proves from (:mod:`ledger.store.tree_cache`; its load time too);
* verification rate: the whole log audited from PostgreSQL (``Ledger.verify``), entries/s.

A flat append curve and a proof cost that grows with log2(size) are what an RFC 6962 log with
stored subtrees should show (from the database the round trip hides the log2 growth; the
in-memory proofs show it); the PNG plots all three.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.api import percentile, prepare_ledger, priced_entry
from benchmarks.ingest import Databases, new_progress
from ledger.app.keys import create_signing_key, load_signer
from ledger.app.service import Ledger
from ledger.integrity.note import NoteSigner
from ledger.store.sql import SqlLogStore

ORIGIN = "bench.example/api"  # benchmarks.api's server signs and checks with this origin
BATCH = 1_000
WINDOW = 20  # batches before each curve size whose median is the append cost there
PROOFS_PER_POINT = 1_000
CURVE = (10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)


@dataclass
class ScalePoint:
    size: int  # entries in the log (the fill's stop plus the set-up entries)
    entries: int  # the fill's stop: 10,000, 30,000, …
    append_us_per_entry: float
    proof_us_mean: float  # read from PostgreSQL, as one-shot commands prove
    proof_us_p99: float
    memory_proof_us_mean: float  # from the in-memory copy, as `pactledger serve` proves
    memory_proof_us_p99: float
    copy_load_seconds: float  # loading that copy: its first proof
    verify_entries_per_s: float
    verify_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {key: round(value, 2) for key, value in self.__dict__.items()}


def time_proofs(ledger: Ledger, size: int, root: bytes, count: int, seed: int) -> list[float]:
    """Seconds of each of ``count`` inclusion proofs of random leaves at ``size``, each
    checked against ``root``, in ascending order."""
    rng = random.Random(seed)
    latencies = []
    for _ in range(count):
        seq = rng.randrange(size)
        began = time.perf_counter()
        proof = ledger.prove_inclusion(seq, size=size)
        latencies.append(time.perf_counter() - began)
        if proof.root_hash != root:
            raise RuntimeError(f"the proof of seq {seq} does not reach the root at {size}")
    proof.verify()
    return sorted(latencies)


@dataclass
class GrownLedger:
    """A PostgreSQL ledger of ``setup + filled`` entries, with a checkpoint at its head."""

    url: str
    store: SqlLogStore
    signer: NoteSigner
    signing_key: Path
    ingest_key: str
    viewer_key: str
    setup: int
    filled: int
    batch_times: list[float] = field(default_factory=list)
    points: list[ScalePoint] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        return Ledger(store=self.store, signer=self.signer)

    @property
    def size(self) -> int:
        return self.setup + self.filled

    @property
    def events_per_s(self) -> float:
        return self.filled / sum(self.batch_times)


def measure_point(
    grown: GrownLedger, entries: int, batches_before: list[float], console: Console
) -> ScalePoint:
    """Append cost, proof time (database and in-memory copy) and verification rate at the
    ledger's current size."""
    ledger = grown.ledger
    record = ledger.checkpoint()
    size, root = record.tree_size, record.root_hash
    window = sorted(batches_before[-WINDOW:])
    from_database = time_proofs(ledger, size, root, PROOFS_PER_POINT, seed=size)
    copy = SqlLogStore(grown.store.engine, tree_cache=size)
    try:
        served = Ledger(store=copy)
        began = time.perf_counter()
        served.prove_inclusion(0, size=size)  # loads the copy
        load_s = time.perf_counter() - began
        from_memory = time_proofs(served, size, root, PROOFS_PER_POINT, seed=size)
    finally:
        copy.close()
    began = time.perf_counter()
    report = ledger.verify()
    verify_s = time.perf_counter() - began
    if report.size != size:
        raise RuntimeError(f"verify audited {report.size} entries, not {size}")
    point = ScalePoint(
        size=size,
        entries=entries,
        append_us_per_entry=1e6 * statistics.median(window) / BATCH,
        proof_us_mean=1e6 * statistics.fmean(from_database),
        proof_us_p99=1e6 * percentile(from_database, 0.99),
        memory_proof_us_mean=1e6 * statistics.fmean(from_memory),
        memory_proof_us_p99=1e6 * percentile(from_memory, 0.99),
        copy_load_seconds=load_s,
        verify_entries_per_s=size / verify_s,
        verify_seconds=verify_s,
    )
    console.print(
        f"  at {size:,} entries: append {point.append_us_per_entry:.1f} µs/entry; proof "
        f"{point.proof_us_mean:.0f} µs from the database, {point.memory_proof_us_mean:.0f} µs "
        f"from memory (copy loaded in {load_s:.2f} s); verify "
        f"{point.verify_entries_per_s:,.0f} entries/s",
        highlight=False,
    )
    return point


def grow_ledger(databases: Databases, directory: Path, size: int, console: Console) -> GrownLedger:
    """A fresh ledger grown to ``size`` fill entries (plus its set-up entries), measured at
    every size of :data:`CURVE` it passes, with a checkpoint signed at the end."""
    url = databases.create()
    store, ingest_key, viewer_key = prepare_ledger(url)
    signing_key = directory / "signing-key.pem"
    create_signing_key(signing_key)
    grown = GrownLedger(
        url=url,
        store=store,
        signer=load_signer(signing_key, ORIGIN),
        signing_key=signing_key,
        ingest_key=ingest_key,
        viewer_key=viewer_key,
        setup=store.head().size,
        filled=0,
    )
    stops = [point for point in CURVE if point < size] + [size]
    databases.settle()
    console.print(f"growing a PostgreSQL ledger to {size:,} entries, measuring at each size …")
    with new_progress(console) as progress:
        task = progress.add_task("pactledger", total=size, rate="")
        for stop in stops:
            while grown.filled < stop:
                count = min(BATCH, stop - grown.filled)
                dicts = [priced_entry("f", grown.filled + i) for i in range(count)]
                began = time.perf_counter()
                receipts = store.append(dicts)
                grown.batch_times.append(time.perf_counter() - began)
                if len(receipts) != count:
                    raise RuntimeError(f"{len(receipts)} receipts for {count} entries")
                grown.filled += count
                rate = f"{grown.filled / sum(grown.batch_times):,.0f}/s"
                progress.update(task, advance=count, rate=rate)
            if stop in CURVE or stop == size:
                progress.stop()
                grown.points.append(measure_point(grown, stop, grown.batch_times, console))
                progress.start()
    if store.head().size != grown.size:
        raise RuntimeError(f"the log holds {store.head().size} entries, not {grown.size}")
    return grown


def plot(points: list[dict[str, Any]], out: Path, title: str) -> None:
    """Three panels over log-scaled ledger size: append µs/entry, proof µs (mean and p99,
    with a log2 guide), verification entries/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p["size"] for p in points]
    figure, (append, proof, verify) = plt.subplots(1, 3, figsize=(13, 4.2))
    append.plot(sizes, [p["append_us_per_entry"] for p in points], "o-", color="tab:blue")
    append.set_title("append cost per entry (batches of 1,000)")
    append.set_ylabel("µs per entry")
    append.set_ylim(bottom=0, top=max(p["append_us_per_entry"] for p in points) * 1.5)
    proof.plot(
        sizes, [p["proof_us_mean"] for p in points], "o-", label="database, mean", color="tab:green"
    )
    proof.plot(
        sizes,
        [p["memory_proof_us_mean"] for p in points],
        "o-",
        label="in-memory copy, mean",
        color="tab:purple",
    )
    first = points[0]
    guide = [first["memory_proof_us_mean"] * math.log2(s) / math.log2(first["size"]) for s in sizes]
    proof.plot(sizes, guide, ":", color="grey", label="∝ log2(size)")
    proof.set_title("inclusion proof")
    proof.set_ylabel("µs per proof (log scale)")
    proof.set_yscale("log")
    proof.legend()
    verify.plot(sizes, [p["verify_entries_per_s"] for p in points], "o-", color="tab:red")
    verify.set_title("full verification")
    verify.set_ylabel("entries per second")
    verify.set_ylim(bottom=0, top=max(p["verify_entries_per_s"] for p in points) * 1.3)
    for axis in (append, proof, verify):
        axis.set_xscale("log")
        axis.set_xlabel("entries in the ledger")
        axis.grid(True, which="both", alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
