"""Projector throughput and lag on PostgreSQL: entries projected per second per worker, and
how far the views fall behind a burst of appends.

What it measures, in one run, on one PostgreSQL server on this machine (defaults in brackets):

1. ``ingest/batch`` — the burst itself: ``--entries`` [100,000] entries of a realistic mixed
   workload appended through :meth:`Ledger.append` (admission included: catalogue
   validation, pricing from the published price list, policy citations checked) in batches
   of ``--batch`` [1,000], one transaction per batch, with no projection triggered (the
   ledger's ``after_append`` is unset). Entries/s = entries / the sum of the timed
   ``append`` calls.
2. ``project/catch-up`` — then this process catches all four projectors (``compliance``,
   ``chargeback``, ``provenance``, ``capacity``) up from nothing over that log with
   :meth:`Projectors.catch_up` (``projectors_for(engine, batch_size=--batch)``), timed: one
   call, which is what a worker's task does (the four projectors share each batch: one
   transaction reads and decodes the entries once and writes all four views). Entries/s = log
   entries / seconds — entries brought up to date in *all four* views per second by one
   worker process (one Celery task, concurrency 1): "entries projected per second per
   worker". Then, for where the time goes, each projector alone: a timed
   :meth:`Projectors.rebuild` of it from seq 0 (its entries/s and share are reported, not
   judged).
3. ``project/burst-lag`` — a second burst of the same entries into a fresh ledger while a real
   ``pactledger worker`` process (Celery, ``--concurrency 1``, on the broker of ``--broker``
   [``redis://127.0.0.1:6379/15``], a queue of its own) projects: the ledger's
   ``after_append`` is :func:`~ledger.app.dispatch.celery_trigger`, so each batch's commit
   sends ``pactledger.project``. Every 0.5 s a thread of this process reads
   :meth:`Projectors.status` and records the lag (the largest over the projectors of
   ``lag_entries`` and of ``lag_seconds``, the age of the oldest entry not yet projected).
   Reported: the largest lag seen during the burst, the lag at the end of the burst, and the
   drain time from the end of the burst until every projector is at the head (polled every
   50 ms). If the broker cannot be reached the row is skipped with a note (exit status 0).

Before each row PostgreSQL is asked to ``CHECKPOINT``. Every row reports the CPU it cost per
entry: this process's, the PostgreSQL backends' connected to the row's database (from
``/proc``; the WAL writer and checkpointer are not counted) and, for row 3, the worker's (its
main process and pool process). With everything on one machine that says where the time went.

The workload (fixed seed, deterministic ids ``req-0000001``/``dec-0000001``): requests of four
tenants (US, EU with personal and health data, a government tenant, APAC); for about 85 % of
them a ``ResidencyDecided`` made with the shipped policies (``PolicySet.decide``) on the
request's stream, then, unless it was denied, one ``InferenceRouted`` where the decision
placed it (a few retried after an error, a few refused, a few served elsewhere or though
denied); requests without a decision are routed where they asked. Routed entries carry no
cost: admission prices them. Routings in four capacity tranches' locations name the tranche
once it is delivered, and the tranches' own events (contract, deliveries, a delay, an SLA
credit, a retirement) are spread through the burst. The log also holds the shipped policies
and the price list, appended before any timing (``setup_entries`` in the report). The entry
dicts are built before any timing and held in memory; the collector is told to ignore them
(``gc.freeze``), so collections cost what they would in a process that streams its input.

Target (issue: "a worker projects faster than the batch ingest rate of the same run"):
``project/catch-up`` entries/s >= ``ingest/batch`` entries/s. Printed as met / NOT met, in the
JSON ``targets``; the script exits 0 either way.

Checks that abort the run, after the catch-up and again after the burst's drain: every
projector is at the head with no error; ``view_provenance`` holds one row per entry that has a
request id; the ``requests`` of ``view_chargeback`` add up to the number of ``InferenceRouted``
entries.

Guarantees: the script only creates databases named ``pactledger_bench_<12 hex digits>`` and
drops every one it created (``DROP DATABASE ... WITH (FORCE)``) before it exits, on success, on
an error, on Ctrl-C and on SIGTERM; the worker runs in a process group of its own and the
whole group is terminated (then killed) whatever happens; its queue is deleted from the broker;
its log lives in a temporary directory that is removed. Pactledger's code is used as it is.

Run it from the repository root::

    .venv/bin/python -m benchmarks.projectors                     # full run (about a minute)
    .venv/bin/python -m benchmarks.projectors --entries 5000      # quick check
    .venv/bin/python -m benchmarks.projectors --broker none       # rows 1 and 2 only
    .venv/bin/python -m benchmarks.projectors --json --out projectors.json
    .venv/bin/python -m benchmarks.projectors --entries 2000 --broker none \\
        --profile prof --profile-entries 20000                   # cProfile each projector

The PostgreSQL server comes from ``--postgres-url`` or ``PACTLEDGER_BENCH_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``, a maintenance database).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import os
import pstats
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

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
from ledger.app.governance import decision_entry, publish_policies
from ledger.app.projection import PROJECTORS, Projectors, ProjectorStatus
from ledger.app.service import Ledger
from ledger.compose import projectors_for
from ledger.log.entry import format_time
from ledger.policy import Facts, PolicySet, load_policy_set
from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore

ORIGIN = "bench.example/projectors"
SEED = 1917
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/15"
NO_BROKER = "none"
SAMPLE_EVERY_S = 0.5
DRAIN_POLL_S = 0.05
WORKER_READY_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = 900.0
TARGET_RATIO = 1.0

INGEST_ROW = "ingest/batch"
CATCH_UP_ROW = "project/catch-up"
BURST_ROW = "project/burst-lag"

START = datetime(2026, 3, 2, tzinfo=UTC)  # after the price list takes effect
STEP = timedelta(seconds=4)  # occurred_at of entry i is START + i * STEP: 100,000 span 4.6 days
PRICE_LIST_ID = "bench-projectors-2026"
RATES = {  # model: (tier, input, output, cached input) USD per million tokens
    "claude-sonnet-4-5": ("sonnet", "3", "15", "0.30"),
    "claude-haiku-4-5": ("haiku", "1", "5", "0.10"),
    "claude-opus-4-1": ("opus", "15", "75", "1.50"),
}
MODEL_WEIGHTS = (50, 35, 15)


@dataclass(frozen=True)
class Tenant:
    name: str
    weight: int
    locations: tuple[tuple[str, str], ...]  # candidate (provider, region), drawn uniformly
    data_classes: tuple[tuple[str, ...], ...]
    transfer_bases: tuple[str, ...]
    charge_to: tuple[tuple[str, str, str], ...]  # business unit, cost centre, application


def _places(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((p, r) for p, r in (word.split("/") for word in text.split()))


def _charges(text: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((u, c, a) for u, c, a in (item.split() for item in text.split(",")))


TENANTS = (
    Tenant(
        "acme",
        5,
        _places("aws/us-east-1 aws/us-west-2 azure/eastus2 gcp/us-east5 gcp/us-central1"),
        (("internal",), ("internal", "source_code")),
        ("none",),
        _charges("research cc-4410 contract-review, engineering cc-5120 code-assist"),
    ),
    Tenant(
        "globex",
        4,
        _places(
            "aws/eu-central-1 aws/eu-west-1 gcp/europe-west1 azure/swedencentral aws/us-east-1"
        ),
        (("eu_personal",), ("eu_personal",), ("eu_personal", "health"), ("internal",)),
        ("none", "none", "none", "scc"),
        _charges("retail cc-100 customer-chat, hr cc-210 cv-screening, finance cc-330 invoices"),
    ),
    Tenant(
        "us-federal",
        2,
        _places("aws/us-gov-west-1 aws/us-gov-east-1 aws/us-east-1"),
        (("internal",), ("government",)),
        ("none",),
        _charges("benefits cc-fed-01 case-summary, records cc-fed-02 foia-redaction"),
    ),
    Tenant(
        "initech",
        2,
        _places("aws/ap-northeast-1 aws/ap-southeast-2 gcp/asia-southeast1"),
        (("internal",),),
        ("none",),
        _charges("sales cc-7001 lead-scoring, ops cc-7002 ticket-routing"),
    ),
)


@dataclass(frozen=True)
class Tranche:
    tranche_id: str
    tenant: str
    provider: str
    region: str
    rack_family: str
    racks: int
    gpus: int
    price_per_gpu_hour: str
    # (fraction of the burst at which it happens, event type, payload fields)
    events: tuple[tuple[float, str, dict[str, Any]], ...]


TRANCHES = (
    Tranche(
        "tr-acme-use1-01", "acme", "aws", "us-east-1", "gb200-nvl72", 8, 576, "3.40",
        (
            (0.005, "TrancheContracted", {}),
            (0.03, "TrancheDelivered", {"racks_delivered": 4, "gpus_delivered": 288}),
            (0.30, "TrancheDelivered", {"racks_delivered": 4, "gpus_delivered": 288}),
            (0.60, "TrancheCreditAssessed", {}),
        ),
    ),
    Tranche(
        "tr-globex-euc1-01", "globex", "aws", "eu-central-1", "gb300-nvl72", 6, 432, "4.10",
        (
            (0.01, "TrancheContracted", {}),
            (0.05, "TrancheDelivered", {"racks_delivered": 2, "gpus_delivered": 144}),
            (0.20, "TrancheDelayed", {}),
            (0.50, "TrancheDelivered", {"racks_delivered": 4, "gpus_delivered": 288}),
        ),
    ),
    Tranche(
        "tr-usfed-govw-01", "us-federal", "aws", "us-gov-west-1", "gb200-nvl72", 4, 288, "4.60",
        (
            (0.015, "TrancheContracted", {}),
            (0.10, "TrancheDelivered", {"racks_delivered": 4, "gpus_delivered": 288}),
            (0.80, "TrancheRetired", {"racks_retired": 1, "reason": "Failed rack"}),
        ),
    ),
    Tranche(
        "tr-initech-apne1-01", "initech", "aws", "ap-northeast-1", "gb300-nvl72", 3, 214, "4.25",
        (
            (0.02, "TrancheContracted", {}),
            (0.08, "TrancheDelivered", {"racks_delivered": 3, "gpus_delivered": 214}),
        ),
    ),
)  # fmt: skip


# --- the workload ---------------------------------------------------------------------------


def price_list(policies: PolicySet) -> dict[str, Any]:
    """One price list for every model on every provider of the region catalogue (a decision
    may reroute anywhere in it), effective well before the burst."""
    providers = sorted({info.provider for info in policies.catalogue.regions})
    return {
        "type": "PriceListPublished",
        "stream": f"price-list:{PRICE_LIST_ID}",
        "tenant": "governance",
        "payload": {
            "price_list_id": PRICE_LIST_ID,
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "prices": [
                {
                    "model": model,
                    "provider": provider,
                    "input_per_million": rate[1],
                    "output_per_million": rate[2],
                    "cached_input_per_million": rate[3],
                }
                for model, rate in RATES.items()
                for provider in providers
            ],
        },
    }


def _tranche_entry(tranche: Tranche, event_type: str, fields: dict[str, Any], at: datetime) -> Any:
    when = format_time(at)
    payload: dict[str, Any] = {"tranche_id": tranche.tranche_id}
    if event_type == "TrancheContracted":
        committed = Decimal(tranche.gpus) * Decimal(tranche.price_per_gpu_hour) * 24 * 365
        payload.update(
            provider=tranche.provider,
            region=tranche.region,
            rack_family=tranche.rack_family,
            racks=tranche.racks,
            gpus=tranche.gpus,
            power_mw="1.056",
            committed_usd=format(committed, "f"),
            price_per_gpu_hour=tranche.price_per_gpu_hour,
            milestones=[{"name": "m1", "due": format_time(at + timedelta(days=2)), "racks": 4}],
            sla={
                "reference_workload": "chat-2k-512",
                "min_tokens_per_s_per_gpu": "1800",
                "credit_rate": "0.10",
            },
        )
    elif event_type == "TrancheDelivered":
        payload.update(fields, delivered_at=when, milestone="m1")
    elif event_type == "TrancheDelayed":
        payload.update(
            milestone="m1",
            original_due=format_time(at - timedelta(days=1)),
            new_due=format_time(at + timedelta(days=3, hours=12)),
            reason="Liquid-cooling manifolds back-ordered",
        )
    elif event_type == "TrancheCreditAssessed":
        payload.update(
            period_start=format_time(at - timedelta(days=2)),
            period_end=format_time(at - timedelta(days=1)),
            expected_tokens_per_s_per_gpu="1850",
            observed_tokens_per_s_per_gpu="1702",
            shortfall="0.08",
            credit_usd="9216.00",
        )
    elif event_type == "TrancheRetired":
        payload.update(fields, retired_at=when)
    return {
        "type": event_type,
        "stream": f"tranche:{tranche.tranche_id}",
        "tenant": tranche.tenant,
        "occurred_at": when,
        "payload": payload,
    }


@dataclass(frozen=True)
class Workload:
    """The burst: entry dicts as :meth:`Ledger.append` takes them, and what they hold."""

    dicts: list[dict[str, Any]]
    counts: dict[str, int]  # entries per type
    requests: int  # distinct request ids
    with_request_id: int  # entries about a request: what view_provenance must index

    def describe(self) -> str:
        mix = ", ".join(f"{name} {n:,}" for name, n in sorted(self.counts.items()))
        return f"{len(self.dicts):,} entries ({mix}) about {self.requests:,} requests"


class _Requests:
    """Draws the entries of one request after another (deterministic for a seed)."""

    def __init__(self, policies: PolicySet, rng: random.Random) -> None:
        self.policies, self.rng = policies, rng
        self.delivered: set[str] = set()  # tranches whose racks may be named by now
        self.count = 0

    def next(self, at: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        self.count += 1
        index = self.count
        tenant = rng.choices(TENANTS, weights=[t.weight for t in TENANTS])[0]
        model = rng.choices(tuple(RATES), weights=MODEL_WEIGHTS)[0]
        provider, region = rng.choice(tenant.locations)
        facts = Facts(
            tenant.name,
            rng.choice(tenant.data_classes),
            provider,
            region,
            RATES[model][0],
            rng.choice(tenant.transfer_bases),
        )
        request_id, decision_id = f"req-{index:07d}", f"dec-{index:07d}"
        made: list[dict[str, Any]] = []
        roll = rng.random()
        if roll < 0.85:  # decided, then (mostly) served where the decision placed it
            decision = self.policies.decide(facts)
            made.append(
                decision_entry(
                    facts,
                    decision,
                    request_id=request_id,
                    decision_id=decision_id,
                    occurred_at=format_time(at),
                )
            )
            if decision.outcome == "deny":
                places = [(provider, region, "ok")] if rng.random() < 0.1 else []
            else:
                chosen = (decision.chosen_provider or provider, decision.chosen_region or region)
                places = [(*chosen, "ok")]
                fate = rng.random()
                if fate < 0.04:
                    places.insert(0, (*chosen, rng.choice(("error", "timeout"))))
                elif fate < 0.06:
                    places = [(*chosen, "refused")]
                elif fate < 0.075:
                    places = [(*rng.choice(tenant.locations), "ok")]  # maybe elsewhere
        else:  # served without a decision
            places = [(provider, region, "ok")]
            decision_id = ""
        charge = rng.choice(tenant.charge_to)
        for k, (where, place, status) in enumerate(places):
            when = at + timedelta(milliseconds=300 + 900 * k + rng.randrange(0, 900))
            made.append(
                self._routed(request_id, decision_id, tenant, model, charge, where, place, status)
            )
            made[-1]["occurred_at"] = format_time(when)
        return made

    def _routed(
        self,
        request_id: str,
        decision_id: str,
        tenant: Tenant,
        model: str,
        charge: tuple[str, str, str],
        provider: str,
        region: str,
        status: str,
    ) -> dict[str, Any]:
        rng = self.rng
        input_tokens = rng.randint(300, 24_000)
        payload: dict[str, Any] = {
            "request_id": request_id,
            "business_unit": charge[0],
            "cost_center": charge[1],
            "application": charge[2],
            "model_tier": RATES[model][0],
            "model": model,
            "provider": provider,
            "region": region,
            "input_tokens": input_tokens,
            "output_tokens": 0 if status == "refused" else rng.randint(40, 3_000),
            "status": status,
            "latency_ms": rng.randint(150, 30_000),
        }
        if status != "refused" and rng.random() < 0.3:
            payload["cached_tokens"] = rng.randint(0, input_tokens // 2)
        if decision_id:
            payload["decision_id"] = decision_id
        for tranche in TRANCHES:
            if (
                status == "ok"
                and tranche.tranche_id in self.delivered
                and (tranche.tenant, tranche.provider, tranche.region)
                == (tenant.name, provider, region)
                and rng.random() < 0.7
            ):
                payload["tranche_id"] = tranche.tranche_id
                payload["rack_family"] = tranche.rack_family
        return {
            "type": "InferenceRouted",
            "stream": f"request:{request_id}",
            "tenant": tenant.name,
            "payload": payload,
        }


def build_workload(count: int, policies: PolicySet, *, seed: int = SEED) -> Workload:
    """``count`` entries, in append order: requests, with the tranches' events at their
    fraction of the burst."""
    rng = random.Random(seed)
    requests = _Requests(policies, rng)
    scheduled = sorted(
        (fraction, n, tranche, event_type, fields)
        for n, tranche in enumerate(TRANCHES)
        for fraction, event_type, fields in tranche.events
    )
    dicts: list[dict[str, Any]] = []
    while len(dicts) < count:
        at = START + STEP * len(dicts)
        while scheduled and scheduled[0][0] * count <= len(dicts):
            _, _, tranche, event_type, fields = scheduled.pop(0)
            dicts.append(_tranche_entry(tranche, event_type, fields, at))
            if event_type == "TrancheDelivered":
                requests.delivered.add(tranche.tranche_id)
        dicts.extend(requests.next(at))
    del dicts[count:]
    counts = Counter(entry["type"] for entry in dicts)
    about = [
        entry["payload"].get("request_id") or entry["stream"].removeprefix("request:")
        for entry in dicts
        if "request_id" in entry["payload"] or entry["stream"].startswith("request:")
    ]
    return Workload(dicts, dict(counts), len(set(about)), len(about))


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- CPU ------------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> tuple[float, int] | None:
    """(user + system CPU seconds, parent pid) of a process, from ``/proc``; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rpartition(")")[2].split()  # after "pid (comm)": state, ppid, ...
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[1])


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of process ``pid`` and its children (a Celery worker and its pool)."""
    own = _proc_cpu(pid)
    if own is None:
        return None
    total = own[0]
    for entry in Path("/proc").glob("[0-9]*"):
        child = _proc_cpu(int(entry.name))
        if child is not None and child[1] == pid:
            total += child[0]
    return total


class CpuMeter:
    """CPU spent during one row by this process, by the PostgreSQL backends connected to the
    row's database (their pids from ``pg_stat_activity``; a backend that starts during the
    row counts from zero) and, optionally, by a worker process tree."""

    def __init__(self, admin_url: str, database: str, worker_pid: int | None = None) -> None:
        self.admin_url, self.database, self.worker_pid = admin_url, database, worker_pid
        self.process = time.process_time()
        self.backends = self._backends()
        self.worker = tree_cpu(worker_pid) if worker_pid else None

    def _backends(self) -> dict[int, float] | None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
                )
            ]
        found = {pid: cpu[0] for pid in pids if (cpu := _proc_cpu(pid)) is not None}
        return found if found or not pids else None  # pids but no /proc: another machine

    def per_entry(self, entries: int) -> dict[str, Any]:
        """CPU milliseconds per entry since the meter was made."""
        process = time.process_time() - self.process
        now = self._backends()
        backends = None
        if now is not None and self.backends is not None:
            backends = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in now.items())
        worker = None
        if self.worker_pid is not None and self.worker is not None:
            current = tree_cpu(self.worker_pid)
            worker = None if current is None else current - self.worker

        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(1000 * seconds / entries, 4)

        return {
            "cpu_ms_per_entry": ms(process),
            "postgres_cpu_ms_per_entry": ms(backends),
            "worker_cpu_ms_per_entry": ms(worker),
        }


# --- ledgers --------------------------------------------------------------------------------


def database_name(url: str) -> str:
    return url.rpartition("/")[2]


def prepare_ledger(url: str, policies: PolicySet) -> tuple[Engine, int]:
    """Migrate and initialise a fresh database, publish the shipped policies and the price
    list; returns the engine and how many entries that took."""
    engine = make_engine(url)
    migrate(engine)
    store = SqlLogStore(engine)
    store.initialize(ORIGIN)
    ledger = Ledger(store=store)
    publish_policies(ledger, policies)
    ledger.append([price_list(policies)])
    return engine, store.head().size


def append_burst(
    ledger: Ledger, workload: Workload, batch: int, name: str, console: Console
) -> list[float]:
    """Append the workload in batches; the seconds of each ``append`` call."""
    times: list[float] = []
    with new_progress(console) as progress:
        task = progress.add_task(name, total=len(workload.dicts), rate="")
        for chunk in batches(workload.dicts, batch):
            began = time.perf_counter()
            receipts = ledger.append(chunk)
            times.append(time.perf_counter() - began)
            if len(receipts) != len(chunk) or any(r.duplicate for r in receipts):
                raise RuntimeError(f"{name}: {len(chunk)} entries appended, receipts say not")
            done = progress.tasks[0].completed + len(chunk)
            progress.update(task, advance=len(chunk), rate=f"{done / sum(times):,.0f}/s")
    return times


def check_views(engine: Engine, projectors: Projectors, workload: Workload, what: str) -> str:
    """Abort unless every projector is at the head and the views count what the log holds."""
    statuses = projectors.status()
    size = projectors.views.log_size()
    behind = {s.name: s.position for s in statuses if s.position != size - 1 or s.error}
    if behind:
        raise RuntimeError(f"{what}: projectors not at the head seq {size - 1}: {behind}")
    with engine.connect() as conn:
        provenance = conn.execute(text("SELECT count(*) FROM view_provenance")).scalar_one()
        requests = conn.execute(
            text("SELECT coalesce(sum(requests), 0) FROM view_chargeback")
        ).scalar_one()
    routed = workload.counts.get("InferenceRouted", 0)
    if provenance != workload.with_request_id:
        raise RuntimeError(
            f"{what}: view_provenance has {provenance} rows, expected {workload.with_request_id}"
        )
    if int(requests) != routed:
        raise RuntimeError(f"{what}: view_chargeback counts {requests} requests, expected {routed}")
    return (
        f"all {len(statuses)} projectors at seq {size - 1}; view_provenance {provenance:,} rows; "
        f"view_chargeback {int(requests):,} requests"
    )


# --- rows 1 and 2: ingest, then catch-up in this process -------------------------------------


@dataclass
class IngestResult:
    entries: int
    batch_times: list[float]
    cpu: dict[str, Any]

    @property
    def seconds(self) -> float:
        return sum(self.batch_times)

    @property
    def rate(self) -> float:
        return self.entries / self.seconds


@dataclass
class CatchUpResult:
    entries: int  # the log size: entries each projector moved over
    seconds: float
    cpu: dict[str, Any]
    projectors: dict[str, dict[str, Any]]
    checks: str

    @property
    def rate(self) -> float:
        return self.entries / self.seconds


def run_ingest_and_catch_up(
    databases: Databases,
    workload: Workload,
    policies: PolicySet,
    batch: int,
    console: Console,
) -> tuple[IngestResult, CatchUpResult, int]:
    url = databases.create()
    engine, setup = prepare_ledger(url, policies)
    try:
        ledger = Ledger(store=SqlLogStore(engine))  # no after_append: nothing is projected
        databases.settle()
        meter = CpuMeter(databases.admin_url, database_name(url))
        times = append_burst(ledger, workload, batch, INGEST_ROW, console)
        ingest = IngestResult(len(workload.dicts), times, meter.per_entry(len(workload.dicts)))

        projectors = projectors_for(engine, batch_size=batch)
        size = ledger.head().size
        databases.settle()
        total = CpuMeter(databases.admin_url, database_name(url))
        console.print(f"{CATCH_UP_ROW}: {len(PROJECTORS)} projectors over {size:,} entries …")
        began = time.perf_counter()
        results = projectors.catch_up()  # what a worker's task does: all four, shared batches
        seconds = time.perf_counter() - began
        for result in results:
            if result.busy or result.projected != size or result.position != size - 1:
                raise RuntimeError(f"{CATCH_UP_ROW}: {result.name} ended with {result}")
        cpu = total.per_entry(size)
        # Each projector alone, for where the time goes: a rebuild projects that one from 0.
        per_projector: dict[str, dict[str, Any]] = {}
        for name in PROJECTORS:
            meter = CpuMeter(databases.admin_url, database_name(url))
            began = time.perf_counter()
            projectors.rebuild(name)
            took = time.perf_counter() - began
            per_projector[name] = {
                "seconds": round(took, 3),
                "entries_per_s": round(size / took, 1),
                "share": 0.0,
                **meter.per_entry(size),
            }
            console.print(
                f"  {name} alone (rebuild): {took:.2f} s, {size / took:,.0f} entries/s",
                highlight=False,
            )
        alone = sum(info["seconds"] for info in per_projector.values())
        for info in per_projector.values():
            info["share"] = round(info["seconds"] / alone, 3)
        checks = check_views(engine, projectors, workload, CATCH_UP_ROW)
        return ingest, CatchUpResult(size, seconds, cpu, per_projector, checks), setup
    finally:
        engine.dispose()


# --- row 3: a burst while a Celery worker projects -------------------------------------------


def broker_connection(url: str) -> Any:
    """A kombu connection to the broker (kombu comes with celery, a dependency)."""
    from kombu import Connection  # type: ignore[attr-defined]

    return Connection(url, connect_timeout=3)  # type: ignore[no-untyped-call]


def broker_problem(url: str) -> str | None:
    """Why the broker at ``url`` cannot be used, or None when it answers."""
    try:
        with broker_connection(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # whatever the transport raises, the broker is not usable
        return f"the broker {url} is not reachable: {type(exc).__name__}: {exc}"
    return None


def forget_queue(url: str, queue: str) -> None:
    """Delete the run's queue from the broker, with what a stopped worker left unacked."""
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(match=f"*{queue}*"):
                client.delete(key)
            for tag, value in client.hgetall("unacked").items():
                body = value.decode(errors="replace") if isinstance(value, bytes) else value
                if queue in body:
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
        finally:
            client.close()
        return
    with broker_connection(url) as conn:
        channel = conn.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)


class Worker:
    """``pactledger worker --concurrency 1`` on its own queue, in a process group of its own."""

    def __init__(self, database_url: str, broker_url: str, queue: str, batch: int, log: Path):
        self.log = log
        env = {
            **os.environ,
            "PACTLEDGER_DATABASE_URL": database_url,
            "PACTLEDGER_BROKER_URL": broker_url,
            "PACTLEDGER_PROJECT_BATCH": str(batch),
        }
        command = [sys.executable, "-c", "from ledger.cli.main import app; app()", "worker"]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, "--queues", queue, "--concurrency", "1", "--loglevel", "info"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us; we stop it and its pool ourselves
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the worker exited with status {self.process.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def problems(self) -> int:
        """Lines of the worker's log that report an error."""
        try:
            body = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in body.splitlines() if "ERROR" in line or "Traceback" in line)

    def stop(self) -> None:
        """SIGTERM to the whole group (warm shutdown), SIGKILL to whatever is left."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def lag_of(statuses: Sequence[ProjectorStatus]) -> tuple[int, float]:
    """The largest lag over the projectors, in entries and in seconds."""
    return max(s.lag_entries for s in statuses), max(s.lag_seconds for s in statuses)


@dataclass
class LagSampler:
    """A thread that records the projectors' lag every :data:`SAMPLE_EVERY_S` seconds."""

    projectors: Projectors
    began: float
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # t, entries, s
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                entries, seconds = lag_of(self.projectors.status())
            except Exception as exc:  # reported by stop(); the burst must not hang on it
                self.errors.append(exc)
                return
            self.samples.append((time.perf_counter() - self.began, entries, seconds))
            self._stop.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.errors:
            raise RuntimeError(f"the lag sampler failed: {self.errors[0]}")


def wait_for_head(projectors: Projectors, worker: Worker, timeout: float) -> float:
    """Poll until every projector is at the head; the seconds it took."""
    began = time.perf_counter()
    while True:
        statuses = projectors.status()
        if all(s.lag_entries == 0 for s in statuses):
            return time.perf_counter() - began
        worker.check_alive()
        if time.perf_counter() - began > timeout:
            raise RuntimeError(
                f"the worker did not catch up within {timeout:.0f} s: "
                f"{[s.to_json() for s in statuses]}\n{worker.tail()}"
            )
        time.sleep(DRAIN_POLL_S)


def run_burst_lag(
    databases: Databases,
    workload: Workload,
    policies: PolicySet,
    batch: int,
    broker_url: str,
    console: Console,
) -> dict[str, Any]:
    from ledger.app.dispatch import celery_trigger

    url = databases.create()
    engine, setup = prepare_ledger(url, policies)
    watcher = make_engine(url)  # the sampler's own connections
    queue = f"pactledger.bench.{uuid.uuid4().hex[:12]}"
    trigger = celery_trigger(broker_url, queue=queue)
    worker: Worker | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="pactledger-bench-projectors-") as directory:
            try:
                worker = Worker(url, broker_url, queue, batch, Path(directory) / "worker.log")
                projectors = projectors_for(watcher, batch_size=batch)
                trigger()  # the setup entries: once they are projected, the worker is ready
                ready_s = wait_for_head(projectors, worker, WORKER_READY_TIMEOUT_S)
                console.print(
                    f"{BURST_ROW}: worker pid {worker.pid} ready ({ready_s:.1f} s), queue "
                    f"{queue} on {broker_url}",
                    highlight=False,
                )
                ledger = Ledger(store=SqlLogStore(engine), after_append=trigger)
                databases.settle()
                meter = CpuMeter(databases.admin_url, database_name(url), worker.pid)
                began = time.perf_counter()
                sampler = LagSampler(projectors, began)
                sampler.start()
                try:
                    times = append_burst(ledger, workload, batch, BURST_ROW, console)
                    burst_s = time.perf_counter() - began
                    end_entries, end_seconds = lag_of(projectors.status())
                    drain_s = wait_for_head(projectors, worker, DRAIN_TIMEOUT_S)
                finally:
                    sampler.stop()
                cpu = meter.per_entry(len(workload.dicts))
                checks = check_views(engine, projectors, workload, BURST_ROW)
                problems = worker.problems()
            finally:
                if worker is not None:
                    worker.stop()
    finally:
        trigger.close()
        with contextlib.suppress(Exception):  # best effort: the queue is this run's alone
            forget_queue(broker_url, queue)
        watcher.dispose()
        engine.dispose()
    during = [(t, e, s) for t, e, s in sampler.samples if t <= burst_s]
    max_entries = max([e for _, e, _ in during] + [end_entries])
    max_seconds = max([s for _, _, s in during] + [end_seconds])
    return {
        "setup_entries": setup,
        "burst_seconds": round(burst_s, 3),
        "append_seconds": round(sum(times), 3),
        "ingest_entries_per_s": round(len(workload.dicts) / burst_s, 1),
        "max_lag_entries": max_entries,
        "max_lag_seconds": round(max_seconds, 3),
        "end_lag_entries": end_entries,
        "end_lag_seconds": round(end_seconds, 3),
        "drain_seconds": round(drain_s, 3),
        "worker_entries_per_s": round(len(workload.dicts) / (burst_s + drain_s), 1),
        "samples": [[round(t, 2), e, round(s, 3)] for t, e, s in sampler.samples],
        "worker_log_problems": problems,
        "checks": checks,
        **cpu,
    }


# --- profile ----------------------------------------------------------------------------------


def profile_catch_up(
    databases: Databases,
    workload: Workload,
    policies: PolicySet,
    batch: int,
    directory: Path,
    console: Console,
    top: int = 15,
) -> None:
    """Append the workload (untimed) into a fresh database, then catch each projector up under
    its own ``cProfile``; stats saved as ``<directory>/<projector>.prof``, top functions by
    own time printed."""
    directory.mkdir(parents=True, exist_ok=True)
    url = databases.create()
    engine, _ = prepare_ledger(url, policies)
    try:
        append_burst(Ledger(store=SqlLogStore(engine)), workload, batch, "profile/fill", console)
        projectors = projectors_for(engine, batch_size=batch)
        for name in PROJECTORS:
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.enable()
            projectors.catch_up([name])
            profiler.disable()
            took = time.perf_counter() - began
            path = directory / f"{name}.prof"
            profiler.dump_stats(str(path))
            buffer = io.StringIO()
            stats = pstats.Stats(profiler, stream=buffer)
            stats.sort_stats("tottime").print_stats(top)
            console.print(
                f"[bold]cProfile {name}[/bold]: {len(workload.dicts):,} entries in {took:.2f} s "
                f"under the profiler; saved to {path}; top {top} by own time:",
                highlight=False,
            )
            console.print(buffer.getvalue(), highlight=False, markup=False, soft_wrap=True)
    finally:
        engine.dispose()


# --- report ---------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(report: dict[str, Any], console: Console) -> None:
    params = report["parameters"]
    table = Table(
        title=f"pactledger projectors on PostgreSQL: {params['entries']:,} entries, "
        f"batches of {params['batch']:,}"
    )
    for column, justify in (
        ("row", "left"),
        ("scale", "left"),
        ("result", "right"),
        ("seconds", "right"),
        ("vs ingest", "right"),
        ("CPU ms/entry: bench, PostgreSQL, worker", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in report["results"]:
        if result.get("skipped"):
            table.add_row(result["name"], result["scale"], "skipped", "-", "-", "-")
            continue
        if result["name"] == BURST_ROW:
            figure = (
                f"max lag {result['max_lag_entries']:,} entries / {result['max_lag_seconds']:.1f} s"
                f"; at end {result['end_lag_entries']:,} / {result['end_lag_seconds']:.1f} s; "
                f"drain {result['drain_seconds']:.1f} s"
            )
            seconds = f"{result['burst_seconds']:.1f} + {result['drain_seconds']:.1f}"
        else:
            figure = f"{result['ours']:,.0f} {result['unit']}"
            seconds = f"{result['seconds']:.2f}"
        table.add_row(
            result["name"],
            result["scale"],
            figure,
            seconds,
            "-" if result["ratio"] is None else f"{result['ratio']:.2f}x",
            ", ".join(
                _ms(result.get(key))
                for key in (
                    "cpu_ms_per_entry",
                    "postgres_cpu_ms_per_entry",
                    "worker_cpu_ms_per_entry",
                )
            ),
        )
    console.print(table)
    for result in report["results"]:
        if result["name"] == INGEST_ROW:
            console.print(
                f"  {INGEST_ROW}: batch seconds p50 {result['batch_seconds_p50']:.3f}, p95 "
                f"{result['batch_seconds_p95']:.3f}, max {result['batch_seconds_max']:.3f}; "
                f"workload: {report['workload']}",
                highlight=False,
                soft_wrap=True,
            )
        elif result["name"] == CATCH_UP_ROW:
            parts = [
                f"{name} {info['entries_per_s']:,.0f}/s ({info['seconds']:.2f} s, "
                f"{info['share']:.0%}; CPU {_ms(info['cpu_ms_per_entry'])} + "
                f"{_ms(info['postgres_cpu_ms_per_entry'])} ms/entry)"
                for name, info in result["projectors"].items()
            ]
            console.print(
                "  each projector alone (a rebuild from seq 0): "
                + "; ".join(parts)
                + f". {result['checks']}",
                highlight=False,
                soft_wrap=True,
            )
        elif result["name"] == BURST_ROW and result.get("skipped"):
            console.print(
                f"  {BURST_ROW} skipped: {result['skipped']}", highlight=False, soft_wrap=True
            )
        elif result["name"] == BURST_ROW:
            console.print(
                f"  {BURST_ROW}: appends at {result['ingest_entries_per_s']:,.0f} entries/s "
                f"while the worker projected; worker kept {len(PROJECTORS)} views at "
                f"{result['worker_entries_per_s']:,.0f} entries/s over burst + drain; "
                f"{len(result['samples'])} lag samples every {SAMPLE_EVERY_S} s; "
                f"{result['checks']}; worker log error lines: {result['worker_log_problems']}",
                highlight=False,
                soft_wrap=True,
            )
    print_targets(console, report["targets"])
    machine = report["machine"]
    server = machine["postgresql"] or {}
    busy = machine["cpu_busy_before_start"]
    console.print(
        f"Machine: {machine['cpu_count']} cores ({machine['cpu_model']}), {machine['python']}, "
        f"PostgreSQL {server.get('server_version', '-')} (fsync={server.get('fsync', '-')}, "
        f"synchronous_commit={server.get('synchronous_commit', '-')}, "
        f"shared_buffers={server.get('shared_buffers', '-')}), broker {params['broker']}; "
        f"benchmark, worker, broker and database on this one machine; "
        f"CPUs {'?' if busy is None else f'{busy:.0%}'} busy before the run; "
        f"load average {machine['load_average_start']} at start, "
        f"{machine['load_average_end']} at end",
        highlight=False,
        soft_wrap=True,
    )


def build_report(
    args: argparse.Namespace,
    workload: Workload,
    ingest: IngestResult,
    catch_up: CatchUpResult,
    setup: int,
    burst: dict[str, Any] | None,
    skipped: str | None,
    machine: dict[str, Any],
) -> dict[str, Any]:
    entries = len(workload.dicts)
    ordered = sorted(ingest.batch_times)
    last = len(ordered) - 1
    ratio = catch_up.rate / ingest.rate
    results = [
        row(
            INGEST_ROW,
            f"{entries:,} entries, Ledger.append x {len(ordered):,}",
            "entries/s",
            ingest.rate,
            seconds=round(ingest.seconds, 3),
            entries=entries,
            batches=len(ordered),
            batch_seconds_p50=round(ordered[last // 2], 4),
            batch_seconds_p95=round(ordered[round(0.95 * last)], 4),
            batch_seconds_max=round(ordered[last], 4),
            **ingest.cpu,
        ),
        row(
            CATCH_UP_ROW,
            f"{len(PROJECTORS)} projectors x {catch_up.entries:,} entries, this process",
            "entries/s",
            catch_up.rate,
            peer=f"{INGEST_ROW} (same run)",
            peer_value=ingest.rate,
            digits=3,
            seconds=round(catch_up.seconds, 3),
            entries=catch_up.entries,
            projectors=catch_up.projectors,
            checks=catch_up.checks,
            **catch_up.cpu,
        ),
    ]
    burst_scale = f"{entries:,} entries, 1 worker (concurrency 1)"
    if burst is None:
        results.append(row(BURST_ROW, burst_scale, "entries (max lag)", None, skipped=skipped))
    else:
        results.append(
            row(BURST_ROW, burst_scale, "entries (max lag)", burst["max_lag_entries"], **burst)
        )
    return {
        "benchmark": "pactledger projectors",
        "timestamp": datetime.now(UTC).isoformat(),
        "git_revision": git_revision(),
        "parameters": {
            "entries": entries,
            "batch": args.batch,
            "broker": args.broker,
            "seed": SEED,
            "setup_entries": setup,
            "sample_every_s": SAMPLE_EVERY_S,
            "projectors": list(PROJECTORS),
        },
        "workload": workload.describe(),
        "machine": machine,
        "results": results,
        "targets": [
            {
                "description": f"{CATCH_UP_ROW} entries/s >= {INGEST_ROW} entries/s "
                "(same run; ratio shown)",
                "value": round(ratio, 3),
                "threshold": TARGET_RATIO,
                "met": ratio >= TARGET_RATIO,
            }
        ],
    }


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.projectors",
        description="Projector throughput (entries/s per worker) against batch ingest, and the "
        "lag of a real Celery worker behind a burst, on PostgreSQL.",
    )
    parser.add_argument("--entries", type=positive_int, default=100_000, help="default 100000")
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=1_000,
        help="entries per append and per projector transaction (default 1000)",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("PACTLEDGER_BENCH_BROKER_URL", DEFAULT_BROKER_URL),
        help=f"broker of the worker in {BURST_ROW} (default {DEFAULT_BROKER_URL}); "
        f"'{NO_BROKER}' skips that row",
    )
    add_report_arguments(parser)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="afterwards, catch each projector up under cProfile over --profile-entries "
        "entries in a fresh database (not timed), save DIR/<projector>.prof and print the "
        "top functions",
    )
    parser.add_argument(
        "--profile-entries",
        type=positive_int,
        default=20_000,
        help="entries of the profiled catch-up (default 20000)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out, err, load_at_start, busy = start_run(args.json, wide=True)
    policies = load_policy_set()
    err.print(f"building {args.entries:,} entries (seed {SEED}) …")
    workload = build_workload(args.entries, policies)
    profiled = (
        None
        if args.profile is None
        else build_workload(args.profile_entries, policies)
        if args.profile_entries != args.entries
        else workload
    )
    err.print(f"workload: {workload.describe()}", highlight=False)
    skipped = None
    if args.broker.strip().lower() == NO_BROKER:
        skipped = f"--broker {NO_BROKER}"
    else:
        skipped = broker_problem(args.broker)
    if skipped:
        err.print(f"[yellow]{BURST_ROW} will be skipped: {skipped}[/yellow]", highlight=False)

    databases = Databases(args.postgres_url, err)
    burst: dict[str, Any] | None = None
    gc.collect()
    gc.freeze()  # the workload is input held by the harness: keep it out of collections
    try:
        settings = databases.server_settings()
        ingest, catch_up, setup = run_ingest_and_catch_up(
            databases, workload, policies, args.batch, err
        )
        databases.drop_all()
        if not skipped:
            burst = run_burst_lag(databases, workload, policies, args.batch, args.broker, err)
            databases.drop_all()
        if profiled is not None and args.profile is not None:
            profile_catch_up(databases, profiled, policies, args.batch, args.profile, out)
    finally:
        databases.drop_all()
        gc.unfreeze()

    machine = machine_info(settings, load_at_start, busy)
    for package in ("celery", "kombu", "redis", "rich"):
        try:
            machine["packages"][package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            machine["packages"][package] = None
    report = build_report(args, workload, ingest, catch_up, setup, burst, skipped, machine)
    emit(report, args, render, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
