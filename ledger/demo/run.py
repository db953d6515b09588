"""Running the demo: the scenario through the ledger, every capability in turn, and the figures.

Steps (each with a progress bar on the console): create a fresh ledger (SQLite in ``out_dir``
by default, or an empty database at ``db_url``), publish the shipped policies, append the
scenario in time order through ``Ledger.append`` (the admission the API uses: typed, priced,
personal data encrypted), signing a checkpoint every :data:`CHECKPOINT_EVERY` entries; bring
the projectors up to date (in this process, or by the Celery workers when
``PACTLEDGER_BROKER_URL`` is set); reconcile every tranche against the estimator and record
the credits; erase the data subject who asked; sign a final checkpoint and verify the whole
log; export the EU tenant's regulator bundle and verify it offline.

Guarantees: the figures returned are read back from the ledger and its views (never from the
generator's own counts), so the report states what the ledger holds; the database is left in
place for the README's walkthrough; a failed step raises a LedgerError naming it.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url

from ledger import compose
from ledger.app import views
from ledger.app.export import ExportScope, export_bundle, load_private_key
from ledger.app.governance import publish_policies, replay_decisions
from ledger.app.keys import create_kek, create_signing_key, load_kek, load_signer
from ledger.app.personal_data import erase_subject
from ledger.app.projection import Projectors
from ledger.app.reconcile import credit_entry, reconcile
from ledger.app.service import Ledger
from ledger.bundle.verify import verify_bundle
from ledger.demo.scenario import SLA_WORKLOAD, Scenario, build_scenario
from ledger.errors import ConfigurationError, IntegrityError, LedgerError, TamperedLogError
from ledger.estimator import estimate, load_models, load_racks, load_workloads, pick, shape
from ledger.integrity.note import NoteSigner
from ledger.log.entry import format_time, utc_now
from ledger.policy import load_policy_set
from ledger.privacy import Vault
from ledger.projections.compliance import VIOLATIONS
from ledger.settings import Settings
from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore
from ledger.store.subject_keys import SqlSubjectKeys

ORIGIN = "demo.pactledger.example/log"
BATCH = 1000
CHECKPOINT_EVERY = 10_000
EXPORT_TENANT = "contoso-eu"
WORKER_WAIT_S = 600


@dataclass(frozen=True)
class DemoOptions:
    out_dir: Path
    db_url: str | None = None
    seed: int = 7
    requests: int = 50_000
    days: int = 14
    broker_url: str | None = None


def rack_capacity(rack: str) -> Decimal:
    """The estimator's tokens/s/GPU of one rack of ``rack`` on the SLA workload, exactly as
    ``reconcile`` computes it for the demo's benchmarks (llama-2-70b, FP4, server)."""
    preset = pick(load_workloads(), SLA_WORKLOAD, "workload")
    assert preset.server is not None  # an MLPerf preset has both latency scenarios
    assert preset.interactive is not None
    found = estimate(
        pick(load_racks(), rack, "rack"),
        pick(load_models(), "llama-2-70b", "model"),
        "fp4",
        shape(222, 294, server=preset.server, interactive=preset.interactive),
        "server",
        72,
    )
    return Decimal(repr(found.output_tokens_per_s_per_gpu))


def run_demo(options: DemoOptions, console: Console) -> dict[str, Any]:
    """Run the whole scenario; return the figures (see :mod:`ledger.demo.report`)."""
    timings: dict[str, float] = {}
    began = time.perf_counter()
    with _step(timings, "scenario"):
        scenario = build_scenario(
            load_policy_set(),
            rack_capacity,
            seed=options.seed,
            requests=options.requests,
            days=options.days,
        )
    ledger, projectors, settings = _open(options)
    with _step(timings, "append"):
        published = publish_policies(ledger, load_policy_set())
        _append(ledger, scenario, console)
    with _step(timings, "project"):
        _project(projectors, ledger, console, workers=bool(options.broker_url))
    with _step(timings, "reconcile"):
        tranches = _reconcile(ledger, projectors, scenario)
    with _step(timings, "erase"):
        erased = erase_subject(
            ledger,
            scenario.erased_subject,
            request_ref=scenario.erasure_request,
            reason="GDPR Art. 17 request of the data subject",
            retention_days=settings.retention_days,
        )
    with _step(timings, "project"):
        _project(projectors, ledger, console, workers=bool(options.broker_url))
    final = ledger.checkpoint()
    (options.out_dir / "checkpoint.txt").write_text(final.note, encoding="utf-8")
    with _step(timings, "verify"):
        audit = _verify(ledger, console)
    with _step(timings, "replay"):
        replay = replay_decisions(ledger)
    with _step(timings, "export"):
        bundle_path = options.out_dir / f"bundle-{EXPORT_TENANT}.zip"
        summary = _export(ledger, projectors, settings, scenario, bundle_path, console)
        assert ledger.signer is not None
        bundle = verify_bundle(bundle_path, trusted_key=ledger.signer.verifier.vkey)
    tamper = None
    if options.db_url is None:  # a DBA's edit, made in a copy of the SQLite file
        with _step(timings, "tamper test"):
            tamper = tamper_copy(
                options.out_dir, scenario_seq=_first_routed(ledger), signer=ledger.signer
            )
    timings["total"] = time.perf_counter() - began
    figures = _figures(
        options, ledger, projectors, scenario, published, tranches, erased, audit, final
    )
    figures["bundle"] = {
        "path": str(bundle_path),
        "tenant": EXPORT_TENANT,
        "entries": summary.entry_count,
        "bytes": bundle_path.stat().st_size,
        "verified": bundle.ok,
        "checks": len(bundle.checks),
        "failures": [c.to_json() for c in bundle.failures],
    }
    figures["verify"] = {
        "entries_per_s": round(audit.size / timings["verify"]) if timings["verify"] else None
    }
    figures["replay"] = {
        "decisions": replay.decisions,
        "identical": replay.decisions - len(replay.discrepancies),
    }
    figures["tamper"] = tamper
    figures["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    return figures


def demo_settings(options: DemoOptions) -> Settings:
    """The settings of the demo's ledger (what ``pactledger.env`` exports)."""
    out = options.out_dir.resolve()  # absolute paths in pactledger.env and the report
    return Settings(
        database_url=options.db_url or f"sqlite:///{out / 'pactledger.db'}",
        signing_key=out / "signing-key.pem",
        kek=out / "kek.key",
        origin=ORIGIN,
        broker_url=options.broker_url,
    )


def _open(options: DemoOptions) -> tuple[Ledger, Projectors, Settings]:
    out = options.out_dir.resolve()
    clear_previous_output(out)
    settings = demo_settings(options)
    url = settings.database_url
    engine = make_engine(url)
    migrate(engine)
    store = SqlLogStore(engine)
    head = store.initialize(ORIGIN)
    if head.size:
        raise ConfigurationError(
            f"--db must name an empty database (this one holds {head.size} entries): the "
            "demo builds its own ledger"
        )
    create_signing_key(settings.signing_key)
    create_kek(settings.kek)
    _write_env(out / "pactledger.env", settings)
    trigger = (
        compose.projection_trigger(settings, engine, mode="inline")
        if options.broker_url
        else None  # in-process: caught up in one go after the appends (faster, same code)
    )
    ledger = Ledger(
        store=store,
        signer=load_signer(settings.signing_key, ORIGIN),
        after_append=trigger,
        vault=Vault(load_kek(settings.kek), SqlSubjectKeys(engine), utc_now),
    )
    return ledger, compose.projectors_for(engine), settings


# What a demo run writes into --out; a later run replaces these files and nothing else.
OUTPUT_FILES = re.compile(
    r"^(pactledger\.db|tampered\.db)(-wal|-shm|-journal)?$"
    r"|^(signing-key\.pem|kek\.key|pactledger\.env|checkpoint\.txt)$"
    r"|^bundle-[A-Za-z0-9._-]+\.zip(\.part)?$"
)


def clear_previous_output(out: Path) -> None:
    """Make ``out`` an empty directory, deleting only files an earlier demo run wrote there.

    Anything else in it (another file, a folder) refuses the run before anything is deleted:
    ``--out ~`` or ``--out /`` must never cost a user a byte.
    """
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"--out {out} is a file: give a directory for the demo")
    if out.exists():
        foreign = [p.name for p in sorted(out.iterdir()) if not _is_output(p)]
        if foreign:
            raise ConfigurationError(
                f"--out {out} holds {len(foreign)} item(s) the demo did not write (first: "
                f"'{foreign[0]}'): give an empty or new directory; the demo replaces only its "
                "own output"
            )
        for path in out.iterdir():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _is_output(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and OUTPUT_FILES.match(path.name) is not None


def _write_env(path: Path, settings: Settings) -> None:
    """``source`` it to point the other commands at the demo's ledger."""
    lines = [
        f"export PACTLEDGER_DATABASE_URL='{settings.database_url}'",
        f"export PACTLEDGER_SIGNING_KEY='{settings.signing_key}'",
        f"export PACTLEDGER_KEK='{settings.kek}'",
        f"export PACTLEDGER_ORIGIN='{settings.origin}'",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def _step(timings: dict[str, float], name: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - began


def _append(ledger: Ledger, scenario: Scenario, console: Console) -> None:
    entries = scenario.entries
    with _bar(console) as bar:
        task = bar.add_task("appending", total=len(entries))
        since_checkpoint = 0
        for first in range(0, len(entries), BATCH):
            batch = entries[first : first + BATCH]
            ledger.append(batch)
            since_checkpoint += len(batch)
            if since_checkpoint >= CHECKPOINT_EVERY:
                ledger.checkpoint()
                since_checkpoint = 0
            bar.advance(task, len(batch))


def _project(projectors: Projectors, ledger: Ledger, console: Console, *, workers: bool) -> None:
    size = ledger.head().size
    with _bar(console) as bar:
        task = bar.add_task("projecting", total=size)
        if not workers:
            while True:
                results = projectors.catch_up()
                done = min(s.position for s in projectors.status()) + 1
                bar.update(task, completed=done)
                if done >= size or not any(r.projected for r in results):
                    break
            _raise_errors(projectors)
            return
        deadline = time.monotonic() + WORKER_WAIT_S
        while True:
            status = projectors.status()
            done = min(s.position for s in status) + 1
            bar.update(task, completed=done)
            _raise_errors(projectors)
            if done >= size:
                return
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the projectors reached {done} of {size} entries in {WORKER_WAIT_S} s: "
                    "is a worker running? start one with `pactledger worker`"
                )
            time.sleep(0.5)


def _raise_errors(projectors: Projectors) -> None:
    for status in projectors.status():
        if status.error:
            raise LedgerError(
                f"projector {status.name} stopped at seq {status.error_seq}: {status.error}"
            )


def _reconcile(ledger: Ledger, projectors: Projectors, scenario: Scenario) -> list[dict[str, Any]]:
    reports = reconcile(projectors.views, ledger.store, start=scenario.start, end=scenario.end)
    for report in reports:
        if report["credit"] is not None and report["recorded_seq"] is None:
            (receipt,) = ledger.append([credit_entry(report)])
            report["recorded_seq"] = receipt.seq
    return reports


def _first_routed(ledger: Ledger) -> int:
    """The seq of a routed inference a third of the way into the log (its cost gets edited)."""
    (entry,) = ledger.store.find_entries(
        event_type="InferenceRouted", after=ledger.head().size // 3, limit=1
    )
    return entry.seq


def tamper_copy(out_dir: Path, *, scenario_seq: int, signer: NoteSigner | None) -> dict[str, Any]:
    """Edit one cost in a copy of the demo's SQLite database, behind the ledger's back, and
    show that ``verify`` catches and locates it."""
    source, copy = out_dir / "pactledger.db", out_dir / "tampered.db"
    with sqlite3.connect(source) as db, sqlite3.connect(copy) as target:
        db.backup(target)
    with sqlite3.connect(copy) as raw:
        raw.execute("DROP TRIGGER entries_no_update")  # what a DBA with write access can do
        (data,) = raw.execute(
            "SELECT entry_bytes FROM entries WHERE seq = ?", (scenario_seq,)
        ).fetchone()
        forged = bytes(data).replace(b'"cost":"', b'"cost":"0', 1)
        raw.execute("UPDATE entries SET entry_bytes = ? WHERE seq = ?", (forged, scenario_seq))
    engine = make_engine(f"sqlite:///{copy}")
    try:
        Ledger(store=SqlLogStore(engine), signer=signer).verify()
    except TamperedLogError as exc:
        return {"seq": exc.seq, "kind": exc.kind, "message": str(exc)}
    finally:
        engine.dispose()
        for leftover in (
            copy,
            copy.with_name(copy.name + "-wal"),
            copy.with_name(copy.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)
    raise IntegrityError("the tampered copy verified: the demo found a bug")


def _verify(ledger: Ledger, console: Console) -> Any:
    size = ledger.head().size
    with _bar(console) as bar:
        task = bar.add_task("verifying", total=size)
        return ledger.verify(progress=lambda done: bar.update(task, completed=done))


def _export(
    ledger: Ledger,
    projectors: Projectors,
    settings: Settings,
    scenario: Scenario,
    path: Path,
    console: Console,
) -> Any:
    assert ledger.signer is not None
    with _bar(console) as bar:
        task = bar.add_task("exporting", total=ledger.head().size)
        return export_bundle(
            store=ledger.store,
            views=projectors.views,
            catalogue=ledger.catalogue,
            signer=ledger.signer,
            private_key=load_private_key(settings.signing_key),
            scope=ExportScope(
                tenants=[EXPORT_TENANT],
                occurred_from=scenario.start,
                occurred_to=scenario.end,
            ),
            out=path,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _figures(
    options: DemoOptions,
    ledger: Ledger,
    projectors: Projectors,
    scenario: Scenario,
    published: list[Any],
    tranches: list[dict[str, Any]],
    erased: dict[str, Any],
    audit: Any,
    final: Any,
) -> dict[str, Any]:
    residency_rows = views.residency(projectors.views)
    violations = [
        {
            "request_id": r["request_id"],
            "tenant": r["tenant"],
            "status": r["status"],
            "decided": f"{r['decided_provider']}/{r['decided_region']}"
            if r["decided_provider"]
            else None,
            "served": r["served_locations"],
        }
        for r in residency_rows
        if r["status"] in VIOLATIONS
    ]
    return {
        "out_dir": str(options.out_dir),
        "database": _shown_url(options),
        "scenario": {
            "seed": options.seed,
            "requests": options.requests,
            "days": options.days,
            "from": format_time(scenario.start),
            "to": format_time(scenario.end),
            "planted": {
                "misrouted": scenario.misrouted,
                "late_tranche": scenario.late_tranche,
                "under_delivering_tranche": scenario.under_delivering_tranche,
                "erased_subject_requests": len(scenario.subject_requests),
            },
        },
        "ledger": {
            "entries": audit.size,
            "root_hash": audit.root_hash.hex(),
            "checkpoints": len(ledger.store.checkpoints()),
            "checkpoint": final.note,
            "vkey": ledger.signer.verifier.vkey if ledger.signer else None,
            "verified": True,
            "policies_published": len(published),
        },
        "residency": {
            "summary": views.residency_summary(residency_rows),
            "violations": violations,
        },
        "chargeback": {
            "by_business_unit": views.chargeback(projectors.views, by="business_unit"),
            "by_model": views.chargeback(projectors.views, by="model"),
        },
        "tranches": _tranche_figures(
            tranches, views.tranches(projectors.views, as_of=scenario.end)
        ),
        "erasure": erased,
    }


def _shown_url(options: DemoOptions) -> str:
    if options.db_url is None:
        return f"sqlite:///{options.out_dir.resolve() / 'pactledger.db'}"
    return make_url(options.db_url).render_as_string(hide_password=True)


def _tranche_figures(
    reports: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per tranche: delivery (from the capacity view) and the reconciliation verdict."""
    by_id = {row["tranche_id"]: row for row in rows}
    figures = []
    for report in reports:
        row = by_id.get(report["tranche_id"], {})
        benchmarks = report["benchmarks"]
        best = max(
            benchmarks, key=lambda b: Decimal(b["measured_tokens_per_s_per_gpu"]), default=None
        )
        figures.append(
            {
                "tranche_id": report["tranche_id"],
                "rack_family": report["rack_family"],
                "region": f"{row.get('provider')}/{row.get('region')}",
                "racks": row.get("racks_contracted"),
                "racks_delivered": row.get("racks_delivered"),
                "delays": row.get("delays"),
                "max_delay_days": row.get("max_delay_days"),
                "first_delivered_at": row.get("first_delivered_at"),
                "consumption": row.get("consumption"),
                "verdict": report["verdict"],
                "estimated_tokens_per_s_per_gpu": None
                if best is None
                else best["estimated_tokens_per_s_per_gpu"],
                "measured_tokens_per_s_per_gpu": None
                if best is None
                else best["measured_tokens_per_s_per_gpu"],
                "ratio": None if best is None else best["ratio"],
                "observed_usage_tokens_per_s_per_gpu": report["usage"][
                    "observed_tokens_per_s_per_gpu"
                ],
                "utilisation": report["usage"]["utilisation"],
                "credit": report["credit"],
                "credit_seq": report["recorded_seq"],
            }
        )
    return figures
