"""POST /v1/otlp/v1/traces through the real app: protobuf and JSON exports become priced
InferenceRouted entries, partial success names what was refused, retries append nothing."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.api.conftest import Api
from tests.api.test_otlp import BEDROCK_ATTRIBUTES, dumps, json_document, one, protobuf, span

pytestmark = pytest.mark.anyio

PROTOBUF = "application/x-protobuf"


def body_of(encoding: str, *spans: dict[str, Any]) -> tuple[bytes, str]:
    resources = one(*spans)
    if encoding == "protobuf":
        return protobuf(resources), PROTOBUF
    return dumps(json_document(resources)), "application/json"


async def export(
    api: Api, key: str, body: bytes, content_type: str, **headers: str
) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(
        "/v1/otlp/v1/traces",
        content=body,
        headers={**api.auth(key), "Content-Type": content_type, **headers},
    )
    if response.headers.get("content-type", "").startswith(PROTOBUF):
        answer = ExportTraceServiceResponse.FromString(response.content)
        partial = answer.partial_success
        return response.status_code, {
            "rejected": partial.rejected_spans,
            "message": partial.error_message,
        }
    data = response.json()
    partial = data.get("partialSuccess", {})
    return response.status_code, {
        "rejected": int(partial.get("rejectedSpans", 0)),
        "message": partial.get("errorMessage", ""),
        **data,
    }


def payloads(api: Api, stream: str) -> list[dict[str, Any]]:
    store = api.services.ledger.store
    return [json.loads(e.entry_bytes)["payload"] for e in store.entries_in_streams(stream)]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_a_genai_span_becomes_a_priced_routed_inference(api: Api, encoding: str) -> None:
    before = api.services.ledger.head().size
    not_genai = span(span_id="00000000000000aa", attributes={"http.method": "GET"})
    body, content_type = body_of(encoding, span(), not_genai)
    status, answer = await export(api, "ingest-acme", body, content_type)
    assert (status, answer["rejected"]) == (200, 0)
    assert api.services.ledger.head().size == before + 1
    (payload,) = payloads(api, "request:req-7")
    assert payload["model"] == "claude-sonnet-4-5"
    assert payload["input_tokens"] == 500  # 1500 minus 1000 cache reads
    assert payload["cached_tokens"] == 1000
    assert payload["cost"] == "0.0066"  # (500·3 + 1000·0.30 + 320·15) per million
    assert payload["price_list_version"] == 1
    again, _ = await export(api, "ingest-acme", body, content_type)
    assert again == 200
    assert api.services.ledger.head().size == before + 1  # the retry appended nothing


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_partial_success_names_each_refused_span(api: Api, encoding: str) -> None:
    no_unit = {k: v for k, v in BEDROCK_ATTRIBUTES.items() if k != "pactledger.business_unit"}
    other_tenant = {
        **BEDROCK_ATTRIBUTES,
        "pactledger.tenant": "globex",
        "pactledger.request_id": "g",
    }
    unpriced = {
        **BEDROCK_ATTRIBUTES,
        "pactledger.request_id": "u",
        "gen_ai.response.model": "claude-x-haiku",
    }
    body, content_type = body_of(
        encoding,
        span(),
        span(span_id="0000000000000002", attributes=no_unit),
        span(span_id="0000000000000003", attributes=other_tenant),
        span(span_id="0000000000000004", attributes=unpriced),
    )  # fmt: skip
    before = api.services.ledger.head().size
    status, answer = await export(api, "ingest-acme", body, content_type)
    assert status == 200
    assert answer["rejected"] == 3
    assert "pactledger.business_unit" in answer["message"]
    assert "tenant 'globex'" in answer["message"]
    assert "no price list" in answer["message"]
    assert api.services.ledger.head().size == before + 1


async def test_a_single_tenant_key_is_the_default_tenant(api: Api) -> None:
    attributes = {k: v for k, v in BEDROCK_ATTRIBUTES.items() if k != "pactledger.tenant"}
    body, content_type = body_of("json", span(attributes=attributes))
    status, answer = await export(api, "ingest-acme", body, content_type)
    assert (status, answer["rejected"]) == (200, 0)
    (entry,) = api.services.ledger.store.entries_in_streams("request:req-7")
    assert entry.tenant == "acme"
    status, answer = await export(api, "admin", body, content_type)  # all tenants: no default
    assert answer["rejected"] == 1
    assert "pactledger.tenant" in answer["message"]


async def test_gzip_bodies_are_accepted(api: Api) -> None:
    body, content_type = body_of("protobuf", span())
    status, answer = await export(
        api, "ingest-acme", gzip.compress(body), content_type, **{"Content-Encoding": "gzip"}
    )
    assert (status, answer["rejected"]) == (200, 0)
    assert len(payloads(api, "request:req-7")) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status"),
    [
        (b"\xff\x00garbage", PROTOBUF, {}, 400),
        (b"{not json", "application/json", {}, 400),
        (b"{}", "text/plain", {}, 415),
        (b"not gzip", PROTOBUF, {"Content-Encoding": "gzip"}, 400),
        (b"x", PROTOBUF, {"Content-Encoding": "br"}, 415),
    ],
    ids=["protobuf", "json", "content-type", "gzip", "encoding"],
)
async def test_an_undecodable_export_writes_nothing(
    api: Api, body: bytes, content_type: str, headers: dict[str, str], status: int
) -> None:
    before = api.services.ledger.head().size
    response = await api.client.post(
        "/v1/otlp/v1/traces",
        content=body,
        headers={**api.auth("ingest-acme"), "Content-Type": content_type, **headers},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["status"] == status
    assert api.services.ledger.head().size == before


async def test_readers_may_not_export(api: Api) -> None:
    body, content_type = body_of("json", span())
    response = await api.client.post(
        "/v1/otlp/v1/traces",
        content=body,
        headers={**api.auth("viewer-acme"), "Content-Type": content_type},
    )
    assert response.status_code == 403
