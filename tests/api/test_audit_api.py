"""Audit queries over HTTP: filters, tenant scoping and stable cursors that neither repeat
nor skip an entry while the log grows."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.app.governance import decide
from ledger.policy import Facts
from tests.api.conftest import Api
from tests.domain import routed

pytestmark = pytest.mark.anyio

MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]


def seed_inferences(api: Api, count: int) -> None:
    api.services.ledger.append(
        [
            routed(
                n,
                tenant="acme" if n % 2 else "globex",
                model=MODELS[n % 3],
                business_unit="research" if n % 4 < 2 else "sales",
                occurred_at=f"2026-11-{1 + n % 20:02d}T10:00:00Z",
            )
            for n in range(count)
        ]
    )


async def all_pages(api: Api, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(path, key, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


async def test_inferences_filter_and_page_without_repeats(api: Api) -> None:
    seed_inferences(api, 60)
    everything = await all_pages(api, "/v1/audit/inferences", "auditor-all", limit=7)
    assert len(everything) == 60
    assert [i["seq"] for i in everything] == sorted({i["seq"] for i in everything})
    assert all(i["cost"] and i["price_list_version"] == 1 for i in everything)
    haiku = await all_pages(
        api, "/v1/audit/inferences", "auditor-all", model="claude-haiku-4-5", limit=5
    )
    assert len(haiku) == 20
    assert {i["model"] for i in haiku} == {"claude-haiku-4-5"}
    narrow = await all_pages(
        api,
        "/v1/audit/inferences",
        "auditor-all",
        business_unit="sales",
        tenant="acme",
        **{"from": "2026-11-05T00:00:00Z", "to": "2026-11-10T00:00:00Z"},
    )
    expected = [
        n for n in range(60)
        if n % 2 and n % 4 >= 2 and 4 <= n % 20 < 9
    ]  # fmt: skip
    assert sorted(int(i["request_id"].removeprefix("req-")) for i in narrow) == expected


async def test_a_reader_sees_only_its_tenants(api: Api) -> None:
    seed_inferences(api, 20)
    mine = await all_pages(api, "/v1/audit/inferences", "viewer-acme")
    assert {i["tenant"] for i in mine} == {"acme"}
    assert len(mine) == 10
    other = await all_pages(api, "/v1/audit/inferences", "viewer-acme", tenant="globex")
    assert other == []


async def test_a_cursor_is_stable_while_the_log_grows(api: Api) -> None:
    seed_inferences(api, 10)
    first = (await api.get("/v1/audit/inferences", "auditor-all", params={"limit": 4})).json()
    api.services.ledger.append([routed(100, tenant="acme")])
    rest = await all_pages(
        api, "/v1/audit/inferences", "auditor-all", cursor=first["next_cursor"], limit=4
    )
    seqs = [i["seq"] for i in first["items"] + rest]
    assert len(seqs) == 11
    assert seqs == sorted(set(seqs))


async def test_decisions_filter_by_outcome_policy_and_region(api: Api) -> None:
    ledger = api.services.ledger
    policy_set = api.services.published_policies()
    cases = [
        ("acme", ("eu_personal",), "aws", "us-east-1"),  # reroute
        ("acme", ("eu_personal",), "aws", "eu-central-1"),  # allow
        ("acme", ("internal",), "aws", "mars-1"),  # deny
        ("globex", ("internal",), "aws", "us-east-1"),  # allow, other tenant
    ]
    for n, (tenant, classes, provider, region) in enumerate(cases):
        facts = Facts(tenant, classes, provider, region, "sonnet")
        decide(ledger, policy_set, facts, request_id=f"r{n}", record=True)
    rerouted = await all_pages(api, "/v1/audit/decisions", "viewer-acme", outcome="reroute")
    assert [d["request_id"] for d in rerouted] == ["r0"]
    assert rerouted[0]["chosen_region"] == "eu-central-1"
    by_region = await all_pages(api, "/v1/audit/decisions", "viewer-acme", region="eu-central-1")
    assert [d["request_id"] for d in by_region] == ["r0", "r1"]  # chosen or candidate
    digest = next(r.digest for r in policy_set.refs if r.policy_id == "eu-data-boundary")
    for policy in ("eu-data-boundary", "eu-data-boundary@1", digest):
        cited = await all_pages(api, "/v1/audit/decisions", "auditor-all", policy=policy)
        assert len(cited) == 4
    assert await all_pages(api, "/v1/audit/decisions", "auditor-all", policy="nope@9") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "banana"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"from": "2026-11-05T00:00:00"}, "from"),
        ({"from": "2026-11-05T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
        ({"outcome": "maybe"}, "outcome"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_field(
    api: Api, params: dict[str, Any], field: str
) -> None:
    path = "/v1/audit/decisions"
    response = await api.get(path, "auditor-all", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


async def test_a_selective_filter_returns_short_pages_with_a_cursor(api: Api) -> None:
    seed_inferences(api, 50)
    response = await api.get(
        "/v1/audit/inferences", "auditor-all", params={"model": "nope", "limit": 1}
    )
    body = response.json()
    assert body["items"] == []
    assert body["scanned"] == 20  # the scan budget of a 1-item page
    assert body["next_cursor"] is not None
