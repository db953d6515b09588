"""The projector views over HTTP (``/v1/views/…``, docs/projectors.md), on SQLite and PostgreSQL.

Each backend gets one ledger per module holding the scenario of :mod:`tests.projections.scenario`
(four tenants, every residency status, five tranches, two price lists) and a few November
requests, projected; each test runs the real app over its own copy. Answers are held to the
reference views of :mod:`tests.projections.reference`, computed from the log alone, for the
tenants the caller may see.

Proves that status, residency, chargeback (JSON, CSV, FOCUS) and tranches answer in their
documented shapes; that a key sees only its tenants' rows (another tenant named in ``tenant=``
gives nothing, not an error) and an all-tenants key sees everything; that readers may call
them, ingest keys get 403 and strangers 401; that filters select what the reference says and
a bad one is a 422 naming it; and that ``lag_entries`` says when the views are behind the log.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.app.service import Ledger
from ledger.compose import projectors_for
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.api.conftest import Api, Template
from tests.conftest import create_database, database_url, drop_database
from tests.domain import routed
from tests.projections.reference import VIEW_COLUMNS, normalise, reference_views
from tests.projections.scenario import RESIDENCY_STATUSES, VIOLATIONS, Scenario, fill_ledger

pytestmark = pytest.mark.anyio

ENTRIES = 900
ALL_TENANTS = ("acme", "globex", "initech", "us-federal")
# key: the tenants it sees (KEYS of tests/api/conftest.py)
READERS: dict[str, tuple[str, ...]] = {
    "admin": ALL_TENANTS,
    "viewer-acme": ("acme",),
    "viewer-globex": ("globex",),
    "auditor-all": ALL_TENANTS,
    "auditor-acme": ("acme",),
}
PATHS = ("/v1/views/status", "/v1/views/residency", "/v1/views/chargeback", "/v1/views/tranches")
PROJECTOR_NAMES = ("compliance", "chargeback", "provenance", "capacity")
STATUS_KEYS = {"name", "position", "lag_entries", "lag_seconds", "updated_at", "error", "error_seq"}
COUNTS = ("requests", "input_tokens", "output_tokens", "cached_tokens")
NOVEMBER = [
    routed(900_001, tenant="acme", occurred_at="2026-11-02T09:00:00Z"),
    routed(900_002, tenant="acme", model="claude-haiku-4-5", occurred_at="2026-11-03T10:00:00Z"),
    routed(900_003, tenant="globex", occurred_at="2026-11-04T11:00:00Z"),
]
AS_OF = "2026-10-12T06:00:00Z"


@dataclass(frozen=True)
class Filled:
    url: str  # SQLite: a URL; PostgreSQL, for the module's ledger: the database's name
    keys: dict[str, str]
    scenario: Scenario
    size: int
    reference: dict[str, list[dict[str, Any]]]


def fill(url: str, keys: dict[str, str]) -> Filled:
    """The scenario and the November requests appended to the prepared ledger, then projected."""
    engine = make_engine(url)
    try:
        store = SqlLogStore(engine)
        ledger = Ledger(store=store, after_append=None)
        scenario = fill_ledger(ledger, entries=ENTRIES, seed=7)
        ledger.append(NOVEMBER)
        projectors_for(engine).catch_up()
        entries = list(store.iter_entries())
    finally:
        engine.dispose()
    return Filled(url, keys, scenario, len(entries), reference_views(entries))


@pytest.fixture(scope="module")
def filled_sqlite(
    sqlite_api_template: Template, tmp_path_factory: pytest.TempPathFactory
) -> Filled:
    path = tmp_path_factory.mktemp("views-api") / "ledger.db"
    copy_sqlite(Path(sqlite_api_template.url.removeprefix("sqlite:///")), path)
    return fill(f"sqlite:///{path}", sqlite_api_template.keys)


@pytest.fixture(scope="module")
def filled_postgres(postgres_api_template: Template) -> Iterator[Filled]:
    name = create_database(template=postgres_api_template.url)
    try:
        made = fill(database_url(name), postgres_api_template.keys)
        yield Filled(name, made.keys, made.scenario, made.size, made.reference)
    finally:
        drop_database(name)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a WAL-mode SQLite database."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Filled]:
    """This test's own copy of the module's filled ledger."""
    if request.param == "sqlite":
        module: Filled = request.getfixturevalue("filled_sqlite")
        copy = tmp_path / "ledger.db"
        copy_sqlite(Path(module.url.removeprefix("sqlite:///")), copy)
        yield Filled(
            f"sqlite:///{copy}", module.keys, module.scenario, module.size, module.reference
        )
        return
    module = request.getfixturevalue("filled_postgres")
    name = create_database(template=module.url)
    yield Filled(database_url(name), module.keys, module.scenario, module.size, module.reference)
    drop_database(name)


@pytest.fixture
def api_template(filled: Filled) -> Template:
    """The ``api`` fixture of conftest.py, over the filled ledger."""
    return Template(filled.url, filled.keys)


# --- helpers ---------------------------------------------------------------------------------


def settle(api: Api, timeout: float = 30.0) -> None:
    """Bring every view up to the head (the app's own projection thread may be at it too)."""
    projectors = api.services.projectors
    assert projectors is not None
    deadline = time.monotonic() + timeout
    while True:
        projectors.catch_up()
        if all(s.lag_entries == 0 for s in projectors.status()):
            return
        assert time.monotonic() < deadline, [s.to_json() for s in projectors.status()]
        time.sleep(0.02)


def append_unprojected(api: Api, entries: list[dict[str, Any]]) -> None:
    """Append as another producer with no projection configured would: nothing is woken."""
    assert api.services.engine is not None
    Ledger(store=SqlLogStore(api.services.engine), after_append=None).append(entries)


def late_requests(count: int, tenant: str = "acme") -> list[dict[str, Any]]:
    return [
        routed(950_000 + n, tenant=tenant, occurred_at=f"2026-11-20T10:00:{n:02d}Z")
        for n in range(count)
    ]


def rows_of(filled: Filled, table: str, tenants: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(tenants)
    return [row for row in filled.reference[table] if row["tenant"] in wanted]


async def get_json(api: Api, path: str, key: str, **params: Any) -> Any:
    response = await api.get(path, key, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def reference_totals(rows: Iterable[Mapping[str, Any]], by: str) -> dict[Any, dict[str, Any]]:
    totals: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key = (str(row[by]), row["currency"])
        total = totals.setdefault(
            key, {**dict.fromkeys(COUNTS, 0), "cost": Decimal(0), "price_list_versions": set()}
        )
        for measure in COUNTS:
            total[measure] += int(row[measure])
        total["cost"] += Decimal(str(row["cost"]))
        if row["price_list_id"]:
            total["price_list_versions"].add(f"{row['price_list_id']}@{row['price_list_version']}")
    for total in totals.values():
        total["price_list_versions"] = sorted(total["price_list_versions"])
    return totals


def answered_totals(totals: list[dict[str, Any]], by: str) -> dict[Any, dict[str, Any]]:
    return {
        (t[by], t["currency"]): {
            **{measure: t[measure] for measure in COUNTS},
            "cost": Decimal(t["cost"]),
            "price_list_versions": t["price_list_versions"],
        }
        for t in totals
    }


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def moment(row: Mapping[str, Any]) -> str:
    return str(row["served_at"] or row["decided_at"] or "")


# --- status ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["viewer-acme", "auditor-all"])
async def test_status_lists_every_projector_caught_up(api: Api, filled: Filled, key: str) -> None:
    report = await get_json(api, "/v1/views/status", key)
    assert [s["name"] for s in report] == list(PROJECTOR_NAMES)
    for status in report:
        assert set(status) == STATUS_KEYS
        assert status["position"] == filled.size - 1
        assert status["lag_entries"] == 0
        assert status["error"] is None


# --- residency -------------------------------------------------------------------------------


async def test_residency_lists_at_most_limit_requests_and_counts_them_all(
    api: Api, filled: Filled
) -> None:
    body = await get_json(api, "/v1/views/residency", "auditor-all", limit=5)
    assert len(body["requests"]) == 5
    assert body["truncated"] is True
    assert sum(body["summary"].values()) == len(filled.reference["view_residency"])
    response = await api.get("/v1/views/residency", "auditor-all", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "limit"


async def test_residency_equals_the_reference(api: Api, filled: Filled) -> None:
    body = await get_json(api, "/v1/views/residency", "auditor-all")
    assert set(body) == {"summary", "requests", "truncated", "lag_entries"}
    assert body["lag_entries"] == 0
    assert body["truncated"] is False
    expected = filled.reference["view_residency"]
    counts = Counter(row["status"] for row in expected)
    assert body["summary"] == {status: counts[status] for status in RESIDENCY_STATUSES}
    assert normalise("view_residency", body["requests"]) == normalise("view_residency", expected)
    order = [(moment(r), r["request_id"]) for r in body["requests"]]
    assert order == sorted(order)


@pytest.mark.parametrize("key", READERS)
async def test_residency_shows_a_key_only_its_tenants(api: Api, filled: Filled, key: str) -> None:
    body = await get_json(api, "/v1/views/residency", key)
    expected = rows_of(filled, "view_residency", READERS[key])
    assert {r["tenant"] for r in body["requests"]} == set(READERS[key])
    assert normalise("view_residency", body["requests"]) == normalise("view_residency", expected)
    assert sum(body["summary"].values()) == len(expected)


async def test_another_tenants_name_gives_nothing(api: Api) -> None:
    residency = await get_json(api, "/v1/views/residency", "viewer-acme", tenant="globex")
    assert residency["requests"] == []
    assert set(residency["summary"].values()) == {0}
    chargeback = await get_json(api, "/v1/views/chargeback", "viewer-acme", tenant="globex")
    assert chargeback["totals"] == []
    tranches = await get_json(api, "/v1/views/tranches", "viewer-acme", tenant="globex")
    assert tranches["tranches"] == []
    csv_text = await api.get(
        "/v1/views/chargeback", "viewer-acme", params={"tenant": "globex", "format": "csv"}
    )
    assert csv_text.status_code == 200
    assert parse_csv(csv_text.text)[1] == []
    # Asking for one's own tenant and another's gives one's own.
    both = await get_json(api, "/v1/views/residency", "viewer-acme", tenant=["acme", "globex"])
    assert {r["tenant"] for r in both["requests"]} == {"acme"}


async def test_an_all_tenants_key_filters_by_tenant(api: Api, filled: Filled) -> None:
    body = await get_json(
        api, "/v1/views/residency", "auditor-all", tenant=["initech", "us-federal"]
    )
    expected = rows_of(filled, "view_residency", ("initech", "us-federal"))
    assert sorted(r["request_id"] for r in body["requests"]) == sorted(
        r["request_id"] for r in expected
    )


@pytest.mark.parametrize("key", ["viewer-globex", "auditor-all"])
async def test_residency_violations_only(api: Api, filled: Filled, key: str) -> None:
    body = await get_json(api, "/v1/views/residency", key, violations_only="true")
    expected = [
        r for r in rows_of(filled, "view_residency", READERS[key]) if r["status"] in VIOLATIONS
    ]
    assert expected
    assert {r["status"] for r in body["requests"]} <= set(VIOLATIONS)
    assert sorted(r["request_id"] for r in body["requests"]) == sorted(
        r["request_id"] for r in expected
    )
    assert body["summary"]["compliant"] == body["summary"]["not_served"] == 0


@pytest.mark.parametrize("status", RESIDENCY_STATUSES)
async def test_residency_by_status(api: Api, filled: Filled, status: str) -> None:
    body = await get_json(api, "/v1/views/residency", "auditor-all", status=status)
    expected = [
        r["request_id"] for r in filled.reference["view_residency"] if r["status"] == status
    ]
    assert expected
    assert sorted(r["request_id"] for r in body["requests"]) == sorted(expected)
    both = await get_json(
        api, "/v1/views/residency", "auditor-all", status=status, violations_only="true"
    )
    assert len(both["requests"]) == (len(expected) if status in VIOLATIONS else 0)


async def test_residency_time_range(api: Api, filled: Filled) -> None:
    params = {"from": "2026-10-08T02:00:00+02:00", "to": "2026-10-10T12:00:00Z"}
    body = await get_json(api, "/v1/views/residency", "viewer-acme", **params)
    low, high = "2026-10-08T00:00:00.000000Z", "2026-10-10T12:00:00.000000Z"
    expected = sorted(
        r["request_id"]
        for r in rows_of(filled, "view_residency", ("acme",))
        if low <= moment(r) < high
    )
    assert expected
    assert sorted(r["request_id"] for r in body["requests"]) == expected


# --- chargeback ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", READERS)
async def test_chargeback_by_model_equals_the_reference(api: Api, filled: Filled, key: str) -> None:
    body = await get_json(api, "/v1/views/chargeback", key, by="model")
    assert set(body) == {"by", "month", "totals", "lag_entries"}
    assert (body["by"], body["month"], body["lag_entries"]) == ("model", None, 0)
    rows = rows_of(filled, "view_chargeback", READERS[key])
    assert answered_totals(body["totals"], "model") == reference_totals(rows, "model")
    assert all(isinstance(t["cost"], str) for t in body["totals"])


@pytest.mark.parametrize("by", ["business_unit", "tenant", "region", "day"])
async def test_chargeback_groups(api: Api, filled: Filled, by: str) -> None:
    body = await get_json(api, "/v1/views/chargeback", "auditor-acme", by=by)
    rows = rows_of(filled, "view_chargeback", ("acme",))
    assert answered_totals(body["totals"], by) == reference_totals(rows, by)


async def test_chargeback_month(api: Api, filled: Filled) -> None:
    body = await get_json(api, "/v1/views/chargeback", "auditor-all", by="tenant", month="2026-11")
    assert body["month"] == "2026-11"
    assert {t["tenant"]: t["requests"] for t in body["totals"]} == {"acme": 2, "globex": 1}
    october = await get_json(
        api, "/v1/views/chargeback", "viewer-globex", by="tenant", month="2026-10"
    )
    rows = [
        r for r in rows_of(filled, "view_chargeback", ("globex",)) if r["day"].startswith("2026-10")
    ]
    assert answered_totals(october["totals"], "tenant") == reference_totals(rows, "tenant")
    empty = await get_json(api, "/v1/views/chargeback", "auditor-all", month="2027-01")
    assert empty["totals"] == []


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({}, "chargeback-all.csv"),
        ({"month": "2026-10"}, "chargeback-2026-10.csv"),
    ],
)
async def test_chargeback_csv(api: Api, filled: Filled, params: dict[str, str], name: str) -> None:
    response = await api.get(
        "/v1/views/chargeback", "viewer-acme", params={**params, "format": "csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment")
    assert f'filename="{name}"' in disposition
    assert response.content.startswith(",".join(VIEW_COLUMNS["view_chargeback"]).encode() + b"\r\n")
    header, rows = parse_csv(response.text)
    assert header == list(VIEW_COLUMNS["view_chargeback"])
    month = params.get("month", "")
    expected = [
        r for r in rows_of(filled, "view_chargeback", ("acme",)) if r["day"].startswith(month)
    ]
    numbers = (*COUNTS, "price_list_version")
    got = [{**r, **{c: int(r[c]) for c in numbers}} for r in rows]
    assert normalise("view_chargeback", got) == normalise("view_chargeback", expected)


@pytest.mark.parametrize("key", ["viewer-globex", "auditor-all"])
async def test_chargeback_focus(api: Api, filled: Filled, key: str) -> None:
    response = await api.get("/v1/views/chargeback", key, params={"format": "focus"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="chargeback-all-focus.csv"' in response.headers["content-disposition"]
    header, rows = parse_csv(response.text)
    assert header[:4] == ["BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency"]
    expected = rows_of(filled, "view_chargeback", READERS[key])
    assert len(rows) == len(expected)
    assert {r["BillingAccountId"] for r in rows} == set(READERS[key])
    billed = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
    assert billed == sum((Decimal(str(r["cost"])) for r in expected), Decimal(0))
    totals = await get_json(api, "/v1/views/chargeback", key, by="tenant")
    assert billed == sum((Decimal(t["cost"]) for t in totals["totals"]), Decimal(0))


async def test_chargeback_focus_of_a_month_names_the_month(api: Api) -> None:
    response = await api.get(
        "/v1/views/chargeback", "auditor-all", params={"format": "focus", "month": "2026-11"}
    )
    assert response.status_code == 200, response.text
    assert 'filename="chargeback-2026-11-focus.csv"' in response.headers["content-disposition"]
    _, rows = parse_csv(response.text)
    assert sum(int(r["x_Requests"]) for r in rows) == len(NOVEMBER)
    assert {r["ChargePeriodStart"][:7] for r in rows} == {"2026-11"}


# --- tranches --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", READERS)
async def test_tranches_equal_the_reference(api: Api, filled: Filled, key: str) -> None:
    body = await get_json(api, "/v1/views/tranches", key, as_of=AS_OF)
    assert set(body) == {"tranches", "lag_entries"}
    assert body["lag_entries"] == 0
    expected = rows_of(filled, "view_tranches", READERS[key])
    assert normalise("view_tranches", body["tranches"]) == normalise("view_tranches", expected)
    statuses = {t["tranche_id"]: t["status"] for t in body["tranches"]}
    assert statuses == {
        t["tranche_id"]: filled.scenario.tranche_statuses[t["tranche_id"]] for t in expected
    }
    for tranche in body["tranches"]:
        assert tranche["as_of"] == "2026-10-12T06:00:00Z"
        for field in ("gpu_hours", "accrued_usd", "consumption", "observed_tokens_per_s_per_gpu"):
            assert field in tranche
            assert tranche[field] is None or isinstance(tranche[field], str)
        assert isinstance(tranche["milestones"], list)


async def test_tranches_before_any_delivery_have_consumed_nothing(api: Api) -> None:
    body = await get_json(api, "/v1/views/tranches", "auditor-all", as_of="2026-10-05T00:30:00Z")
    assert len(body["tranches"]) == 5
    assert all(Decimal(t["consumption"]) == 0 for t in body["tranches"])


async def test_tranches_default_to_now(api: Api) -> None:
    body = await get_json(api, "/v1/views/tranches", "viewer-acme")
    assert all(t["as_of"] > "2026-10-16" for t in body["tranches"])
    delivered = next(t for t in body["tranches"] if t["tranche_id"] == "tr-acme-use1-01")
    assert Decimal(delivered["consumption"]) > 0


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/views/residency", {"status": "nope"}, "status"),
        ("/v1/views/residency", {"from": "2026-10-08T00:00:00"}, "from"),
        ("/v1/views/residency", {"to": "yesterday"}, "to"),
        ("/v1/views/residency", {"violations_only": "maybe"}, "violations_only"),
        ("/v1/views/chargeback", {"month": "2026-13"}, "month"),
        ("/v1/views/chargeback", {"month": "2026-1"}, "month"),
        ("/v1/views/chargeback", {"month": "2026-13", "format": "csv"}, "month"),
        ("/v1/views/chargeback", {"by": "colour"}, "by"),
        ("/v1/views/chargeback", {"format": "xml"}, "format"),
        ("/v1/views/tranches", {"as_of": "2026-10-12T06:00:00"}, "as_of"),
    ],
)
async def test_a_bad_parameter_is_422_naming_it(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    response = await api.get(path, "auditor-all", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field


@pytest.mark.parametrize("key", ["ingest-acme", "ingest-globex"])
async def test_ingest_keys_may_not_read_views(api: Api, key: str) -> None:
    for path in PATHS:
        response = await api.get(path, key)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "forbidden"


async def test_views_need_a_key(api: Api) -> None:
    for path in PATHS:
        response = await api.client.get(path)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"


# --- lag -------------------------------------------------------------------------------------


async def test_lag_entries_say_when_the_views_are_behind(api: Api, filled: Filled) -> None:
    append_unprojected(api, late_requests(3))

    status = await get_json(api, "/v1/views/status", "viewer-acme")
    assert [s["lag_entries"] for s in status] == [3] * 4
    assert all(s["position"] == filled.size - 1 for s in status)
    residency = await get_json(api, "/v1/views/residency", "viewer-acme")
    chargeback = await get_json(
        api, "/v1/views/chargeback", "viewer-acme", by="tenant", month="2026-11"
    )
    tranches = await get_json(api, "/v1/views/tranches", "viewer-acme")
    assert residency["lag_entries"] == chargeback["lag_entries"] == tranches["lag_entries"] == 3
    assert chargeback["totals"][0]["requests"] == 2  # the late requests are not in yet

    settle(api)
    chargeback = await get_json(
        api, "/v1/views/chargeback", "viewer-acme", by="tenant", month="2026-11"
    )
    assert chargeback["lag_entries"] == 0
    assert chargeback["totals"][0]["requests"] == 2 + 3


async def test_events_posted_to_the_api_reach_the_views(api: Api) -> None:
    posted = await api.post(
        "/v1/events",
        "ingest-globex",
        routed(970_000, tenant="globex", occurred_at="2026-11-09T00:00:00Z"),
    )
    assert posted.status_code == 201, posted.text
    settle(api)
    body = await get_json(
        api, "/v1/views/chargeback", "viewer-globex", by="tenant", month="2026-11"
    )
    assert body["totals"][0]["requests"] == 1 + 1
    residency = await get_json(api, "/v1/views/residency", "viewer-globex", status="no_decision")
    assert "req-970000" in {r["request_id"] for r in residency["requests"]}


# --- rebuild ---------------------------------------------------------------------------------


async def answers(api: Api) -> list[Any]:
    residency = await get_json(api, "/v1/views/residency", "auditor-all")
    chargeback = await api.get("/v1/views/chargeback", "auditor-all", params={"format": "csv"})
    assert chargeback.status_code == 200, chargeback.text
    tranches = await get_json(api, "/v1/views/tranches", "auditor-all", as_of=AS_OF)
    return [residency, chargeback.text, tranches]


@pytest.mark.parametrize("name", PROJECTOR_NAMES)
async def test_a_rebuild_changes_no_answer(api: Api, filled: Filled, name: str) -> None:
    """Rebuilt twice (shadow tables swapped in, keys and indexes renamed back), a projector's
    views answer as before, and go on taking new entries."""
    projectors = api.services.projectors
    assert projectors is not None
    before = await answers(api)
    for _ in range(2):
        result = projectors.rebuild(name)
        assert (result.projected, result.position) == (filled.size, filled.size - 1)
        assert await answers(api) == before
    posted = await api.post(
        "/v1/events",
        "ingest-acme",
        routed(980_000, tenant="acme", occurred_at="2026-11-10T00:00:00Z"),
    )
    assert posted.status_code == 201, posted.text
    settle(api)
    residency, chargeback, _ = await answers(api)
    assert "req-980000" in {r["request_id"] for r in residency["requests"]}
    assert "2026-11-10" in chargeback


# --- odd input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/views/residency", {"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ("/v1/views/residency", {"to": "9999-12-31T23:00:00-05:00"}, "to"),
        ("/v1/views/tranches", {"as_of": "0001-01-01T00:00:00+01:00"}, "as_of"),
    ],
)
async def test_a_time_beyond_the_utc_range_is_no_server_error(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    response = await api.get(path, "auditor-all", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("output", ["csv", "focus"])
async def test_a_bad_group_is_refused_whatever_the_format(api: Api, output: str) -> None:
    response = await api.get(
        "/v1/views/chargeback", "auditor-all", params={"by": "colour", "format": output}
    )
    assert response.status_code == 422, response.text[:200]
    assert response.json()["error"]["field"] == "by"
