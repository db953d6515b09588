"""``GET /v1/reconcile`` (tranche reconciliation over HTTP), on SQLite and PostgreSQL.

The ledger holds the tranches of :mod:`tests.cli.test_reconcile_cli` (tenant ``acme``): ``t-on``
meets its SLA, ``t-under`` is below it, ``t-over`` over-reports, ``t-idle`` is barely used.

Proves that the route answers what :func:`ledger.app.reconcile.reconcile` (and so
``pactledger reconcile --json``) gives for the same ledger and period, including the proposed
credit of the under-delivering tranche (43.20 USD); that it appends nothing; that a key of
another tenant sees no tranche (an empty list, a 404 for a named one, like an unknown id);
that strangers get 401 and ingest keys 403; and that a bad ``band``, ``from`` or ``to`` is a
422 naming the parameter.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.app.reconcile import reconcile
from tests.api.conftest import Api
from tests.cli.test_reconcile_cli import END, START, benchmark, capacity, served, tranche

pytestmark = pytest.mark.anyio

PERIOD = {"from": START, "to": END}
GPUS = 72


def fill(api: Api) -> None:
    """The CLI test's four tranches, benchmarks and usage, appended and projected."""
    rate = capacity()
    busy = int(rate * GPUS * 7200 * Decimal("0.8"))
    lines: list[dict[str, Any]] = []
    for tid in ("t-idle", "t-on", "t-over", "t-under"):
        lines += tranche(tid)
    lines += [
        benchmark("t-on", rate),
        benchmark("t-under", Decimal(6000)),
        benchmark("t-over", rate * 3),
        benchmark("t-idle", rate * Decimal("0.95")),
        served(1, "t-on", busy),
        served(2, "t-under", busy),
        served(3, "t-idle", 1000),
    ]
    api.services.ledger.append(lines)
    settle(api)


def settle(api: Api, timeout: float = 30.0) -> None:
    projectors = api.services.projectors
    assert projectors is not None
    deadline = time.monotonic() + timeout
    while True:
        projectors.catch_up()
        if all(s.lag_entries == 0 for s in projectors.status()):
            return
        assert time.monotonic() < deadline, "the views did not catch up"
        time.sleep(0.02)


def direct(api: Api, **kwargs: Any) -> list[dict[str, Any]]:
    """What the CLI computes: the app function over the same views and store."""
    projectors = api.services.projectors
    assert projectors is not None
    return reconcile(
        projectors.views,
        api.services.ledger.store,
        start=kwargs.pop("start", None),
        end=kwargs.pop("end"),
        **kwargs,
    )


async def test_under_delivering_tranche_gets_the_cli_credit(api: Api) -> None:
    fill(api)
    size = api.services.ledger.store.head().size
    response = await api.get("/v1/reconcile", "viewer-acme", params=PERIOD)
    assert response.status_code == 200, response.text
    reports = response.json()

    expected = direct(
        api,
        start=datetime.fromisoformat(START.replace("Z", "+00:00")),
        end=datetime.fromisoformat(END.replace("Z", "+00:00")),
    )
    assert reports == expected
    by_id = {r["tranche_id"]: r for r in reports}
    assert list(by_id) == ["t-idle", "t-on", "t-over", "t-under"]
    under = by_id["t-under"]
    assert under["verdict"] == "below_sla"
    assert under["credit"]["credit_usd"] == "43.2"
    assert under["credit"]["shortfall"] == "0.3333"
    assert under["recorded_seq"] is None
    assert by_id["t-on"]["verdict"] == "meets_sla"
    assert by_id["t-over"]["verdict"] == "over_reporting"
    assert by_id["t-idle"]["usage"]["status"] == "low_utilisation"
    # One tranche; an all-tenants key sees the same.
    one = await api.get("/v1/reconcile", "admin", params={**PERIOD, "tranche": "t-under"})
    assert one.status_code == 200, one.text
    assert one.json() == [under]
    # Proposing appends nothing.
    assert api.services.ledger.store.head().size == size


async def test_band_changes_the_verdict_like_the_cli(api: Api) -> None:
    fill(api)
    params = {**PERIOD, "tranche": "t-over", "band": "3"}
    response = await api.get("/v1/reconcile", "auditor-acme", params=params)
    assert response.status_code == 200, response.text
    [over] = response.json()
    assert over["benchmarks"][0]["band"] == "3"
    assert over["verdict"] != "over_reporting"


async def test_another_tenant_sees_no_tranche(api: Api) -> None:
    fill(api)
    listed = await api.get("/v1/reconcile", "viewer-globex", params=PERIOD)
    assert listed.status_code == 200, listed.text
    assert listed.json() == []
    foreign = await api.get("/v1/reconcile", "viewer-globex", params={"tranche": "t-under"})
    unknown = await api.get("/v1/reconcile", "viewer-acme", params={"tranche": "t-nope"})
    for response in (foreign, unknown):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    assert foreign.json()["error"]["message"] == "no tranche 't-under'"


async def test_access_and_bad_parameters(api: Api) -> None:
    assert (await api.client.get("/v1/reconcile")).status_code == 401
    assert (await api.get("/v1/reconcile", "ingest-acme")).status_code == 403
    bad: list[tuple[dict[str, str], str]] = [
        ({"band": "wide"}, "band"),
        ({"band": "-0.1"}, "band"),
        ({"band": "NaN"}, "band"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-11-02T02:00:00"}, "to"),  # no offset
        ({"from": END, "to": START}, "to"),  # empty period
    ]
    for params, field in bad:
        response = await api.get("/v1/reconcile", "viewer-acme", params=params)
        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["field"] == field, (params, error)
