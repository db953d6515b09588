"""POST /v1/events and /v1/events:batch over the real app: receipts, idempotency, every bad
input refused with the one error shape and nothing appended, batch and body limits, group
commit under concurrency, and the event catalogue routes.

Every refusal is checked twice: the error body (status, code, field, index) and the log's
head size, which must not move.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from ledger.settings import Settings
from tests.api.conftest import Api, serve
from tests.domain import delivered, price_list, routed

pytestmark = pytest.mark.anyio

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ERROR_KEYS = {"status", "code", "message", "field", "index"}


# --- helpers ---------------------------------------------------------------------------------


def error_of(
    response: httpx.Response,
    status: int,
    code: str,
    *,
    field: str | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """The error object of ``response``, checked against the one stable error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) <= ERROR_KEYS, error
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error
    if index is not None:
        assert error.get("index") == index, error
    else:
        assert "index" not in error, error
    return error


def size(api: Api) -> int:
    return api.services.ledger.head().size


def stored_payload(api: Api, seq: int) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(api.services.ledger.entry(seq).entry_bytes)["payload"]
    return payload


def stored(api: Api, seq: int) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(api.services.ledger.entry(seq).entry_bytes)
    return data


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus exposition text."""
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match is not None, f"no sample {name}{{{labels}}} in:\n{text}"
    return float(match.group(1))


async def post(api: Api, path: str, key: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    """``api.post`` with extra headers (``Api.post`` sets only Authorization)."""
    return await api.client.post(path, json=body, headers={**api.auth(key), **headers})


def without(entry: dict[str, Any], field: str) -> dict[str, Any]:
    """``entry`` with one payload field removed."""
    payload = {k: v for k, v in entry["payload"].items() if k != field}
    return {**entry, "payload": payload}


# --- one entry -------------------------------------------------------------------------------


async def test_post_returns_a_receipt_and_stores_the_priced_entry(api: Api) -> None:
    before = size(api)
    response = await api.post("/v1/events", "ingest-acme", routed(1))
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["seq"] == before
    assert receipt["tree_size"] == before + 1
    assert receipt["duplicate"] is False
    assert receipt["stream"] == "request:req-1"
    assert receipt["stream_version"] == 1
    assert HEX64.match(receipt["leaf_hash"])
    assert HEX64.match(receipt["chain_hash"])
    assert isinstance(receipt["event_id"], str)
    assert receipt["event_id"]

    sealed = api.services.ledger.entry(receipt["seq"])
    assert sealed.leaf_hash.hex() == receipt["leaf_hash"]
    assert sealed.chain_hash.hex() == receipt["chain_hash"]
    assert sealed.event_id == receipt["event_id"]
    payload = stored_payload(api, receipt["seq"])
    # 1001 input tokens at 3 USD and 200 output tokens at 15 USD per million (tests/domain.py)
    assert Decimal(payload["cost"]) == Decimal("0.006003")
    assert payload["currency"] == "USD"
    assert payload["price_list_id"] == "list-2026"
    assert payload["price_list_version"] == 1
    assert size(api) == before + 1


async def test_post_without_a_key_or_for_another_tenant_is_refused(api: Api) -> None:
    before = size(api)
    anonymous = await api.client.post("/v1/events", json=routed(1))
    error_of(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    foreign = await api.post("/v1/events", "ingest-globex", routed(1))
    error_of(foreign, 403, "forbidden", field="tenant")
    reader = await api.post("/v1/events", "viewer-acme", routed(1))
    error_of(reader, 403, "forbidden")
    assert size(api) == before


async def test_an_idempotent_retry_returns_the_same_receipt(api: Api) -> None:
    headers = {"Idempotency-Key": "route-1"}
    first = await post(api, "/v1/events", "ingest-acme", routed(1), headers)
    assert first.status_code == 201, first.text
    after_first = size(api)
    retry = await post(api, "/v1/events", "ingest-acme", routed(1), headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["duplicate"] is True
    assert retry.json()["seq"] == first.json()["seq"]
    assert retry.json()["leaf_hash"] == first.json()["leaf_hash"]
    assert size(api) == after_first
    assert stored(api, first.json()["seq"])["idempotency_key"] == "route-1"

    # the same key in the body is the same request
    same = await post(
        api, "/v1/events", "ingest-acme", {**routed(1), "idempotency_key": "route-1"}, headers
    )
    assert same.status_code == 200, same.text
    assert same.json()["seq"] == first.json()["seq"]
    assert size(api) == after_first


async def test_header_and_body_idempotency_keys_must_agree(api: Api) -> None:
    before = size(api)
    response = await post(
        api,
        "/v1/events",
        "ingest-acme",
        {**routed(1), "idempotency_key": "in-body"},
        {"Idempotency-Key": "in-header"},
    )
    error_of(response, 422, "validation_error", field="idempotency_key")
    assert size(api) == before


async def test_a_key_reused_with_other_content_is_a_conflict(api: Api) -> None:
    headers = {"Idempotency-Key": "route-x"}
    first = await post(api, "/v1/events", "ingest-acme", routed(1), headers)
    assert first.status_code == 201, first.text
    before = size(api)
    other = await post(api, "/v1/events", "ingest-acme", routed(2), headers)
    error = error_of(other, 409, "idempotency_conflict")
    assert "route-x" in error["message"]
    assert size(api) == before


def _float_price_list() -> dict[str, Any]:
    entry = price_list(price_list_id="list-float")
    entry["payload"]["prices"][0]["input_per_million"] = 3.5
    return entry


BAD_ENTRIES: list[Any] = [
    pytest.param({**routed(1), "type": "NoSuchEvent"}, "type", id="unknown-type"),
    pytest.param(without(routed(1), "business_unit"), "payload.business_unit", id="missing"),
    pytest.param(routed(1, input_tokens="many"), "payload.input_tokens", id="wrong-type"),
    pytest.param(routed(1, output_tokens=-1), "payload.output_tokens", id="negative"),
    pytest.param(routed(1, occurred_at="2026-11-02T10:00:00"), "occurred_at", id="naive-time"),
    pytest.param(_float_price_list(), "payload.prices.0.input_per_million", id="float-money"),
    pytest.param({**routed(1), "colour": "red"}, "colour", id="unknown-top-level-field"),
    pytest.param({**routed(1), "payload": ["not", "an", "object"]}, "payload", id="list-payload"),
    pytest.param({**routed(1), "payload": "text"}, "payload", id="string-payload"),
    pytest.param({**routed(1), "stream": "no colon"}, "stream", id="bad-stream"),
    pytest.param({**routed(1), "tenant": ""}, "tenant", id="empty-tenant"),
    pytest.param({**routed(1), "schema_version": 99}, None, id="unknown-schema-version"),
    pytest.param({k: v for k, v in routed(1).items() if k != "type"}, "type", id="missing-type"),
]


@pytest.mark.parametrize(("entry", "field"), BAD_ENTRIES)
async def test_a_bad_entry_is_refused_by_field_and_nothing_is_appended(
    api: Api, entry: dict[str, Any], field: str | None
) -> None:
    before = size(api)
    response = await api.post("/v1/events", "admin", entry)
    error_of(response, 422, "validation_error", field=field)
    assert size(api) == before


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_a_body_that_is_not_an_object_is_refused(api: Api, content: bytes) -> None:
    before = size(api)
    response = await api.client.post(
        "/v1/events",
        content=content,
        headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
    )
    error_of(response, 422, "validation_error")
    assert size(api) == before


async def test_malformed_json_is_refused_with_the_error_shape(api: Api) -> None:
    before = size(api)
    response = await api.client.post(
        "/v1/events",
        content=b'{"type": "InferenceRouted", ',
        headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
    )
    error_of(response, 422, "validation_error")
    assert size(api) == before


async def test_malformed_json_names_no_offset_as_its_field(api: Api) -> None:
    response = await api.client.post(
        "/v1/events",
        content=b'{"type": "InferenceRouted", ',
        headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
    )
    error = error_of(response, 422, "validation_error")
    assert error.get("field") in (None, "body"), error


async def test_expected_version_mismatch_is_a_concurrency_conflict(api: Api) -> None:
    first = await api.post("/v1/events", "ingest-acme", {**routed(1), "expected_version": 0})
    assert first.status_code == 201, first.text
    before = size(api)
    stale = await api.post(
        "/v1/events", "ingest-acme", {**routed(1, input_tokens=5), "expected_version": 0}
    )
    error = error_of(stale, 409, "concurrency_conflict")
    assert "request:req-1" in error["message"]
    assert size(api) == before
    current = await api.post(
        "/v1/events", "ingest-acme", {**routed(1, input_tokens=5), "expected_version": 1}
    )
    assert current.status_code == 201, current.text
    assert current.json()["stream_version"] == 2


# --- batches ---------------------------------------------------------------------------------


async def test_a_batch_appends_in_order(api: Api) -> None:
    before = size(api)
    events = [routed(1), delivered(1), routed(2), delivered(2), routed(3)]
    response = await api.post("/v1/events:batch", "admin", {"events": events})
    assert response.status_code == 201, response.text
    body = response.json()
    receipts = body["receipts"]
    assert [r["seq"] for r in receipts] == list(range(before, before + 5))
    assert [r["stream"] for r in receipts] == [e["stream"] for e in events]
    assert all(r["duplicate"] is False for r in receipts)
    assert body["tree_size"] == before + 5 == size(api)
    for receipt in receipts:
        assert api.services.ledger.entry(receipt["seq"]).leaf_hash.hex() == receipt["leaf_hash"]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        pytest.param(without(routed(2), "model"), "payload.model", id="admission"),
        pytest.param(routed(2, occurred_at="2026-11-02T10:00:00"), "occurred_at", id="wire"),
        pytest.param({**routed(2), "type": "NoSuchEvent"}, "type", id="unknown-type"),
        pytest.param(routed(2, input_tokens=1.5), "payload.input_tokens", id="float-tokens"),
    ],
)
async def test_a_batch_is_all_or_nothing(api: Api, bad: dict[str, Any], field: str) -> None:
    before = size(api)
    events = [routed(0), routed(1), bad, routed(3), routed(4)]
    response = await api.post("/v1/events:batch", "ingest-acme", {"events": events})
    error_of(response, 422, "validation_error", field=field, index=2)
    assert size(api) == before


async def test_a_batch_entry_for_a_foreign_tenant_is_refused_by_index(api: Api) -> None:
    before = size(api)
    events = [routed(0), routed(1, tenant="globex")]
    response = await api.post("/v1/events:batch", "ingest-acme", {"events": events})
    error_of(response, 403, "forbidden", field="tenant", index=1)
    assert size(api) == before


async def test_a_batch_of_duplicates_answers_200(api: Api) -> None:
    events = [{**routed(n), "idempotency_key": f"route-{n}"} for n in range(3)]
    first = await api.post("/v1/events:batch", "ingest-acme", {"events": events})
    assert first.status_code == 201, first.text
    before = size(api)
    again = await api.post("/v1/events:batch", "ingest-acme", {"events": events})
    assert again.status_code == 200, again.text
    assert [r["seq"] for r in again.json()["receipts"]] == [
        r["seq"] for r in first.json()["receipts"]
    ]
    assert all(r["duplicate"] for r in again.json()["receipts"])
    assert again.json()["tree_size"] == before == size(api)


async def test_a_batch_with_some_new_entries_answers_201(api: Api) -> None:
    events = [{**routed(n), "idempotency_key": f"route-{n}"} for n in range(3)]
    first = await api.post("/v1/events:batch", "ingest-acme", {"events": events[:2]})
    assert first.status_code == 201, first.text
    mixed = await api.post("/v1/events:batch", "ingest-acme", {"events": events})
    assert mixed.status_code == 201, mixed.text
    assert [r["duplicate"] for r in mixed.json()["receipts"]] == [True, True, False]


async def test_a_batch_idempotency_header_keys_each_entry_by_index(api: Api) -> None:
    events = [routed(0), {**routed(1), "idempotency_key": "own-key"}, routed(2)]
    headers = {"Idempotency-Key": "upload-7"}
    first = await post(api, "/v1/events:batch", "ingest-acme", {"events": events}, headers)
    assert first.status_code == 201, first.text
    seqs = [r["seq"] for r in first.json()["receipts"]]
    assert [stored(api, s)["idempotency_key"] for s in seqs] == [
        "upload-7:0",
        "own-key",
        "upload-7:2",
    ]
    before = size(api)
    retry = await post(api, "/v1/events:batch", "ingest-acme", {"events": events}, headers)
    assert retry.status_code == 200, retry.text
    assert [r["seq"] for r in retry.json()["receipts"]] == seqs
    assert size(api) == before


async def test_an_empty_batch_is_refused(api: Api) -> None:
    before = size(api)
    response = await api.post("/v1/events:batch", "ingest-acme", {"events": []})
    error_of(response, 422, "validation_error", field="events")
    assert size(api) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-events"),
        pytest.param({"events": routed(1)}, id="object-not-list"),
        pytest.param({"events": [routed(1)], "extra": 1}, id="unknown-field"),
    ],
)
async def test_a_malformed_batch_is_refused(api: Api, body: dict[str, Any]) -> None:
    before = size(api)
    response = await api.post("/v1/events:batch", "ingest-acme", body)
    error_of(response, 422, "validation_error")
    assert size(api) == before


async def test_a_batch_over_the_limit_is_too_large(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_max_batch": 3})
    async with serve(settings) as api:
        before = size(api)
        over = await api.post(
            "/v1/events:batch", "ingest-acme", {"events": [routed(n) for n in range(4)]}
        )
        error = error_of(over, 413, "too_large")
        assert "3" in error["message"]
        assert size(api) == before
        at_limit = await api.post(
            "/v1/events:batch", "ingest-acme", {"events": [routed(n) for n in range(3)]}
        )
        assert at_limit.status_code == 201, at_limit.text
        assert size(api) == before + 3


def _big_batch() -> bytes:
    return json.dumps({"events": [routed(n) for n in range(10)]}).encode()


async def test_a_body_over_the_limit_is_too_large(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_max_body_bytes": 2048})
    async with serve(settings) as api:
        content = _big_batch()
        assert len(content) > 2048
        before = size(api)
        response = await api.client.post(
            "/v1/events:batch",
            content=content,
            headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
        )
        error = error_of(response, 413, "too_large")
        assert "2048" in error["message"]
        assert size(api) == before

        small = await api.post("/v1/events", "ingest-acme", routed(1))
        assert small.status_code == 201, small.text


async def test_a_streamed_body_within_the_limit_is_read(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_max_body_bytes": 2048})
    async with serve(settings) as api:
        content = json.dumps(routed(1)).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(content), 100):
                yield content[start : start + 100]

        response = await api.client.post(
            "/v1/events",
            content=chunks(),
            headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 201, response.text


async def test_a_streamed_body_over_the_limit_appends_nothing(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_max_body_bytes": 2048})
    async with serve(settings) as api:
        before = size(api)
        response = await _post_streamed_big_batch(api)
        assert response.status_code in (400, 413), response.text
        assert size(api) == before


async def test_a_streamed_body_over_the_limit_is_too_large(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_max_body_bytes": 2048})
    async with serve(settings) as api:
        response = await _post_streamed_big_batch(api)
        error_of(response, 413, "too_large")


async def _post_streamed_big_batch(api: Api) -> httpx.Response:
    content = _big_batch()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 500):
            yield content[start : start + 500]

    response = await api.client.post(
        "/v1/events:batch",
        content=chunks(),
        headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers  # sent chunked
    return response


# --- group commit ----------------------------------------------------------------------------


async def test_concurrent_posts_share_transactions(api: Api) -> None:
    before = size(api)
    responses = await asyncio.gather(
        *(api.post("/v1/events", "ingest-acme", routed(n)) for n in range(40))
    )
    assert [r.status_code for r in responses] == [201] * 40, [r.text for r in responses]
    seqs = sorted(r.json()["seq"] for r in responses)
    assert seqs == list(range(before, before + 40))
    assert size(api) == before + 40
    for response in responses:
        receipt = response.json()
        assert api.services.ledger.entry(receipt["seq"]).leaf_hash.hex() == receipt["leaf_hash"]
        assert receipt["tree_size"] > receipt["seq"]

    metrics = (await api.client.get("/metrics")).text
    transactions = metric(metrics, "pactledger_append_batch_entries_count", 'path="single"')
    entries = metric(metrics, "pactledger_append_batch_entries_sum", 'path="single"')
    assert entries == 40
    # Each request reaches the committer's queue after its (threaded) auth dependency; the
    # first commit runs in a worker thread while the rest queue up behind it, so on both
    # SQLite and PostgreSQL the 40 requests have always shared transactions here.
    assert 1 <= transactions < 40
    assert metric(metrics, "pactledger_entries_appended_total") == 40


async def test_a_bad_entry_among_concurrent_posts_fails_alone(api: Api) -> None:
    before = size(api)
    bad = without(routed(100), "cost_center")  # valid on the wire, refused by admission
    bodies = [routed(n) for n in range(10)] + [bad] + [routed(n) for n in range(10, 20)]
    responses = await asyncio.gather(*(api.post("/v1/events", "ingest-acme", b) for b in bodies))
    failed = responses[10]
    error_of(failed, 422, "validation_error", field="payload.cost_center")
    good = responses[:10] + responses[11:]
    assert [r.status_code for r in good] == [201] * 20, [r.text for r in good]
    assert sorted(r.json()["seq"] for r in good) == list(range(before, before + 20))
    assert size(api) == before + 20


async def test_concurrent_retries_of_one_key_append_once(api: Api) -> None:
    before = size(api)
    headers = {"Idempotency-Key": "route-once"}
    responses = await asyncio.gather(
        *(post(api, "/v1/events", "ingest-acme", routed(1), headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [
        r.text for r in responses
    ]
    assert {r.json()["seq"] for r in responses} == {before}
    assert size(api) == before + 1


# --- catalogue -------------------------------------------------------------------------------


async def test_event_types_are_listed(api: Api) -> None:
    response = await api.client.get("/v1/events/types")
    assert response.status_code == 200, response.text
    rows = {row["type"]: row for row in response.json()}
    assert {"InferenceRouted", "ResidencyDecided", "PriceListPublished"} <= set(rows)
    routed_row = rows["InferenceRouted"]
    assert routed_row["schema_version"] in routed_row["versions"]
    assert routed_row["summary"]


async def test_an_event_schema_is_served(api: Api) -> None:
    response = await api.client.get("/v1/events/types/InferenceRouted/schema")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert schema["title"].startswith("InferenceRouted v")
    assert schema["type"] == "object"
    assert {"request_id", "model", "input_tokens", "cost"} <= set(schema["properties"])
    assert {"request_id", "model", "input_tokens"} <= set(schema["required"])
    assert "cost" not in schema["required"]

    versioned = await api.client.get("/v1/events/types/InferenceRouted/schema?version=1")
    assert versioned.status_code == 200, versioned.text


async def test_an_unknown_event_schema_is_refused(api: Api) -> None:
    response = await api.client.get("/v1/events/types/NoSuchEvent/schema")
    error_of(response, 422, "validation_error", field="type")
