"""``pactledger project …``, ``audit residency``, ``chargeback`` and ``tranches``, end to end on
SQLite through Typer's CliRunner (docs/projectors.md).

One ledger per module is filled the way the CLI fills it: ``pactledger init``, the scenario of
:mod:`tests.projections.scenario` appended through a Ledger opened like the CLI's (so the
projectors run in-process after each append), then a few November requests through
``pactledger append``. Each test works on its own copy. What the commands print is held to the
reference views of :mod:`tests.projections.reference`, computed from the log alone, and to what
the scenario says each request and tranche must be.

Proves that ``project status`` lists every projector caught up (lag 0) and, after entries are
appended with no projection, shows the lag, and ``chargeback``/``audit residency``/``tranches``
warn about it on stderr; that ``project run [NAME …]`` catches up only what it is asked to;
that ``project rebuild chargeback`` leaves the view as it was; that residency counts, filters
(tenant, time range, violations only) and chargeback totals (every grouping, month, tenant,
CSV, FOCUS) equal the reference exactly; that tranches carry status, consumption as of a time
and observed throughput; and that bad options exit 1 or 2 naming the option.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.app.service import Ledger
from ledger.cli import common as cli_common
from ledger.cli.common import open_ledger
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from ledger.store.views import SqlViewStore
from tests.cli.test_cli import run, run_json, write_lines, write_seeded_key
from tests.domain import price_list, routed
from tests.projections.reference import VIEW_COLUMNS, normalise, reference_views
from tests.projections.scenario import RESIDENCY_STATUSES, VIOLATIONS, Scenario, fill_ledger

ORIGIN = "views.cli.pactledger.example/log"
PROJECTOR_NAMES = ("compliance", "chargeback", "provenance", "capacity")
STATUS_KEYS = {
    "name",
    "position",
    "lag_entries",
    "lag_seconds",
    "updated_at",
    "error",
    "error_seq",
}
GROUPS = (
    "business_unit",
    "tenant",
    "model",
    "provider",
    "region",
    "cost_center",
    "application",
    "day",
)
COUNTS = ("requests", "input_tokens", "output_tokens", "cached_tokens")
FOCUS_FIRST = ("BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency")
# Requests appended through `pactledger append`, in November (the scenario is all October).
NOVEMBER = [
    routed(900_001, tenant="acme", occurred_at="2026-11-02T09:00:00Z"),
    routed(900_002, tenant="acme", model="claude-haiku-4-5", occurred_at="2026-11-03T10:00:00Z"),
    routed(900_003, tenant="globex", occurred_at="2026-11-04T11:00:00Z"),
]
# Served without a recorded decision: each one a `no_decision` violation.
NOVEMBER_STATUSES = {entry["payload"]["request_id"]: "no_decision" for entry in NOVEMBER}
SCENARIO_ENTRIES = 1200


@dataclass(frozen=True)
class Filled:
    database: Path
    key: Path
    scenario: Scenario
    size: int  # entries in the log
    reference: dict[str, list[dict[str, Any]]]


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a WAL-mode SQLite database (the -wal file included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def point_at(database: Path, key: Path, patch: pytest.MonkeyPatch) -> None:
    patch.setenv("PACTLEDGER_DATABASE_URL", f"sqlite:///{database}")
    patch.setenv("PACTLEDGER_SIGNING_KEY", str(key))
    patch.setenv("PACTLEDGER_KEK", str(key.parent / "kek.key"))
    patch.setenv("PACTLEDGER_ORIGIN", ORIGIN)
    patch.delenv("PACTLEDGER_BROKER_URL", raising=False)  # projectors run in-process
    patch.delenv("PACTLEDGER_PROJECT_BATCH", raising=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    tmp = tmp_path_factory.mktemp("views-cli")
    database, key = tmp / "ledger.db", tmp / "keys" / "sig.pem"
    key.parent.mkdir()
    write_seeded_key(key, 1)
    with pytest.MonkeyPatch.context() as patch:
        point_at(database, key, patch)
        assert run("init").exit_code == 0
        ledger = open_ledger(Settings())
        scenario = fill_ledger(ledger, entries=SCENARIO_ENTRIES, seed=7)
        assert isinstance(ledger.store, SqlLogStore)
        ledger.store.engine.dispose()
        november = write_lines(tmp / "november.jsonl", NOVEMBER)
        appended = run_json("append", str(november))
        assert appended["appended"] == len(NOVEMBER)
    engine = make_engine(f"sqlite:///{database}")
    try:
        entries = list(SqlLogStore(engine).iter_entries())
    finally:
        engine.dispose()
    return Filled(database, key, scenario, len(entries), reference_views(entries))


@pytest.fixture
def filled(template: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Filled:
    """This test's own copy of the module's ledger, which the CLI's settings point at."""
    database = tmp_path / "ledger.db"
    copy_database(template.database, database)
    point_at(database, template.key, monkeypatch)
    return Filled(database, template.key, template.scenario, template.size, template.reference)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need (not a terminal: Rich assumes 80 columns)."""
    monkeypatch.setattr(cli_common.out, "width", 240)


def append_unprojected(database: Path, entries: list[dict[str, Any]]) -> None:
    """Append as a producer with no projection configured would: nothing is triggered."""
    engine = make_engine(f"sqlite:///{database}")
    try:
        Ledger(store=SqlLogStore(engine), after_append=None).append(entries)
    finally:
        engine.dispose()


def late_requests(count: int) -> list[dict[str, Any]]:
    return [
        routed(950_000 + n, tenant="acme", occurred_at=f"2026-11-20T10:00:{n:02d}Z")
        for n in range(count)
    ]


def statuses() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run_json("project", "status")}


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def reference_totals(
    rows: Iterable[Mapping[str, Any]], by: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """Chargeback totals by ``by`` (and currency), summed from view rows with exact decimals."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (str(row[by]), row["currency"])
        total = totals.setdefault(
            key, {**dict.fromkeys(COUNTS, 0), "cost": Decimal(0), "price_list_versions": set()}
        )
        for measure in COUNTS:
            total[measure] += int(row[measure])
        total["cost"] += money(row["cost"])
        if row["price_list_id"]:
            total["price_list_versions"].add(f"{row['price_list_id']}@{row['price_list_version']}")
    for total in totals.values():
        total["price_list_versions"] = sorted(total["price_list_versions"])
    return totals


def printed_totals(totals: list[dict[str, Any]], by: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (t[by], t["currency"]): {
            **{measure: t[measure] for measure in COUNTS},
            "cost": Decimal(t["cost"]),
            "price_list_versions": t["price_list_versions"],
        }
        for t in totals
    }


def chargeback_rows(filled: Filled, *, month: str = "", tenants: Iterable[str] = ()) -> list[Any]:
    wanted = set(tenants)
    return [
        row
        for row in filled.reference["view_chargeback"]
        if row["day"].startswith(month) and (not wanted or row["tenant"] in wanted)
    ]


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def as_view_row(row: Mapping[str, str]) -> dict[str, Any]:
    """A chargeback CSV row with its counts as numbers again."""
    return {
        **row,
        **{column: int(row[column]) for column in (*COUNTS, "price_list_version")},
    }


def moment(row: Mapping[str, Any]) -> str:
    """When a residency row happened for the time filters: served, or else decided."""
    return str(row["served_at"] or row["decided_at"] or "")


# --- project status / run / rebuild ---------------------------------------------------------


def test_project_status_json_lists_every_projector_caught_up(filled: Filled) -> None:
    report = run_json("project", "status")
    assert [s["name"] for s in report] == list(PROJECTOR_NAMES)
    for status in report:
        assert set(status) == STATUS_KEYS
        assert status["position"] == filled.size - 1
        assert status["lag_entries"] == 0
        assert status["lag_seconds"] == 0
        assert status["error"] is None
        assert status["error_seq"] is None
        updated = datetime.fromisoformat(status["updated_at"])
        assert updated.tzinfo is not None


def test_project_status_table_names_every_projector(filled: Filled) -> None:
    result = run("project", "status")
    assert result.exit_code == 0, result.output
    for name in PROJECTOR_NAMES:
        assert name in result.stdout
    assert f"{filled.size - 1:,}" in result.stdout


def test_project_run_when_caught_up_projects_nothing(filled: Filled) -> None:
    result = run("project", "run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"{name}: projected 0 entries, at seq {filled.size - 1:,}" for name in PROJECTOR_NAMES
    ]
    assert run_json("project", "run") == [
        {"name": name, "projected": 0, "position": filled.size - 1, "busy": False}
        for name in PROJECTOR_NAMES
    ]


def test_project_run_catches_up_only_the_projectors_named(filled: Filled) -> None:
    append_unprojected(filled.database, late_requests(4))
    head = filled.size + 4 - 1
    assert {n: s["lag_entries"] for n, s in statuses().items()} == dict.fromkeys(PROJECTOR_NAMES, 4)

    ran = run_json("project", "run", "chargeback", "capacity")
    assert ran == [
        {"name": "chargeback", "projected": 4, "position": head, "busy": False},
        {"name": "capacity", "projected": 4, "position": head, "busy": False},
    ]
    lag = {n: s["lag_entries"] for n, s in statuses().items()}
    assert lag == {"compliance": 4, "chargeback": 0, "provenance": 4, "capacity": 0}

    rest = run("project", "run")
    assert rest.exit_code == 0, rest.output
    assert f"compliance: projected 4 entries, at seq {head:,}" in rest.stdout
    assert f"chargeback: projected 0 entries, at seq {head:,}" in rest.stdout
    assert all(s["lag_entries"] == 0 for s in statuses().values())


def test_project_run_of_an_unknown_projector_names_the_projectors(filled: Filled) -> None:
    append_unprojected(filled.database, late_requests(2))
    result = run("project", "run", "compliance", "nope")
    assert result.exit_code == 1
    assert "nope" in result.stderr
    for name in PROJECTOR_NAMES:
        assert name in result.stderr
    assert result.stdout == ""
    # Checked before anything ran: compliance was not caught up either.
    assert statuses()["compliance"]["lag_entries"] == 2


def test_rebuild_chargeback_leaves_the_view_as_it_was(filled: Filled) -> None:
    before = run("chargeback", "--format", "csv")
    assert before.exit_code == 0, before.output

    rebuilt = run_json("project", "rebuild", "chargeback")
    assert rebuilt == {
        "name": "chargeback",
        "projected": filled.size,
        "position": filled.size - 1,
        "busy": False,
    }

    after = run("chargeback", "--format", "csv")
    assert after.exit_code == 0, after.output
    assert after.stdout == before.stdout
    assert len(parse_csv(after.stdout)[1]) == len(filled.reference["view_chargeback"])
    report = statuses()
    assert report["chargeback"]["position"] == filled.size - 1
    assert report["chargeback"]["lag_entries"] == 0
    assert report["chargeback"]["error"] is None


PROJECTOR_TABLES = {
    "compliance": ("view_regions", "view_residency"),
    "chargeback": ("view_chargeback",),
    "provenance": ("view_provenance",),
    "capacity": ("view_tranches", "view_rack_usage"),
}


def view_tables(filled: Filled, name: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(f"sqlite:///{filled.database}")
    try:
        views = SqlViewStore(engine)
        return {table: normalise(table, views.rows(table)) for table in PROJECTOR_TABLES[name]}
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", PROJECTOR_NAMES)
def test_rebuild_twice_then_project_on(filled: Filled, tmp_path: Path, name: str) -> None:
    """Every projector rebuilds to the same rows, again, and keeps projecting into the tables
    swapped in (their keys and indexes are back)."""
    before = view_tables(filled, name)
    assert before == {
        table: normalise(table, filled.reference[table]) for table in PROJECTOR_TABLES[name]
    }
    for _ in range(2):
        assert run_json("project", "rebuild", name)["position"] == filled.size - 1
        assert view_tables(filled, name) == before
    more = write_lines(tmp_path / "more.jsonl", late_requests(2))
    assert run_json("append", str(more))["appended"] == 2
    assert all(s["lag_entries"] == 0 for s in statuses().values())
    engine = make_engine(f"sqlite:///{filled.database}")
    try:
        reference = reference_views(SqlLogStore(engine).iter_entries())
    finally:
        engine.dispose()
    assert view_tables(filled, name) == {
        table: normalise(table, reference[table]) for table in PROJECTOR_TABLES[name]
    }


def test_rebuild_text_output_and_entries_appended_before_it(filled: Filled) -> None:
    """A rebuild projects the whole log, entries not yet projected included."""
    append_unprojected(filled.database, late_requests(3))
    result = run("project", "rebuild", "chargeback")
    assert result.exit_code == 0, result.output
    size = filled.size + 3
    assert f"chargeback: rebuilt from {size:,} entries, swapped in at seq {size - 1:,}" in (
        result.stdout
    )
    assert statuses()["chargeback"]["lag_entries"] == 0
    november = run_json("chargeback", "--by", "tenant", "--month", "2026-11")
    acme = next(t for t in november if t["tenant"] == "acme")
    assert acme["requests"] == 2 + 3  # two appended through the CLI, three late


def test_rebuild_of_an_unknown_projector_exits_1_naming_the_projectors(filled: Filled) -> None:
    result = run("project", "rebuild", "nope")
    assert result.exit_code == 1
    assert "no projector 'nope'" in result.stderr
    for name in PROJECTOR_NAMES:
        assert name in result.stderr
    assert result.stdout == ""


def test_a_new_ledger_has_projected_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, key = tmp_path / "new.db", tmp_path / "sig.pem"
    write_seeded_key(key, 2)
    point_at(database, key, monkeypatch)
    assert run("init").exit_code == 0
    for status in run_json("project", "status"):
        assert (status["position"], status["lag_entries"], status["updated_at"]) == (-1, 0, None)
    append_unprojected(database, [price_list(), *late_requests(2)])
    report = run_json("project", "status")
    assert [(s["position"], s["lag_entries"]) for s in report] == [(-1, 3)] * 4
    assert all(s["lag_seconds"] >= 0 for s in report)
    assert run_json("chargeback") == []
    result = run("chargeback")
    assert "3 entries behind" in result.stderr
    ran = run_json("project", "run")
    assert [(r["projected"], r["position"]) for r in ran] == [(3, 2)] * 4
    assert run_json("chargeback", "--by", "tenant")[0]["requests"] == 2


# --- audit residency ------------------------------------------------------------------------


def test_residency_summary_and_rows_equal_the_reference(filled: Filled) -> None:
    report = run_json("audit", "residency")
    expected = filled.reference["view_residency"]
    counts = Counter(row["status"] for row in expected)
    assert report["summary"] == {status: counts[status] for status in report["summary"]}
    assert set(report["summary"]) == set(RESIDENCY_STATUSES)
    assert all(report["summary"][status] > 0 for status in RESIDENCY_STATUSES)
    assert normalise("view_residency", report["requests"]) == normalise("view_residency", expected)
    # And what the scenario says each request must be, independently of any projection.
    assert {r["request_id"]: r["status"] for r in report["requests"]} == {
        **filled.scenario.statuses,
        **NOVEMBER_STATUSES,
    }
    # Oldest first.
    order = [(moment(r), r["request_id"]) for r in report["requests"]]
    assert order == sorted(order)


def test_residency_violations_only(filled: Filled) -> None:
    report = run_json("audit", "residency", "--violations-only")
    assert report["requests"]
    assert {r["status"] for r in report["requests"]} == set(VIOLATIONS)
    assert sorted(r["request_id"] for r in report["requests"]) == sorted(
        [*(r for rs in filled.scenario.violations.values() for r in rs), *NOVEMBER_STATUSES]
    )
    assert report["summary"]["compliant"] == report["summary"]["not_served"] == 0
    counts = Counter(r["status"] for r in filled.reference["view_residency"])
    for status in VIOLATIONS:
        assert report["summary"][status] == counts[status]


def test_residency_tenant_filter(filled: Filled) -> None:
    report = run_json("audit", "residency", "--tenant", "globex", "--tenant", "initech")
    expected = [
        r for r in filled.reference["view_residency"] if r["tenant"] in ("globex", "initech")
    ]
    assert {r["tenant"] for r in report["requests"]} == {"globex", "initech"}
    assert sorted(r["request_id"] for r in report["requests"]) == sorted(
        r["request_id"] for r in expected
    )
    assert sum(report["summary"].values()) == len(expected)
    nobody = run_json("audit", "residency", "--tenant", "no-such-tenant")
    assert nobody["requests"] == []
    assert set(nobody["summary"].values()) == {0}


def test_residency_time_range(filled: Filled) -> None:
    since, until = "2026-10-08T00:00:00Z", "2026-10-10T12:00:00Z"
    report = run_json("audit", "residency", "--from", since, "--to", until)
    low, high = "2026-10-08T00:00:00.000000Z", "2026-10-10T12:00:00.000000Z"
    expected = sorted(
        r["request_id"] for r in filled.reference["view_residency"] if low <= moment(r) < high
    )
    assert expected
    assert sorted(r["request_id"] for r in report["requests"]) == expected
    # The same instant written with an offset selects the same requests.
    shifted = run_json("audit", "residency", "--from", "2026-10-08T02:00:00+02:00", "--to", until)
    assert shifted == report


def test_residency_time_range_is_from_inclusive_to_exclusive(filled: Filled) -> None:
    row = next(r for r in filled.reference["view_residency"] if r["served_at"])
    at = row["served_at"]
    since = run_json("audit", "residency", "--from", at)
    assert row["request_id"] in {r["request_id"] for r in since["requests"]}
    until = run_json("audit", "residency", "--to", at)
    assert row["request_id"] not in {r["request_id"] for r in until["requests"]}
    assert len(since["requests"]) + len(until["requests"]) == len(
        filled.reference["view_residency"]
    )
    empty = run("audit", "residency", "--from", at, "--to", at, "--json")  # as /v1/audit does
    assert empty.exit_code == 1
    assert "'to'" in empty.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--from", "yesterday"),
        ("--from", "2026-10-08T00:00:00"),  # no zone
        ("--to", "2026-13-01T00:00:00Z"),
    ],
)
def test_residency_bad_time_exits_2_naming_the_option(
    filled: Filled, option: str, value: str
) -> None:
    result = run("audit", "residency", option, value, "--json")
    assert result.exit_code == 2
    assert option in result.stderr
    assert value in result.stderr
    assert result.stdout == ""


def test_residency_table_prints_the_summary_and_limits_rows(filled: Filled) -> None:
    result = run("audit", "residency", "--limit", "5")
    assert result.exit_code == 0, result.output
    counts = Counter(r["status"] for r in filled.reference["view_residency"])
    assert f"compliant: {counts['compliant']:,}" in result.stdout
    assert f"… {len(filled.reference['view_residency']) - 5:,} more" in result.stdout
    assert result.stderr == ""  # caught up: no note


# --- chargeback -----------------------------------------------------------------------------


@pytest.mark.parametrize("by", GROUPS)
def test_chargeback_totals_equal_sums_of_the_reference_rows(filled: Filled, by: str) -> None:
    totals = run_json("chargeback", "--by", by)
    assert printed_totals(totals, by) == reference_totals(chargeback_rows(filled), by)
    costs = [Decimal(t["cost"]) for t in totals]
    assert costs == sorted(costs, reverse=True)
    for t in totals:
        assert isinstance(t["cost"], str)  # money is decimal text, never a float


def test_chargeback_by_model_is_exact(filled: Filled) -> None:
    totals = run_json("chargeback", "--by", "model")
    assert {t["model"] for t in totals} == {
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-1",
    }
    grand = sum((Decimal(t["cost"]) for t in totals), Decimal(0))
    assert grand == sum(
        (money(row["cost"]) for row in filled.reference["view_chargeback"]), Decimal(0)
    )
    assert sum(t["requests"] for t in totals) == filled.scenario.counts["InferenceRouted"] + len(
        NOVEMBER
    )


@pytest.mark.parametrize("month", ["2026-10", "2026-11", "2026-12"])
def test_chargeback_month_filter(filled: Filled, month: str) -> None:
    totals = run_json("chargeback", "--by", "tenant", "--month", month)
    assert printed_totals(totals, "tenant") == reference_totals(
        chargeback_rows(filled, month=month), "tenant"
    )
    if month == "2026-11":
        assert {t["tenant"]: t["requests"] for t in totals} == {"acme": 2, "globex": 1}
    if month == "2026-12":
        assert totals == []


def test_chargeback_tenant_filter(filled: Filled) -> None:
    totals = run_json("chargeback", "--by", "model", "--tenant", "globex")
    assert printed_totals(totals, "model") == reference_totals(
        chargeback_rows(filled, tenants=["globex"]), "model"
    )
    by_tenant = run_json("chargeback", "--by", "tenant", "--tenant", "acme", "--tenant", "initech")
    assert {t["tenant"] for t in by_tenant} == {"acme", "initech"}


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "october", "2026-00"])
def test_chargeback_bad_month_exits_1_naming_the_month(filled: Filled, month: str) -> None:
    result = run("chargeback", "--month", month, "--json")
    assert result.exit_code == 1
    assert "month" in result.stderr
    assert month in result.stderr
    assert result.stdout == ""


def test_chargeback_bad_group_exits_1_naming_the_groups(filled: Filled) -> None:
    result = run("chargeback", "--by", "colour", "--json")
    assert result.exit_code == 1
    assert "colour" in result.stderr
    assert "business_unit" in result.stderr
    assert result.stdout == ""


def test_chargeback_csv_is_the_views_rows(filled: Filled) -> None:
    result = run("chargeback", "--format", "csv")
    assert result.exit_code == 0, result.output
    header_line = ",".join(VIEW_COLUMNS["view_chargeback"]) + "\r\n"  # RFC 4180 line ends
    assert result.stdout_bytes.startswith(header_line.encode())
    header, rows = parse_csv(result.stdout)
    assert header == list(VIEW_COLUMNS["view_chargeback"])
    assert normalise("view_chargeback", [as_view_row(r) for r in rows]) == normalise(
        "view_chargeback", filled.reference["view_chargeback"]
    )


def test_chargeback_csv_month_and_tenant(filled: Filled) -> None:
    result = run("chargeback", "--format", "csv", "--month", "2026-11", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    _, rows = parse_csv(result.stdout)
    assert normalise("view_chargeback", [as_view_row(r) for r in rows]) == normalise(
        "view_chargeback", chargeback_rows(filled, month="2026-11", tenants=["acme"])
    )
    assert len(rows) == 2


def test_chargeback_focus_to_a_file(filled: Filled, tmp_path: Path) -> None:
    target = tmp_path / "focus.csv"
    result = run("chargeback", "--format", "focus", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    expected = filled.reference["view_chargeback"]
    assert f"wrote {len(expected):,} rows" in result.stderr
    assert not target.with_name("focus.csv.part").exists()
    header, rows = parse_csv(target.read_text(encoding="utf-8"))
    assert tuple(header[: len(FOCUS_FIRST)]) == FOCUS_FIRST
    assert "x_Tenant" in header
    assert len(rows) == len(expected)
    billed = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
    assert billed == sum((money(r["cost"]) for r in expected), Decimal(0))
    grand = sum((Decimal(t["cost"]) for t in run_json("chargeback", "--by", "tenant")), Decimal(0))
    assert billed == grand
    assert {r["BillingCurrency"] for r in rows} == {"USD"}


def test_chargeback_focus_of_one_tenant_bills_only_that_tenant(filled: Filled) -> None:
    result = run("chargeback", "--format", "focus", "--tenant", "initech")
    assert result.exit_code == 0, result.output
    _, rows = parse_csv(result.stdout)
    assert {r["BillingAccountId"] for r in rows} == {"initech"}
    expected = chargeback_rows(filled, tenants=["initech"])
    assert sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0)) == sum(
        (money(r["cost"]) for r in expected), Decimal(0)
    )


def test_chargeback_unknown_format_exits_2(filled: Filled, tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    result = run("chargeback", "--format", "xml", "--out", str(target))
    assert result.exit_code == 2
    assert "--format" in result.stderr
    assert "xml" in result.stderr
    assert result.stdout == ""
    assert not target.exists()


def test_chargeback_table_prints_totals(filled: Filled, wide: None) -> None:
    result = run("chargeback", "--by", "tenant")
    assert result.exit_code == 0, result.output
    grand = sum((money(r["cost"]) for r in filled.reference["view_chargeback"]), Decimal(0))
    assert f"total: {grand:,.2f} USD" in result.stdout
    for tenant in filled.scenario.tenants:
        assert tenant in result.stdout
    assert result.stderr == ""  # caught up: no note


# --- tranches -------------------------------------------------------------------------------

AS_OF = "2026-10-12T06:00:00Z"  # after one retirement of tr-acme-eus2-01, before the other


def gpu_hours(tranche: Mapping[str, Any], as_of: datetime) -> Decimal:
    """GPU-hours in service up to ``as_of`` (docs/projectors.md), from the reference row."""
    total = Decimal(0)
    for items, sign in ((tranche["deliveries"], 1), (tranche["retirements"], -1)):
        for item in items:
            start = datetime.fromisoformat(item["at"].replace("Z", "+00:00"))
            if start < as_of:
                seconds = Decimal(int((as_of - start).total_seconds()))
                total += sign * item["gpus"] * seconds / 3600
    return max(total, Decimal(0))


def observed_rate(filled: Filled, tranche_id: str) -> Decimal | None:
    hours = [
        h
        for h in filled.reference["view_rack_usage"]
        if h["tranche_id"] == tranche_id and h["gpus_in_service"]
    ]
    if not hours:
        return None
    rates = [Decimal(h["output_tokens"]) / 3600 / Decimal(h["gpus_in_service"]) for h in hours]
    return (sum(rates, Decimal(0)) / len(rates)).quantize(Decimal("0.001"))


def test_tranches_json_has_every_tranche_with_consumption_and_throughput(filled: Filled) -> None:
    report = run_json("tranches", "--as-of", AS_OF)
    by_id = {t["tranche_id"]: t for t in report}
    assert {i: t["status"] for i, t in by_id.items()} == filled.scenario.tranche_statuses
    assert normalise("view_tranches", report) == normalise(
        "view_tranches", filled.reference["view_tranches"]
    )
    as_of = datetime(2026, 10, 12, 6, tzinfo=UTC)
    for tranche in filled.reference["view_tranches"]:
        got = by_id[tranche["tranche_id"]]
        assert got["as_of"] == "2026-10-12T06:00:00Z"
        hours = gpu_hours(tranche, as_of)
        accrued = hours * Decimal(tranche["price_per_gpu_hour"])
        assert Decimal(got["gpu_hours"]) == hours.quantize(Decimal("0.01"))
        assert Decimal(got["accrued_usd"]) == accrued.quantize(Decimal("0.01"))
        assert Decimal(got["consumption"]) == (
            accrued / Decimal(tranche["committed_usd"])
        ).quantize(Decimal("0.0001"))
        rate = observed_rate(filled, tranche["tranche_id"])
        assert (got["observed_tokens_per_s_per_gpu"] is None) == (rate is None)
        if rate is not None:
            assert Decimal(got["observed_tokens_per_s_per_gpu"]) == rate
        assert got["usage_hours"] == sum(
            1
            for h in filled.reference["view_rack_usage"]
            if h["tranche_id"] == tranche["tranche_id"]
        )
    # A tranche never delivered has consumed nothing and shows no throughput.
    contracted = by_id["tr-usfed-govw-01"]
    assert Decimal(contracted["consumption"]) == 0
    assert contracted["observed_tokens_per_s_per_gpu"] is None


def test_tranches_before_any_delivery_have_consumed_nothing(filled: Filled) -> None:
    report = run_json("tranches", "--as-of", "2026-10-05T00:30:00Z")
    assert len(report) == len(filled.scenario.tranche_statuses)
    for tranche in report:
        assert Decimal(tranche["consumption"]) == 0
        assert Decimal(tranche["gpu_hours"]) == 0
        assert Decimal(tranche["accrued_usd"]) == 0


def test_tranches_tenant_filter(filled: Filled) -> None:
    report = run_json("tranches", "--tenant", "acme")
    assert sorted(t["tranche_id"] for t in report) == ["tr-acme-eus2-01", "tr-acme-use1-01"]
    assert run_json("tranches", "--tenant", "no-such-tenant") == []


def test_tranches_table(filled: Filled, wide: None) -> None:
    result = run("tranches", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    for tranche, status in filled.scenario.tranche_statuses.items():
        line = next(line for line in result.stdout.splitlines() if tranche in line)
        assert status in line
    assert "9,216.00 USD" in result.stdout  # the SLA credit
    assert result.stderr == ""


@pytest.mark.parametrize("value", ["soon", "2026-10-12T06:00:00"])
def test_tranches_bad_as_of_exits_2_naming_the_option(filled: Filled, value: str) -> None:
    result = run("tranches", "--as-of", value, "--json")
    assert result.exit_code == 2
    assert "--as-of" in result.stderr
    assert result.stdout == ""


# --- lag ------------------------------------------------------------------------------------


def test_views_behind_the_log_say_so(filled: Filled) -> None:
    stale = run_json("chargeback", "--by", "tenant", "--month", "2026-11")
    append_unprojected(filled.database, late_requests(3))

    report = run_json("project", "status")
    for status in report:
        assert status["lag_entries"] == 3
        assert status["position"] == filled.size - 1
        assert status["lag_seconds"] >= 0
        assert status["error"] is None

    table = run("chargeback", "--month", "2026-11")
    assert table.exit_code == 0, table.output
    assert "note:" in table.stderr
    assert "chargeback is 3 entries behind the log" in table.stderr
    assert "pactledger project run" in table.stderr
    for command in (["audit", "residency"], ["tranches"]):
        other = run(*command)
        assert other.exit_code == 0, other.output
        assert "entries behind the log" in other.stderr

    # JSON stays clean for scripts, and shows the views as they are: without the late entries.
    as_json = run("chargeback", "--by", "tenant", "--month", "2026-11", "--json")
    assert as_json.stderr == ""
    assert json.loads(as_json.stdout) == stale

    assert run("project", "run").exit_code == 0
    assert all(s["lag_entries"] == 0 for s in run_json("project", "status"))
    current = run_json("chargeback", "--by", "tenant", "--month", "2026-11")
    acme = next(t for t in current if t["tenant"] == "acme")
    assert acme["requests"] == 2 + 3
    assert "behind" not in run("chargeback").stderr


def test_appending_through_the_cli_leaves_the_views_current(filled: Filled, tmp_path: Path) -> None:
    more = write_lines(
        tmp_path / "more.jsonl",
        [routed(960_000, tenant="initech", occurred_at="2026-11-05T08:00:00Z")],
    )
    assert run_json("append", str(more))["appended"] == 1
    assert all(s["lag_entries"] == 0 for s in run_json("project", "status"))
    totals = run_json("chargeback", "--by", "tenant", "--month", "2026-11")
    assert {t["tenant"]: t["requests"] for t in totals} == {"acme": 2, "globex": 1, "initech": 1}


def test_the_module_ledger_holds_the_scenario_and_the_november_requests(
    template: Filled,
) -> None:
    assert template.size == template.scenario.entries + len(NOVEMBER)


# --- odd input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        (("audit", "residency"), "--from", "0001-01-01T00:00:00+01:00"),
        (("audit", "residency"), "--to", "9999-12-31T23:00:00-05:00"),
        (("tranches",), "--as-of", "0001-01-01T00:00:00+01:00"),
    ],
)
def test_a_time_beyond_the_utc_range_is_no_crash(
    filled: Filled, command: tuple[str, ...], option: str, value: str
) -> None:
    result = run(*command, option, value, "--json")  # `run` fails on a traceback
    assert result.exit_code == 2, result.output
    assert option in result.stderr


@pytest.mark.parametrize("output", ["csv", "focus"])
def test_a_bad_group_is_refused_whatever_the_format(filled: Filled, output: str) -> None:
    result = run("chargeback", "--by", "colour", "--format", output)
    assert result.exit_code == 1
    assert "colour" in result.stderr
    assert result.stdout == ""
