"""``pactledger demo`` end to end, small: on the embedded default (SQLite, in-process
projectors) and on PostgreSQL with a Redis broker and a real ``pactledger worker``.

The report's numbers are checked against the ledger and its views, read back independently,
and against what the scenario planted: every misrouted request, and nothing else, is a
violation; the late tranche shows its delay; the under-delivering tranche is below its SLA
with a recorded credit; the erased subject's requests read ``[erased]``; the bundle verifies
offline; and the same seed gives the same ledger root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ledger.app import views
from ledger.app.dispatch import PROJECT_QUEUE
from ledger.app.keys import load_kek
from ledger.app.personal_data import reveal
from ledger.app.service import Ledger
from ledger.bundle.verify import verify_bundle
from ledger.compose import projectors_for
from ledger.demo.run import DemoOptions, run_demo
from ledger.demo.scenario import ERASED_SUBJECT
from ledger.log.entry import utc_now
from ledger.privacy import Vault
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from ledger.store.subject_keys import SqlSubjectKeys
from tests.cli.test_cli import run
from tests.integration.test_workers import Broker, Processes, _broker

SMALL = {"requests": 1500, "days": 4, "seed": 11}


def quiet() -> Console:
    return Console(stderr=True, quiet=True)


def check_against_the_ledger(figures: dict[str, Any], url: str, out_dir: Path) -> None:
    engine = make_engine(url)
    try:
        store = SqlLogStore(engine)
        projectors = projectors_for(engine)
        head = store.head()
        assert figures["ledger"]["entries"] == head.size
        assert figures["ledger"]["root_hash"] == head.root_hash.hex()

        rows = views.residency(projectors.views)
        assert figures["residency"]["summary"] == views.residency_summary(rows)
        flagged = {v["request_id"] for v in figures["residency"]["violations"]}
        assert flagged == set(figures["scenario"]["planted"]["misrouted"])
        assert len(flagged) >= 1

        by_unit = views.chargeback(projectors.views, by="business_unit")
        assert [(t["business_unit"], t["cost"]) for t in by_unit] == [
            (t["business_unit"], t["cost"]) for t in figures["chargeback"]["by_business_unit"]
        ]

        tranches = {t["tranche_id"]: t for t in figures["tranches"]}
        late = tranches[figures["scenario"]["planted"]["late_tranche"]]
        assert float(late["max_delay_days"]) == 3
        under = tranches[figures["scenario"]["planted"]["under_delivering_tranche"]]
        assert under["verdict"] == "below_sla"
        assert 0.5 < float(under["ratio"]) < 0.6
        credit = json.loads(store.entry(under["credit_seq"]).entry_bytes)
        assert credit["type"] == "TrancheCreditAssessed"
        assert credit["payload"]["credit_usd"] == under["credit"]["credit_usd"]
        assert all(
            t["verdict"] in {"meets_sla", "no_benchmark"}
            for tid, t in tranches.items()
            if tid != under["tranche_id"]
        )

        ledger = Ledger(
            store=store,
            vault=Vault(load_kek(out_dir / "kek.key"), SqlSubjectKeys(engine), utc_now),
        )
        routed = [
            e
            for e in store.iter_entries()
            if b'"InferenceRouted"' in e.entry_bytes and b"end_user_id" in e.entry_bytes
        ]
        shown = reveal(ledger, routed)
        assert any(s["end_user_id"] == "[erased]" for s in shown)
        assert all(
            s["end_user_id"].startswith("eu-user-") for s in shown if s["end_user_id"] != "[erased]"
        )
        assert (
            sum(s["end_user_id"] == "[erased]" for s in shown)
            == figures["scenario"]["planted"]["erased_subject_requests"]
        )
        assert ERASED_SUBJECT.encode() not in b"".join(e.entry_bytes for e in store.iter_entries())
    finally:
        engine.dispose()

    bundle = verify_bundle(figures["bundle"]["path"], trusted_key=figures["ledger"]["vkey"])
    assert bundle.ok, bundle.to_json()["failures"]
    assert figures["bundle"]["verified"] is True


def test_the_demo_on_sqlite_matches_its_ledger_and_views(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    figures = run_demo(DemoOptions(out_dir=out, **SMALL), quiet())
    check_against_the_ledger(figures, f"sqlite:///{out / 'pactledger.db'}", out)
    assert figures["tamper"]["kind"] == "changed"
    assert figures["replay"]["identical"] == figures["replay"]["decisions"]
    again = run_demo(DemoOptions(out_dir=tmp_path / "again", **SMALL), quiet())
    assert again["residency"] == figures["residency"]
    assert again["chargeback"] == figures["chargeback"]


def test_the_demo_command_prints_json_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACTLEDGER_BROKER_URL", raising=False)
    out, plots = tmp_path / "demo", tmp_path / "plots"
    result = run(
        "demo", "--out", str(out), "--requests", "300", "--days", "2", "--plot", str(plots),
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["ledger"]["verified"] is True
    assert {Path(p).name for p in figures["plots"]} == {
        "chargeback-by-business-unit.png",
        "throughput-by-tranche.png",
    }
    assert all(Path(p).read_bytes().startswith(b"\x89PNG") for p in figures["plots"])


def test_a_demo_database_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run_demo(DemoOptions(out_dir=out, requests=50, days=2), quiet())
    db = tmp_path / "kept.db"
    (out / "pactledger.db").rename(db)
    result = run("demo", "--out", str(tmp_path / "other"), "--db", f"sqlite:///{db}")
    assert result.exit_code == 1
    assert "must name an empty database" in result.output


@pytest.mark.postgres
def test_the_demo_on_postgresql_with_a_redis_worker(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    broker_gen = _broker("redis")
    broker = next(broker_gen)
    demo_broker = Broker(broker.kind, broker.url, PROJECT_QUEUE)
    workers = Processes(empty_postgres_url, tmp_path)
    try:
        # The schema first (the worker needs it), then one worker on the demo's queue.
        from ledger.store.engine import migrate

        engine = make_engine(empty_postgres_url)
        migrate(engine)
        engine.dispose()
        workers.start("worker", demo_broker)
        out = tmp_path / "demo"
        figures = run_demo(
            DemoOptions(out_dir=out, db_url=empty_postgres_url, broker_url=broker.url, **SMALL),
            quiet(),
        )
        workers.check_alive()
        check_against_the_ledger(figures, empty_postgres_url, out)
        assert figures["tamper"] is None  # the SQLite-copy tamper test is for the default
    finally:
        workers.kill_all()
        next(broker_gen, None)


@pytest.mark.parametrize("foreign", ["notes.txt", "subdir"])
def test_the_demo_never_deletes_what_it_did_not_write(tmp_path: Path, foreign: str) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    keep = out / foreign
    if foreign == "subdir":
        keep.mkdir()
    else:
        keep.write_text("mine")
    (out / "pactledger.env").write_text("export X=1\n")  # looks like a demo's, still refused
    result = run("demo", "--out", str(out), "--requests", "20", "--days", "2")
    assert result.exit_code == 1
    assert "the demo did not write" in result.output
    assert keep.exists()
    assert (out / "pactledger.env").exists()  # nothing at all was deleted


def test_the_demo_replaces_its_own_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run_demo(DemoOptions(out_dir=out, requests=30, days=2), quiet())
    first = (out / "checkpoint.txt").read_text()
    run_demo(DemoOptions(out_dir=out, requests=30, days=2, seed=12), quiet())
    assert (out / "checkpoint.txt").read_text() != first
    assert not list(out.glob("tampered.db*"))


def test_the_demo_refuses_a_file_as_out(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("mine")
    result = run("demo", "--out", str(target), "--requests", "20", "--days", "2")
    assert result.exit_code == 1
    assert target.read_text() == "mine"
