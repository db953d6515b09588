"""``python -m benchmarks``: the runner's report is complete and honest.

One small run (10,000 entries, the benchmarks that need no HTTP server or broker) on the real
PostgreSQL server: the peers really ran (pymerkle agreed on the root, eventsourcing read back
every event), every row has the issue's fields with ratio = ours / peer, the machine is
described, the markdown table has a line per row, and every database it made is gone.
The reporting helpers are checked on hand-made rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ADMIN_URL, _require_postgres

pytest.importorskip("pymerkle")
pytest.importorskip("eventsourcing")

from benchmarks import suite
from benchmarks.ingest import row

ROW_FIELDS = {"name", "scale", "unit", "ours", "peer", "peer_value", "ratio"}


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pactledger_bench_%'"
        ).fetchall()
    return {name for (name,) in rows}


def test_a_small_run_reports_every_row_with_its_peer(tmp_path: Path) -> None:
    _require_postgres()
    before = _bench_databases()
    out = tmp_path / "bench.json"
    status = suite.main(
        [
            "verify",
            "proofs",
            "scale",
            "--scale",
            "10k",
            "--json",
            str(out),
            "--postgres-url",
            ADMIN_URL,
        ]
    )
    assert status == 0
    report: dict[str, Any] = json.loads(out.read_text())

    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["memory_gib"] > 0
    assert machine["postgresql"]["server_version"]
    assert machine["packages"]["pymerkle"] != "?"

    results = report["results"]
    assert {r["name"] for r in results} == {
        "verify",
        "inclusion-proofs",
        "inclusion-proofs/cold",
        "inclusion-proofs/database",
        "scale/append",
        "scale/proof-memory",
        "scale/proof-database",
        "scale/verify",
    }
    for result in results:
        assert result.keys() >= ROW_FIELDS, result
        assert result["scale"] == "10k"
        assert result["ours"] > 0
        if result["peer"] is not None:
            assert result["ratio"] == pytest.approx(
                result["ours"] / result["peer_value"],
                abs=0.006,  # the ratio is rounded to 2 decimals
            )
    peers = {r["peer"].split()[0] for r in results if r["name"] == "verify"}
    assert peers == {"eventsourcing", "hashlib"}
    proofs = next(r for r in results if r["name"] == "inclusion-proofs")
    assert proofs["same_root"] is True
    assert proofs["peer"].startswith("pymerkle")
    assert proofs["peer_proofs"] > 0
    assert proofs["p99_ms"] >= proofs["p50_ms"] > 0

    assert [p["size"] for p in report["scale_curve"]] == [10_006]  # 10,000 + the set-up
    assert {t["description"] for t in report["targets"]} == {
        "verify >= 2x eventsourcing",
        "inclusion-proofs >= 50x pymerkle",
    }

    table = out.with_suffix(".md").read_text()
    assert table.count("\n| verify |") == 2
    assert "| inclusion-proofs | 10k | proofs/s |" in table
    assert _bench_databases() == before  # every database it made was dropped


def test_targets_are_judged_on_the_ratio_of_their_peer() -> None:
    results = [
        row("batch-ingest", "1m", "events/s", 30.0, peer="eventsourcing 9.5", peer_value=10.0),
        row("batch-ingest", "1m", "events/s", 30.0, peer="COPY floor", peer_value=60.0),
        row("verify", "1m", "entries/s", 10.0, peer="eventsourcing 9.5", peer_value=10.0),
    ]
    verdicts = {t["description"]: (t["value"], t["met"]) for t in suite.judge(results)}
    assert verdicts == {
        "batch-ingest >= 1.5x eventsourcing": (3.0, True),
        "batch-ingest >= 0.6x COPY floor": (0.5, False),
        "verify >= 2x eventsourcing": (1.0, False),
    }


def test_markdown_shows_missing_values_as_dashes() -> None:
    report = {
        "timestamp": "2026-11-26T01:00:00+00:00",
        "git_revision": "abc",
        "parameters": {"scale": "10k"},
        "machine": {
            "cpu_count": 2,
            "cpu_model": "x",
            "memory_gib": 24,
            "python": "CPython 3.11",
            "postgresql": {"server_version": "15"},
            "sqlite": "3.40",
            "redis": None,
            "cpu_busy_before_start": 0.02,
        },
        "results": [row("provenance-http", "10k", "ms (p99)", 12.5, p50_ms=3.25)],
        "targets": [],
    }
    table = suite.markdown(report)
    assert "| provenance-http | 10k | ms (p99) | 12.5 | – | – | – | p50_ms 3.25 |" in table
    assert "Redis ?" in table


def test_unknown_benchmark_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        suite.parse_args(["verify", "speed"])
    assert exited.value.code == 2
    assert "unknown benchmark speed" in capsys.readouterr().err
