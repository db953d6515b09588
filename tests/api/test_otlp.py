"""OTLP trace ingest (api/otlp.py): both encodings decode to the same spans, GenAI spans map to
InferenceRouted entries, every bad span is rejected by name and every bad body is refused.

Requests are built with the real protobuf classes and as OTLP/JSON documents written by hand
(hex ids, int64 as decimal strings, enums as integers), and once with the OpenTelemetry SDK's
own OTLP encoder. No database.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from api.otlp import (
    MAX_SPANS,
    Mapped,
    OtlpError,
    Span,
    canonical_model,
    decode_traces,
    map_spans,
)
from ledger.events.governance import InferenceRouted
from ledger.log.entry import parse_entry

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
START = 1_793_613_600_123_456_789  # 2026-11-02T10:00:00.123456789Z
END = START + 2_345_678_901  # 2345.678901 ms later

# A Claude call through Amazon Bedrock as the GenAI conventions describe it, with the
# pactledger attributes a gateway adds.
BEDROCK_RESOURCE: dict[str, Any] = {
    "service.name": "contract-review",
    "cloud.provider": "aws",
    "cloud.region": "eu-central-1",
}
BEDROCK_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "aws.bedrock",
    "gen_ai.request.model": "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "gen_ai.response.model": "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "gen_ai.response.id": "msg_bdrk_01XFDUDYJgAACzvnptvVoYEL",
    "gen_ai.response.finish_reasons": ["end_turn"],
    "gen_ai.request.max_tokens": 1024,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.usage.input_tokens": 1500,
    "gen_ai.usage.output_tokens": 320,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_creation.input_tokens": 0,
    "server.address": "bedrock-runtime.eu-central-1.amazonaws.com",
    "pactledger.tenant": "acme",
    "pactledger.request_id": "req-7",
    "pactledger.business_unit": "research",
    "pactledger.cost_center": "cc-4410",
    "pactledger.deployment": "bedrock-eu-prod",
    "pactledger.rack_family": "gb200-nvl72",
    "pactledger.tranche_id": "t-2026-eu-1",
    "pactledger.decision_id": "dec-7",
    "pactledger.route_reason": "EU personal data stays in the EU",
}
BEDROCK_ENTRY: dict[str, Any] = {
    "type": "InferenceRouted",
    "stream": "request:req-7",
    "tenant": "acme",
    "occurred_at": "2026-11-02T10:00:00.123456Z",
    "idempotency_key": f"otlp:{TRACE}:{SPAN}",
    "payload": {
        "request_id": "req-7",
        "business_unit": "research",
        "cost_center": "cc-4410",
        "application": "contract-review",
        "model_tier": "sonnet",
        "model": "claude-sonnet-4-5",  # the price list's name; the pactledger.deployment wins
        "provider": "aws",
        "region": "eu-central-1",
        "deployment": "bedrock-eu-prod",
        "rack_family": "gb200-nvl72",
        "tranche_id": "t-2026-eu-1",
        "decision_id": "dec-7",
        "route_reason": "EU personal data stays in the EU",
        "input_tokens": 500,
        "output_tokens": 320,
        "cached_tokens": 1000,
        "latency_ms": 2345,
        "status": "ok",
    },
}


# --- request builders: one neutral description, two encodings -------------------------------


def span(**fields: Any) -> dict[str, Any]:
    """A span description; defaults are the Bedrock call above."""
    described: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "name": "chat eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "start": START,
        "end": END,
        "status": 0,
        "attributes": dict(BEDROCK_ATTRIBUTES),
    }
    described.update(fields)
    return described


Resources = Sequence[tuple[Mapping[str, Any], Sequence[Sequence[dict[str, Any]]]]]
"""(resource attributes, scopes), each scope a list of span descriptions."""


def one(*spans: dict[str, Any], resource: Mapping[str, Any] = BEDROCK_RESOURCE) -> Resources:
    return [(resource, [list(spans)])]


def pb_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[pb_value(item) for item in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=pb_attributes(value)))
    assert value is None
    return AnyValue()


def pb_attributes(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=pb_value(value)) for key, value in attributes.items()]


def protobuf(resources: Resources) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=PbResource(attributes=pb_attributes(resource)),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="opentelemetry.instrumentation.botocore"),
                        spans=[
                            PbSpan(
                                trace_id=bytes.fromhex(s["trace_id"]),
                                span_id=bytes.fromhex(s["span_id"]),
                                name=s["name"],
                                kind=PbSpan.SpanKind.SPAN_KIND_CLIENT,
                                start_time_unix_nano=s["start"],
                                end_time_unix_nano=s["end"],
                                status=Status(code=s["status"]),
                                attributes=pb_attributes(s["attributes"]),
                            )
                            for s in scope
                        ],
                    )
                    for scope in scopes
                ],
            )
            for resource, scopes in resources
        ]
    )
    return bytes(request.SerializeToString())


def json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 travels as a decimal string
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": json_attributes(value)}}
    assert value is None
    return {}


def json_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": json_value(value)} for key, value in attributes.items()]


def json_document(resources: Resources) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": json_attributes(resource)},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.botocore"},
                        "spans": [
                            {
                                "traceId": s["trace_id"],
                                "spanId": s["span_id"],
                                "name": s["name"],
                                "kind": 3,
                                "startTimeUnixNano": str(s["start"]),
                                "endTimeUnixNano": str(s["end"]),
                                "status": {"code": s["status"]} if s["status"] else {},
                                "attributes": json_attributes(s["attributes"]),
                            }
                            for s in scope
                        ],
                    }
                    for scope in scopes
                ],
            }
            for resource, scopes in resources
        ]
    }


def dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


def decode_both(resources: Resources) -> list[Span]:
    """Decode both encodings of ``resources``; they must agree."""
    from_protobuf = decode_traces(protobuf(resources), "application/x-protobuf")
    from_json = decode_traces(dumps(json_document(resources)), "application/json")
    assert from_protobuf == from_json
    return from_json


def map_one(
    attributes: Mapping[str, Any] | None = None,
    *,
    resource: Mapping[str, Any] = BEDROCK_RESOURCE,
    default_tenant: str | None = None,
    **fields: Any,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Map one span (both encodings, which must give the same result)."""
    described = span(**fields)
    if attributes is not None:
        described["attributes"] = dict(attributes)
    spans = decode_both(one(described, resource=resource))
    mapped = map_spans(spans, default_tenant=default_tenant)
    assert mapped.ignored == 0
    assert len(mapped.entries) + len(mapped.rejected) == 1
    return mapped.entries, mapped.rejected


def entry_of(attributes: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    entries, rejected = map_one(attributes, **kwargs)
    assert rejected == []
    return entries[0]


def rejection_of(attributes: Mapping[str, Any], **kwargs: Any) -> str:
    entries, rejected = map_one(attributes, **kwargs)
    assert entries == []
    return rejected[0]


def without(*keys: str, attributes: Mapping[str, Any] = BEDROCK_ATTRIBUTES) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if key not in keys}


def but(**changes: Any) -> dict[str, Any]:
    """The Bedrock attributes with some replaced; keys use '__' for '.'."""
    attributes = dict(BEDROCK_ATTRIBUTES)
    attributes.update({key.replace("__", "."): value for key, value in changes.items()})
    return attributes


# --- decoding ----------------------------------------------------------------------------------


def test_both_encodings_decode_to_the_same_spans() -> None:
    every_type = {
        "s": "text",
        "i": -(2**63),
        "big": 2**63 - 1,
        "d": 0.25,
        "b": True,
        "raw": b"\x00\xffbytes",
        "list": ["a", 1, 2.5, False],
        "nested": {"k": "v", "inner": {"deep": [1, [2, 3]]}},
        "empty": None,
        "shared": "span wins",
    }
    resources = [
        (
            {"service.name": "svc-a", "shared": "resource"},
            [
                [span(attributes=every_type, status=2), span(span_id="00f067aa0ba902b8")],
                [span(trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331")],
            ],
        ),
        ({"service.name": "svc-b"}, [[span(span_id="00000000000000ff", start=1, end=0)]]),
    ]

    spans = decode_both(resources)

    assert [(s.trace_id, s.span_id) for s in spans] == [
        (TRACE, SPAN),
        (TRACE, "00f067aa0ba902b8"),
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
        (TRACE, "00000000000000ff"),
    ]
    assert spans[0] == Span(
        trace_id=TRACE,
        span_id=SPAN,
        name="chat eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        start_unix_nano=START,
        end_unix_nano=END,
        status_error=True,
        attributes={"service.name": "svc-a", **every_type},
    )
    assert spans[1].status_error is False
    assert spans[1].attributes["service.name"] == "svc-a"
    assert spans[3].attributes["service.name"] == "svc-b"
    assert (spans[3].start_unix_nano, spans[3].end_unix_nano) == (1, 0)


def test_an_empty_request_decodes_to_no_spans() -> None:
    assert decode_traces(b"", "application/x-protobuf") == []
    assert decode_traces(b"{}", "application/json") == []
    assert decode_traces(b'{"resourceSpans": []}', "application/json") == []


def test_json_accepts_numbers_for_int64_uppercase_hex_and_nulls() -> None:
    document = json_document(one(span(attributes={"n": 7})))
    raw = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["traceId"] = TRACE.upper()
    raw["startTimeUnixNano"] = START  # a JSON number instead of a string
    raw["endTimeUnixNano"] = 1e3  # an integral number in exponent form
    raw["attributes"] = [
        {"key": "n", "value": {"intValue": 7}},
        {"key": "s", "value": {"intValue": "-12"}},
        {"key": "d", "value": {"doubleValue": "NaN"}},
        {"key": "f", "value": {"doubleValue": "1.5"}},
        {"key": "t", "value": {"stringValue": None, "boolValue": True}},
    ]
    raw["status"] = {"code": "STATUS_CODE_ERROR"}
    raw["parentSpanId"] = "unused and unknown keys are ignored"

    (decoded,) = decode_traces(dumps(document), "application/json; charset=utf-8")

    assert decoded.trace_id == TRACE
    assert (decoded.start_unix_nano, decoded.end_unix_nano) == (START, 1000)
    assert decoded.attributes["n"] == 7
    assert decoded.attributes["s"] == -12
    assert decoded.attributes["d"] != decoded.attributes["d"]  # NaN
    assert decoded.attributes["f"] == 1.5
    assert decoded.attributes["t"] is True
    assert decoded.status_error is True


def test_a_span_without_trace_id_decodes_with_an_empty_one() -> None:
    document = json_document(one(span()))
    del document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    request = ExportTraceServiceRequest.FromString(protobuf(one(span())))
    request.resource_spans[0].scope_spans[0].spans[0].ClearField("trace_id")

    from_json = decode_traces(dumps(document), "application/json")
    from_protobuf = decode_traces(request.SerializeToString(), "application/x-protobuf")

    assert from_json == from_protobuf
    assert from_json[0].trace_id == ""


def test_the_sdk_exporters_own_encoding_maps_to_the_expected_entry() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(BEDROCK_RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("opentelemetry.instrumentation.botocore")
    recorded = tracer.start_span(
        "chat eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        kind=SpanKind.CLIENT,
        attributes=BEDROCK_ATTRIBUTES,
        start_time=START,
    )
    recorded.set_status(StatusCode.ERROR, "ThrottlingException")
    recorded.end(end_time=END)
    with tracer.start_as_current_span("GET /health"):
        pass  # a span that is not a GenAI span
    provider.shutdown()
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()

    spans = decode_traces(body, "application/x-protobuf")
    mapped = map_spans(spans, default_tenant=None)

    context = recorded.get_span_context()
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    assert spans[0].attributes["service.name"] == "contract-review"
    assert spans[0].attributes["telemetry.sdk.language"] == "python"  # Resource.create's own
    assert mapped.ignored == 1
    assert mapped.rejected == []
    assert mapped.entries == [
        {
            **BEDROCK_ENTRY,
            "idempotency_key": f"otlp:{trace_id}:{span_id}",
            "payload": {**BEDROCK_ENTRY["payload"], "status": "error"},
        }
    ]


# --- refused bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/grpc", "application/protobuf", ""]
)
def test_an_unsupported_content_type_is_refused_with_415(content_type: str) -> None:
    with pytest.raises(OtlpError, match="unsupported content type") as caught:
        decode_traces(protobuf(one(span())), content_type)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x05abc",  # field 1 claims five bytes, three follow
        b"\x0a\x03\x0a\x01\xff",  # a resource whose one byte is a truncated tag
        b"\xff\xff\xff\xff",
    ],
)
def test_malformed_protobuf_is_refused_with_400(body: bytes) -> None:
    with pytest.raises(OtlpError, match="not a protobuf ExportTraceServiceRequest") as caught:
        decode_traces(body, "application/x-protobuf")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"resourceSpans": [', "not valid JSON"),
        (b"\xff\xfe\xfa", "not valid JSON"),
        (b"[]", "body: expected a JSON object, got an array"),
        (b'{"resourceSpans": {}}', "resourceSpans: expected a JSON array"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}', r"spans\[0\]: expected"),
    ],
)
def test_malformed_json_is_refused_with_400(body: bytes, message: str) -> None:
    with pytest.raises(OtlpError, match=message) as caught:
        decode_traces(body, "application/json")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("traceId", base64.b64encode(bytes.fromhex(TRACE)).decode(), "hex, not base64"),
        ("traceId", "4bf92f35", "expected 32 hex digits"),
        ("spanId", None, r"spans\[0\]\.spanId: expected 16 hex digits"),
        ("spanId", "zzf067aa0ba902b7", "expected 16 hex digits"),
        ("startTimeUnixNano", "12.5", "expected an integer or a decimal string"),
        ("startTimeUnixNano", "-1", "out of the 64-bit range"),
        ("endTimeUnixNano", True, "expected an integer"),
        ("name", 7, r"\.name: expected a string"),
        ("status", {"code": "BROKEN"}, r"status\.code: expected an integer"),
        ("attributes", {}, r"\.attributes: expected a JSON array"),
        ("attributes", [{"key": "k", "value": {"intValue": "12x"}}], "intValue: expected"),
        ("attributes", [{"key": "k", "value": {"intValue": str(2**63)}}], "64-bit range"),
        ("attributes", [{"key": "k", "value": {"boolValue": "yes"}}], "true or false"),
        ("attributes", [{"key": "k", "value": {"doubleValue": "lots"}}], "expected a number"),
        ("attributes", [{"key": "k", "value": {"bytesValue": "a!b"}}], "expected base64"),
        ("attributes", [{"key": 5, "value": {}}], r"\[0\]\.key: expected a string"),
    ],
)
def test_a_malformed_json_span_names_the_path_at_fault(
    field: str, value: Any, message: str
) -> None:
    document = json_document(one(span()))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0][field] = value
    with pytest.raises(OtlpError, match=message) as caught:
        decode_traces(dumps(document), "application/json")
    assert caught.value.status == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0]" in str(caught.value)


def test_protobuf_ids_of_the_wrong_length_are_refused() -> None:
    request = ExportTraceServiceRequest.FromString(protobuf(one(span())))
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02"
    with pytest.raises(OtlpError, match=r"spanId: expected 8 bytes, got 2") as caught:
        decode_traces(request.SerializeToString(), "application/x-protobuf")
    assert caught.value.status == 400


def test_attribute_values_nested_too_deeply_are_refused_in_both_encodings() -> None:
    deep: Any = "bottom"
    for _ in range(35):
        deep = [deep]
    resources = one(span(attributes={"deep": deep}))
    for body, content_type in [
        (protobuf(resources), "application/x-protobuf"),
        (dumps(json_document(resources)), "application/json"),
    ]:
        with pytest.raises(OtlpError, match="nest deeper than 32 levels"):
            decode_traces(body, content_type)


def test_more_than_max_spans_is_refused_with_413_in_both_encodings() -> None:
    at_limit = one(*[span(span_id=f"{n + 1:016x}", attributes={}) for n in range(MAX_SPANS)])
    assert len(decode_both(at_limit)) == MAX_SPANS

    over = [(BEDROCK_RESOURCE, [[span(attributes={})] * MAX_SPANS, [span(attributes={})]])]
    for body, content_type in [
        (protobuf(over), "application/x-protobuf"),
        (dumps(json_document(over)), "application/json"),
    ]:
        with pytest.raises(OtlpError, match=f"more than {MAX_SPANS} spans") as caught:
            decode_traces(body, content_type)
        assert caught.value.status == 413


# --- mapping -----------------------------------------------------------------------------------


def test_a_bedrock_claude_span_maps_every_field() -> None:
    entry = entry_of()
    assert entry == BEDROCK_ENTRY
    # what Ledger.append takes: the envelope and the payload both validate
    parse_entry(entry)
    InferenceRouted.model_validate(entry["payload"])


def test_an_azure_span_maps() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.inference",
        "gen_ai.request.model": "claude-opus-4-1",
        "gen_ai.usage.input_tokens": 2000,
        "gen_ai.usage.output_tokens": 150,
        "pactledger.business_unit": "legal",
        "pactledger.cost_center": "cc-2001",
        "pactledger.application": "clause-finder",
        "pactledger.region": "swedencentral",
    }
    resource = {"service.name": "ignored-because-pactledger.application-is-set"}

    entry = entry_of(attributes, resource=resource, default_tenant="globex")

    assert entry["tenant"] == "globex"
    assert entry["payload"] == {
        "request_id": f"{TRACE}-{SPAN}",
        "business_unit": "legal",
        "cost_center": "cc-2001",
        "application": "clause-finder",
        "model_tier": "opus",
        "model": "claude-opus-4-1",
        "provider": "azure",
        "region": "swedencentral",
        "input_tokens": 2000,
        "output_tokens": 150,
        "latency_ms": 2345,
        "status": "ok",
    }


def test_a_vertex_span_maps() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.vertex_ai",
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.response.model": "claude-haiku-4-5@20251001",
        "gen_ai.response.id": "msg_vrtx_01AbC",
        "gen_ai.usage.input_tokens": 800,
        "gen_ai.usage.output_tokens": 60,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "pactledger.business_unit": "support",
        "pactledger.cost_center": "cc-7",
    }
    resource = {"service.name": "triage-bot", "cloud.region": "europe-west4"}

    entry = entry_of(attributes, resource=resource, default_tenant="acme")

    assert entry["stream"] == "request:msg_vrtx_01AbC"
    assert entry["payload"] == {
        "request_id": "msg_vrtx_01AbC",
        "business_unit": "support",
        "cost_center": "cc-7",
        "application": "triage-bot",
        "model_tier": "haiku",
        "model": "claude-haiku-4-5",
        "provider": "gcp",
        "region": "europe-west4",
        "deployment": "claude-haiku-4-5@20251001",  # the provider's own id, kept
        "input_tokens": 800,
        "output_tokens": 60,
        "latency_ms": 2345,
        "status": "ok",
    }


@pytest.mark.parametrize(
    ("key", "name", "provider"),
    [
        ("gen_ai.provider.name", "aws.bedrock", "aws"),
        ("gen_ai.provider.name", "azure.ai.openai", "azure"),
        ("gen_ai.provider.name", "azure_ai_foundry", "azure"),
        ("gen_ai.provider.name", "gcp.gen_ai", "gcp"),
        ("gen_ai.provider.name", "gcp.gemini", "gcp"),
        ("gen_ai.provider.name", "anthropic", "anthropic"),
        ("gen_ai.system", "az.ai.inference", "azure"),  # the deprecated attribute and value
        ("gen_ai.system", "vertex_ai", "gcp"),
        ("gen_ai.system", "anthropic", "anthropic"),
    ],
)
def test_provider_names_map_to_pactledger_providers(key: str, name: str, provider: str) -> None:
    attributes = without("gen_ai.provider.name", "gen_ai.operation.name")
    attributes[key] = name
    assert entry_of(attributes)["payload"]["provider"] == provider


def test_gen_ai_provider_name_wins_over_gen_ai_system() -> None:
    attributes = but(gen_ai__system="openai")
    assert entry_of(attributes)["payload"]["provider"] == "aws"


@pytest.mark.parametrize("name", ["openai", "cohere", "AWS.Bedrock", ""])
def test_an_unknown_provider_is_rejected(name: str) -> None:
    message = rejection_of(but(gen_ai__provider__name=name))
    assert message.startswith(f"span {SPAN} (")
    assert f"gen_ai.provider.name: unknown provider '{name}'" in message


@pytest.mark.parametrize(
    "attributes",
    [
        {"http.request.method": "POST", "url.full": "https://example.com"},
        {},
        {"gen_ai.usage.input_tokens": 5},  # usage alone does not make a GenAI span
        without("pactledger.tenant") | {"gen_ai.operation.name": "invoke_agent"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        {"gen_ai.operation.name": "create_agent", "gen_ai.provider.name": "azure.ai.openai"},
    ],
)
def test_spans_that_are_not_single_model_calls_are_ignored(attributes: dict[str, Any]) -> None:
    spans = decode_both(one(span(attributes=attributes)))
    assert map_spans(spans, default_tenant="acme") == Mapped(entries=[], ignored=1, rejected=[])


def test_a_batch_keeps_span_order_and_counts() -> None:
    spans = decode_both(
        one(
            span(span_id="0000000000000001"),
            span(span_id="0000000000000002", attributes={"db.system": "postgresql"}),
            span(span_id="0000000000000003", attributes=without("pactledger.cost_center")),
            span(span_id="0000000000000004", attributes=but(pactledger__request_id="req-8")),
        )
    )
    mapped = map_spans(spans, default_tenant=None)
    assert [e["idempotency_key"][-1] for e in mapped.entries] == ["1", "4"]
    assert mapped.ignored == 1
    assert mapped.rejected == [
        "span 0000000000000003 (chat eu.anthropic.claude-sonnet-4-5-20250929-v1:0): "
        "pactledger.cost_center: required attribute is missing"
    ]


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (["pactledger.business_unit"], "pactledger.business_unit"),
        (["pactledger.cost_center"], "pactledger.cost_center"),
        (["gen_ai.response.model", "gen_ai.request.model"], "gen_ai.response.model or "),
        (["gen_ai.usage.input_tokens"], "gen_ai.usage.input_tokens"),
        (["gen_ai.usage.output_tokens"], "gen_ai.usage.output_tokens"),
        (["pactledger.tenant"], "pactledger.tenant"),
    ],
)
def test_a_missing_required_attribute_is_rejected_by_name(removed: list[str], named: str) -> None:
    message = rejection_of(without(*removed))
    assert message.startswith(f"span {SPAN} (")
    assert named in message
    assert "required attribute is missing" in message


def test_a_missing_provider_is_rejected_by_name() -> None:
    attributes = without("gen_ai.provider.name")  # still a GenAI span: it has an operation
    assert "gen_ai.provider.name: required attribute is missing" in rejection_of(attributes)


def test_application_falls_back_to_service_name_and_is_required_one_way_or_the_other() -> None:
    assert entry_of()["payload"]["application"] == "contract-review"
    explicit = but(pactledger__application="clause-finder")
    assert entry_of(explicit)["payload"]["application"] == "clause-finder"
    message = rejection_of(BEDROCK_ATTRIBUTES, resource={"cloud.region": "eu-central-1"})
    assert "pactledger.application or service.name: required attribute is missing" in message


def test_region_falls_back_to_cloud_region_and_is_required_one_way_or_the_other() -> None:
    assert entry_of(but(pactledger__region="eu-west-3"))["payload"]["region"] == "eu-west-3"
    message = rejection_of(BEDROCK_ATTRIBUTES, resource={"service.name": "contract-review"})
    assert "pactledger.region or cloud.region: required attribute is missing" in message


def test_model_tier_is_taken_or_derived_and_required_one_way_or_the_other() -> None:
    assert entry_of(but(pactledger__model_tier="opus"))["payload"]["model_tier"] == "opus"
    message = rejection_of(but(gen_ai__response__model="gpt-4o", gen_ai__request__model="gpt-4o"))
    assert "pactledger.model_tier: required attribute is missing" in message
    assert "'gpt-4o' names no single tier" in message
    assert "pactledger.model_tier" in rejection_of(but(pactledger__model_tier="large"))


def test_the_response_model_wins_over_the_request_model() -> None:
    attributes = but(gen_ai__request__model="claude-sonnet-4-5", gen_ai__response__model="x-haiku")
    assert entry_of(attributes)["payload"]["model"] == "x-haiku"
    assert entry_of(attributes)["payload"]["model_tier"] == "haiku"
    only_request = without("gen_ai.response.model")
    assert entry_of(only_request)["payload"]["model"] == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("served", "model"),
    [
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("gpt-4o", "gpt-4o"),
    ],
)
def test_provider_model_ids_become_the_price_list_name(served: str, model: str) -> None:
    assert canonical_model(served) == model


@pytest.mark.parametrize(
    ("changes", "named", "problem"),
    [
        ({"gen_ai__usage__input_tokens": "1500"}, "gen_ai.usage.input_tokens", "int attribute"),
        ({"gen_ai__usage__output_tokens": 320.0}, "gen_ai.usage.output_tokens", "got double"),
        ({"gen_ai__usage__output_tokens": True}, "gen_ai.usage.output_tokens", "got bool"),
        ({"gen_ai__usage__output_tokens": -1}, "gen_ai.usage.output_tokens", "not be negative"),
        (
            {"gen_ai__usage__cache_read__input_tokens": "5"},
            "gen_ai.usage.cache_read.input_tokens",
            "int attribute",
        ),
        ({"pactledger__cost_center": 4410}, "pactledger.cost_center", "string attribute"),
        ({"pactledger__business_unit": ["a"]}, "pactledger.business_unit", "got array"),
        ({"pactledger__tenant": 1}, "pactledger.tenant", "string attribute"),
        ({"gen_ai__provider__name": ["aws.bedrock"]}, "gen_ai.provider.name", "string"),
        ({"gen_ai__response__model": b"raw"}, "gen_ai.response.model", "got bytes"),
        ({"pactledger__deployment": {"k": "v"}}, "pactledger.deployment", "got dict"),
        ({"gen_ai__response__time_to_first_chunk": "0.4"}, "time_to_first_chunk", "double"),
        ({"gen_ai__response__time_to_first_chunk": -0.1}, "time_to_first_chunk", "≥ 0"),
    ],
)
def test_an_attribute_of_the_wrong_type_is_rejected_by_name(
    changes: dict[str, Any], named: str, problem: str
) -> None:
    message = rejection_of(but(**changes))
    assert message.startswith(f"span {SPAN} (")
    assert named in message
    assert problem in message


@pytest.mark.parametrize(
    ("changes", "resource", "named"),
    [
        ({"pactledger__cost_center": "cc 4410"}, BEDROCK_RESOURCE, "pactledger.cost_center"),
        ({"pactledger__route_reason": ""}, BEDROCK_RESOURCE, "pactledger.route_reason"),
        ({"pactledger__tenant": "acme corp"}, BEDROCK_RESOURCE, "pactledger.tenant"),
        ({"pactledger__request_id": "-req"}, BEDROCK_RESOURCE, "pactledger.request_id"),
        (
            {"gen_ai__response__model": "claude sonnet"},
            BEDROCK_RESOURCE,
            "gen_ai.response.model",
        ),
        ({}, {**BEDROCK_RESOURCE, "cloud.region": "EU Central"}, "cloud.region"),
    ],
)
def test_a_value_the_ledger_would_refuse_is_rejected_naming_its_attribute(
    changes: dict[str, Any], resource: Mapping[str, Any], named: str
) -> None:
    message = rejection_of(but(**changes), resource=resource)
    assert f"): {named}: " in message


def test_the_default_tenant_applies_only_without_pactledger_tenant() -> None:
    attributes = without("pactledger.tenant")
    assert entry_of(attributes, default_tenant="globex")["tenant"] == "globex"
    assert entry_of(default_tenant="globex")["tenant"] == "acme"
    message = rejection_of(attributes, default_tenant=None)
    assert "pactledger.tenant: required attribute is missing and there is no default" in message


def test_span_attributes_are_merged_over_resource_attributes() -> None:
    resource = {
        **BEDROCK_RESOURCE,
        "pactledger.tenant": "from-resource",
        "pactledger.business_unit": "from-resource",
        "pactledger.region": "eu-west-1",
    }
    attributes = without("pactledger.business_unit")
    attributes["pactledger.region"] = "eu-north-1"

    entry = entry_of(attributes, resource=resource)

    assert entry["tenant"] == "acme"  # the span's
    assert entry["payload"]["business_unit"] == "from-resource"  # only the resource has it
    assert entry["payload"]["region"] == "eu-north-1"  # the span's, over both resource values


def test_the_idempotency_key_names_trace_and_span_so_a_resent_export_maps_the_same() -> None:
    resources = one(span(), span(span_id="00f067aa0ba902b8"))
    first = map_spans(decode_both(resources), default_tenant=None).entries
    again = map_spans(decode_both(resources), default_tenant=None).entries
    assert [e["idempotency_key"] for e in first] == [
        f"otlp:{TRACE}:{SPAN}",
        f"otlp:{TRACE}:00f067aa0ba902b8",
    ]
    assert first == again


def test_request_id_falls_back_to_the_response_id_then_trace_and_span() -> None:
    assert entry_of()["payload"]["request_id"] == "req-7"
    by_response = entry_of(without("pactledger.request_id"))
    assert by_response["payload"]["request_id"] == "msg_bdrk_01XFDUDYJgAACzvnptvVoYEL"
    assert by_response["stream"] == "request:msg_bdrk_01XFDUDYJgAACzvnptvVoYEL"
    by_ids = entry_of(without("pactledger.request_id", "gen_ai.response.id"))
    assert by_ids["payload"]["request_id"] == f"{TRACE}-{SPAN}"
    assert by_ids["stream"] == f"request:{TRACE}-{SPAN}"


def test_a_span_without_trace_id_uses_the_span_id_alone() -> None:
    (decoded,) = decode_traces(protobuf(one(span())), "application/x-protobuf")
    attributes = without("pactledger.request_id", "gen_ai.response.id")
    no_trace = replace(decoded, trace_id="", attributes={**BEDROCK_RESOURCE, **attributes})
    (entry,) = map_spans([no_trace], default_tenant=None).entries
    assert entry["payload"]["request_id"] == SPAN
    assert entry["idempotency_key"] == f"otlp::{SPAN}"


@pytest.mark.parametrize(
    ("start", "end", "latency"),
    [
        (START, END, 2345),
        (START, START, 0),
        (START, START + 999_999, 0),
        (START, START + 1_000_000, 1),
        (START, START - 1, None),  # end before start: no latency rather than a negative one
        (START, 0, None),  # never ended
    ],
)
def test_latency_is_whole_milliseconds_from_start_to_end(
    start: int, end: int, latency: int | None
) -> None:
    payload = entry_of(start=start, end=end)["payload"]
    assert payload.get("latency_ms") == latency


def test_occurred_at_is_the_start_time_in_microseconds_utc() -> None:
    assert entry_of(start=1)["occurred_at"] == "1970-01-01T00:00:00.000000Z"
    assert entry_of(start=START, end=START)["occurred_at"] == "2026-11-02T10:00:00.123456Z"
    assert "startTimeUnixNano: the span has no start time" in rejection_of(
        BEDROCK_ATTRIBUTES, start=0, end=0
    )


@pytest.mark.parametrize(("code", "status"), [(0, "ok"), (1, "ok"), (2, "error")])
def test_an_error_status_maps_to_status_error(code: int, status: str) -> None:
    assert entry_of(status=code)["payload"]["status"] == status


def test_cache_reads_are_taken_out_of_input_tokens() -> None:
    payload = entry_of()["payload"]
    assert (payload["input_tokens"], payload["cached_tokens"]) == (500, 1000)
    no_cache = entry_of(without("gen_ai.usage.cache_read.input_tokens"))["payload"]
    assert no_cache["input_tokens"] == 1500
    assert "cached_tokens" not in no_cache
    # cache writes are input: no separate rate in the ledger
    writes = entry_of(but(gen_ai__usage__cache_creation__input_tokens=400))["payload"]
    assert writes["input_tokens"] == 500


def test_a_cache_read_above_the_input_total_is_rejected() -> None:
    message = rejection_of(but(gen_ai__usage__cache_read__input_tokens=1501))
    assert "gen_ai.usage.cache_read.input_tokens: 1501 exceeds gen_ai.usage.input_tokens 1500" in (
        message
    )


def test_deprecated_prompt_and_completion_tokens_are_read() -> None:
    attributes = without("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    attributes |= {"gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 80}
    payload = entry_of(attributes)["payload"]
    assert (payload["input_tokens"], payload["output_tokens"]) == (200, 80)


def test_an_embeddings_span_needs_no_output_tokens() -> None:
    attributes = without("gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens")
    attributes["gen_ai.operation.name"] = "embeddings"
    assert entry_of(attributes)["payload"]["output_tokens"] == 0


def test_time_to_first_chunk_becomes_time_to_first_token_ms() -> None:
    payload = entry_of(but(gen_ai__response__time_to_first_chunk=0.29))["payload"]
    assert payload["time_to_first_token_ms"] == 290
    assert "time_to_first_token_ms" not in entry_of()["payload"]


def test_intvalue_sent_as_a_json_string_is_an_int() -> None:
    document = json_document(one(span()))
    attributes = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    tokens = next(a for a in attributes if a["key"] == "gen_ai.usage.output_tokens")
    assert tokens["value"] == {"intValue": "320"}
    (decoded,) = decode_traces(dumps(document), "application/json")
    (entry,) = map_spans([decoded], default_tenant=None).entries
    assert entry["payload"]["output_tokens"] == 320
    # whereas a stringValue holding digits is a string, and rejected
    tokens["value"] = {"stringValue": "320"}
    (decoded,) = decode_traces(dumps(document), "application/json")
    (message,) = map_spans([decoded], default_tenant=None).rejected
    assert "gen_ai.usage.output_tokens: must be an int attribute, got string '320'" in message


def test_map_spans_never_raises_for_odd_spans() -> None:
    odd = [
        Span("", "", "", 0, 0, False, {"gen_ai.operation.name": ["chat"]}),
        Span("", "", "", 0, 0, False, {"gen_ai.system": None}),
        Span("", "", "x" * 500, -5, -9, True, {"gen_ai.provider.name": {"k": 1}}),
    ]
    mapped = map_spans(odd, default_tenant="acme")
    assert mapped.entries == []
    assert len(mapped.rejected) == 3
    assert mapped.rejected[0] == "span (no id): startTimeUnixNano: the span has no start time"
    assert mapped.rejected[2].startswith(f"span (no id) ({'x' * 79}…): ")
