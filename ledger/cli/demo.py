"""``pactledger demo``: a smoke run of the verifiable log on the embedded default (SQLite).

It builds a fresh ledger in ``--out``, appends a deterministic stream of routed-inference
entries (seeded), signs checkpoints as it goes, proves one request's inclusion and the log's
consistency between two checkpoints, verifies the whole log, then shows that a change made
behind the ledger's back, directly in a copy of the database, is caught and located.
The full governance scenario (issue 8) grows from this: policies are published, every request
is decided and recorded before it is routed and priced, and the decisions are replayed.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.app import views
from ledger.app.governance import decision_entry, publish_policies, replay_decisions
from ledger.app.keys import create_signing_key, load_signer
from ledger.app.projection import PROJECTORS
from ledger.app.service import Ledger
from ledger.compose import projectors_for
from ledger.errors import TamperedLogError
from ledger.log.entry import EntryInput, EntryLike, format_time
from ledger.policy import Facts, PolicySet, load_policy_set
from ledger.projections.compliance import VIOLATIONS
from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore

MODELS = {"opus": "claude-opus-4-1", "sonnet": "claude-sonnet-4-5", "haiku": "claude-haiku-4-5"}
PLACEMENTS = [
    ("azure", "swedencentral"),
    ("azure", "eastus2"),
    ("aws", "eu-central-1"),
    ("aws", "us-east-1"),
    ("gcp", "europe-west1"),
    ("gcp", "us-east5"),
]
TENANTS = {  # tenant: (business units, data classes of its requests, weight)
    "contoso-eu": (["research", "support"], ("eu_personal",), 5),
    "contoso-us": (["sales", "engineering"], ("internal",), 4),
    "fabrikam": (["claims"], ("public",), 2),
    "us-federal": (["benefits"], ("government",), 1),
}
APPLICATIONS = ["contract-review", "support-triage", "code-assist", "research-agent"]
RATES = {  # list prices per million tokens, USD: input, output, cache read
    "claude-opus-4-1": ("15", "75", "1.50"),
    "claude-sonnet-4-5": ("3", "15", "0.30"),
    "claude-haiku-4-5": ("1", "5", "0.10"),
}
BATCH = 500


def price_list(effective_from: datetime) -> EntryInput:
    """The list prices every synthetic request is costed with (region '*': one per provider)."""
    prices = [
        {
            "model": model,
            "provider": provider,
            "input_per_million": rates[0],
            "output_per_million": rates[1],
            "cached_input_per_million": rates[2],
        }
        for model, rates in RATES.items()
        for provider in ("azure", "aws", "gcp")
    ]
    return EntryInput(
        type="PriceListPublished",
        stream="price-list:claude-list",
        tenant="governance",
        idempotency_key="price-list:claude-list:v1",
        payload={
            "price_list_id": "claude-list",
            "version": 1,
            "effective_from": format_time(effective_from),
            "prices": prices,
        },
    )


def synthetic_requests(
    count: int, *, seed: int, start: datetime, policy_set: PolicySet
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Deterministic requests spread over one day: each one's residency decision, then (unless
    denied) its routed inference where the decision placed it. Returns entries and outcomes."""
    rng = random.Random(seed)
    tenants = sorted(TENANTS)
    weights = [TENANTS[t][2] for t in tenants]
    entries: list[dict[str, Any]] = []
    outcomes: Counter[str] = Counter()
    for n in range(count):
        tenant = rng.choices(tenants, weights)[0]
        units, data_classes, _ = TENANTS[tenant]
        tier = rng.choices(["opus", "sonnet", "haiku"], weights=[1, 4, 6])[0]
        provider, region = (
            ("aws", "us-gov-west-1")
            if tenant == "us-federal" and rng.random() < 0.9
            else rng.choice(PLACEMENTS)
        )
        request_id = f"{seed:04d}-{n:07d}"
        at = format_time(start + timedelta(seconds=86400 * n / max(count, 1)))
        facts = Facts(tenant, data_classes, provider, region, tier)
        decision = policy_set.decide(facts)
        outcomes[decision.outcome] += 1
        entries.append(
            decision_entry(
                facts, decision, request_id=request_id, decision_id=f"dec-{request_id}",
                occurred_at=at,
            )
        )  # fmt: skip
        if decision.outcome == "deny":
            continue
        tokens_in, tokens_out = rng.randint(200, 12000), rng.randint(50, 2000)
        entries.append(
            {
                "type": "InferenceRouted",
                "stream": f"request:{request_id}",
                "tenant": tenant,
                "occurred_at": at,
                "idempotency_key": f"route-{request_id}",
                "payload": {
                    "request_id": request_id,
                    "business_unit": rng.choice(units),
                    "cost_center": f"cc-{rng.randint(1000, 1009)}",
                    "application": rng.choice(APPLICATIONS),
                    "model_tier": tier,
                    "model": MODELS[tier],
                    "provider": decision.chosen_provider,
                    "region": decision.chosen_region,
                    "decision_id": f"dec-{request_id}",
                    "route_reason": decision.reasons[-1][:200],
                    "input_tokens": tokens_in,
                    "cached_tokens": rng.choice([0, 0, tokens_in // 2]),
                    "output_tokens": tokens_out,
                },
            }
        )
    return entries, outcomes


def run_demo(*, out_dir: Path, requests: int, seed: int, console: Console) -> dict[str, Any]:
    """Run the smoke scenario; return its figures (also printed as a report)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    db_path = out_dir / "pactledger.db"
    key_path = out_dir / "signing-key.pem"
    origin = "demo.pactledger.example/log"
    engine = make_engine(f"sqlite:///{db_path}")
    migrate(engine)
    store = SqlLogStore(engine)
    store.initialize(origin)
    create_signing_key(key_path)
    ledger = Ledger(store=store, signer=load_signer(key_path, origin))

    start = datetime(2026, 11, 24, tzinfo=UTC)
    policy_set = load_policy_set()
    published = publish_policies(ledger, policy_set)
    requested, outcomes = synthetic_requests(
        requests, seed=seed, start=start, policy_set=policy_set
    )
    entries: list[EntryLike] = [price_list(start), *requested]
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    began = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("appending", total=len(entries))
        for first in range(0, len(entries), BATCH):
            ledger.append(entries[first : first + BATCH])
            if (first // BATCH) % 4 == 3:
                ledger.checkpoint()
            bar.advance(task, min(BATCH, len(entries) - first))
    append_seconds = time.perf_counter() - began
    retry = ledger.append(entries[:BATCH])
    assert all(receipt.duplicate for receipt in retry)
    final = ledger.checkpoint()
    (out_dir / "checkpoint.txt").write_text(final.note, encoding="utf-8")

    sample = len(entries) // 2
    inclusion = ledger.prove_inclusion(sample)
    inclusion.verify()
    checkpoints = ledger.store.checkpoints()
    older = checkpoints[0].tree_size
    consistency = ledger.prove_consistency(older, final.tree_size)
    consistency.verify()
    (out_dir / "inclusion-proof.json").write_text(json.dumps(inclusion.to_json(), indent=2))
    (out_dir / "consistency-proof.json").write_text(json.dumps(consistency.to_json(), indent=2))

    began = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("verifying", total=final.tree_size)
        report = ledger.verify(progress=lambda done: bar.update(task, completed=done))
    verify_seconds = time.perf_counter() - began
    replay = replay_decisions(ledger)

    # The views, as the embedded default keeps them (in-process, the same projector code a
    # Celery worker runs): here caught up in one go after the appends, and timed.
    projectors = projectors_for(engine)
    began = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("projecting", total=len(PROJECTORS))
        for name in PROJECTORS:
            projectors.run(name)
            bar.advance(task)
    project_seconds = time.perf_counter() - began
    residency = views.residency(projectors.views)
    by_unit = views.chargeback(projectors.views, by="business_unit")
    engine.dispose()

    # The first routed inference after a third of the log: its cost is what gets edited.
    third = next(
        i
        for i in range(len(requested) // 3, len(requested))
        if requested[i]["type"] == "InferenceRouted"
    )
    tampered_seq = len(published) + 1 + third  # after the policies and the price list
    caught = _tamper_and_verify(db_path, out_dir / "tampered.db", key_path, origin, tampered_seq)

    figures = {
        "out_dir": str(out_dir),
        "entries": report.size,
        "policies_published": len(published),
        "decisions": {
            "recorded": replay.decisions,
            "outcomes": dict(sorted(outcomes.items())),
            "replayed_identically": replay.decisions - len(replay.discrepancies),
        },
        "routed_inferences": outcomes["allow"] + outcomes["reroute"],
        "root_hash": report.root_hash.hex(),
        "checkpoints": len(checkpoints),
        "append_per_second": round(len(entries) / append_seconds),
        "verify_per_second": round(report.size / verify_seconds),
        "project_per_second": round(report.size / project_seconds),
        "residency": views.residency_summary(residency),
        "violations": [row["request_id"] for row in residency if row["status"] in VIOLATIONS],
        "chargeback_by_business_unit": [
            {"business_unit": t["business_unit"], "cost": t["cost"], "currency": t["currency"]}
            for t in by_unit
        ],
        "retried_batch_appended": 0,
        "inclusion_proof": {"seq": sample, "path_length": len(inclusion.audit_path)},
        "consistency_proof": {
            "from": older,
            "to": final.tree_size,
            "path_length": len(consistency.consistency_path),
        },
        "verify": "intact",
        "tamper_detected": caught,
        "checkpoint_note": final.note,
        "vkey": ledger.signer.verifier.vkey if ledger.signer else None,
    }
    _print_report(console, figures)
    return figures


def _tamper_and_verify(
    db_path: Path, copy_path: Path, key_path: Path, origin: str, seq: int
) -> dict[str, Any]:
    """Change one payload in a copy of the database, as a DBA could, and verify the copy."""
    shutil.copyfile(db_path, copy_path)
    with sqlite3.connect(copy_path) as raw:
        raw.execute("DROP TRIGGER entries_no_update")
        (data,) = raw.execute("SELECT entry_bytes FROM entries WHERE seq = ?", (seq,)).fetchone()
        forged = bytes(data).replace(b'"cost":"', b'"cost":"0', 1)
        raw.execute("UPDATE entries SET entry_bytes = ? WHERE seq = ?", (forged, seq))
    engine = make_engine(f"sqlite:///{copy_path}")
    ledger = Ledger(store=SqlLogStore(engine), signer=load_signer(key_path, origin))
    try:
        ledger.verify()
    except TamperedLogError as exc:
        return {"seq": exc.seq, "kind": exc.kind, "message": str(exc)}
    finally:
        engine.dispose()
    raise AssertionError("the tampered copy verified: the demo found a bug")


def _print_report(console: Console, figures: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("ledger", f"{figures['entries']:,} entries in {figures['out_dir']}")
    decisions = figures["decisions"]
    mix = ", ".join(f"{n:,} {outcome}" for outcome, n in decisions["outcomes"].items())
    table.add_row(
        "policies", f"{figures['policies_published']} published (region catalogue, EU boundary …)"
    )
    table.add_row("decisions", f"{decisions['recorded']:,} recorded ({mix})")
    table.add_row(
        "replay",
        f"[green]{decisions['replayed_identically']:,} of {decisions['recorded']:,}[/] decisions "
        "re-evaluate identically from the policy texts in the ledger",
    )
    table.add_row("routed", f"{figures['routed_inferences']:,} inferences, each priced")
    statuses = figures["residency"]
    table.add_row(
        "residency",
        ", ".join(f"{status} {count:,}" for status, count in statuses.items() if count)
        + f" (views projected at {figures['project_per_second']:,} entries/s)",
    )
    table.add_row(
        "chargeback",
        ", ".join(
            f"{t['business_unit']} {Decimal(t['cost']):,.2f} {t['currency']}"
            for t in figures["chargeback_by_business_unit"][:4]
        ),
    )
    table.add_row("merkle root", figures["root_hash"])
    table.add_row("checkpoints", f"{figures['checkpoints']} signed (C2SP tlog-checkpoint)")
    table.add_row("append", f"{figures['append_per_second']:,} entries/s (SQLite, fsync on)")
    table.add_row("retry", "a replayed batch with the same idempotency keys appended nothing")
    proof = figures["inclusion_proof"]
    table.add_row("inclusion", f"seq {proof['seq']} proven with {proof['path_length']} hashes")
    cons = figures["consistency_proof"]
    table.add_row(
        "consistency", f"size {cons['from']} → {cons['to']} with {cons['path_length']} hashes"
    )
    table.add_row(
        "verify", f"[green]intact[/] ({figures['verify_per_second']:,} entries/s, streaming)"
    )
    caught = figures["tamper_detected"]
    table.add_row(
        "tamper test",
        f"[green]caught[/]: one payload edited in a copy → {caught['kind']} at seq {caught['seq']}",
    )
    console.print(Panel(table, title="pactledger demo", expand=False))
    console.print("Latest signed checkpoint:")
    console.print(figures["checkpoint_note"], markup=False, highlight=False)
    console.print(f"Verifier key: {figures['vkey']}")
