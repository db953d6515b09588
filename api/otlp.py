"""OTLP trace ingest: decode an OTLP/HTTP trace export and map its OpenTelemetry GenAI spans to
``InferenceRouted`` entries (DESIGN §3). Pure: no I/O, no framework, no clock.

Specs implemented:

* OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#otlphttp), body an
  ``ExportTraceServiceRequest``: binary protobuf (``application/x-protobuf``) or its JSON form
  (``application/json``). The JSON form is walked by hand, not with ``json_format``, because
  OTLP/JSON differs from proto3 JSON: ``traceId``/``spanId`` are case-insensitive hex (not
  base64), 64-bit integers may be a number or a decimal string, enums are integers. Keys are
  lowerCamelCase; unknown keys are ignored, ``null`` reads as the default value.
* OpenTelemetry GenAI semantic conventions (``gen_ai.*``, development status), as of the
  ``open-telemetry/semantic-conventions-genai`` registry.

Guarantees:

* :func:`decode_traces` turns both encodings of the same request into equal :class:`Span` lists,
  in request order, or raises :class:`OtlpError` (``status`` 415: unsupported content type; 400:
  undecodable or malformed body, with the JSON path at fault; 413: more than :data:`MAX_SPANS`
  spans). Nothing is partially returned.
* :func:`map_spans` never raises for bad span data: every span is either mapped to one entry,
  counted as ignored, or rejected with one message naming its ``span_id`` and the attribute at
  fault. A mapped entry is one that ``Ledger.append`` accepts as far as its shape goes: the
  envelope and the payload are checked against ``EntryInput`` and ``InferenceRouted`` here, so a
  bad value is reported against the span attribute it came from.
* The same span always maps to the same entry: ``idempotency_key`` is
  ``otlp:<trace_id>:<span_id>``, so a re-sent export (OTLP clients retry) is not counted twice.
* No cost is computed: the ledger prices the entry from the price list in force.

Which spans are mapped: a span is a *GenAI span* when it has ``gen_ai.operation.name``,
``gen_ai.provider.name`` or the deprecated ``gen_ai.system`` (span or resource attributes).
Every other span is counted in ``ignored``. GenAI spans whose operation is not one model call
(:data:`AGGREGATE_OPERATIONS`: ``invoke_agent``, ``invoke_workflow``, ``execute_tool``,
``create_agent`` …) are also ignored: an agent span's usage is the sum of its child ``chat``
spans, so mapping both would bill the same tokens twice.

Mapping (span attributes merged over resource attributes; the span's value wins):

==========================  ========================================================  ========
Entry field                 Source                                                    Required
==========================  ========================================================  ========
``type``                    ``"InferenceRouted"``                                     —
``tenant``                  ``pactledger.tenant``, else the caller's default tenant   yes
``stream``                  ``"request:" + request_id``                               —
``occurred_at``             span start, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, µs)     yes
``idempotency_key``         ``"otlp:<trace_id>:<span_id>"``                           —
``request_id``              ``pactledger.request_id``, else ``gen_ai.response.id``,   —
                            else ``<trace_id>-<span_id>`` (``<span_id>`` alone
                            when the span has no trace id)
``business_unit``           ``pactledger.business_unit``                              yes
``cost_center``             ``pactledger.cost_center``                                yes
``application``             ``pactledger.application``, else ``service.name``         yes
``model``                   ``gen_ai.response.model``, else ``gen_ai.request.model``  yes
``model_tier``              ``pactledger.model_tier``, else the one of ``opus``,      yes
                            ``sonnet``, ``haiku`` that the model name contains
``provider``                ``gen_ai.provider.name`` (else ``gen_ai.system``)         yes
                            through :data:`PROVIDERS`; other values are rejected
``region``                  ``pactledger.region``, else ``cloud.region``              yes
``deployment``              ``pactledger.deployment``                                 no
``rack_family``             ``pactledger.rack_family``                                no
``tranche_id``              ``pactledger.tranche_id``                                 no
``decision_id``             ``pactledger.decision_id``                                no
``route_reason``            ``pactledger.route_reason``                               no
``end_user_id``             ``user.id``, else the deprecated ``enduser.id``           no
                            (personal: the ledger stores it encrypted, docs/privacy.md)
``end_user_email``          ``user.email`` (personal, as above)                       no
``input_tokens``            ``gen_ai.usage.input_tokens`` (else the deprecated        yes
                            ``gen_ai.usage.prompt_tokens``) minus cache reads
``output_tokens``           ``gen_ai.usage.output_tokens`` (else the deprecated       yes
                            ``gen_ai.usage.completion_tokens``); 0 for an
                            ``embeddings`` span that has neither
``cached_tokens``           ``gen_ai.usage.cache_read.input_tokens``; omitted if 0    no
``time_to_first_token_ms``  ``gen_ai.response.time_to_first_chunk`` (seconds)         no
                            × 1000, rounded
``latency_ms``              ``(end - start) // 1_000_000``; omitted if end < start    no
``status``                  ``"error"`` if the span status code is ERROR (2),         —
                            else ``"ok"``
==========================  ========================================================  ========

Token counts: the GenAI conventions say ``gen_ai.usage.input_tokens`` "SHOULD include all types
of input tokens, including cached tokens", and that ``cache_read.input_tokens`` and
``cache_creation.input_tokens`` "SHOULD be included in" it. In pactledger ``input_tokens`` is
*uncached* input (billed at the input rate) and ``cached_tokens`` is cache reads (billed at the
cached rate), so ``input_tokens = gen_ai.usage.input_tokens - cache_read``; a cache read larger
than the input total is rejected rather than guessed at. Cache *writes* stay in
``input_tokens``: the ledger has no separate cache-write rate.

Attribute types are strict: identifiers must be string attributes, counts int attributes (a
JSON ``intValue`` may be a decimal string, as OTLP/JSON allows), never bool or double.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pydantic
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from ledger.events.governance import InferenceRouted
from ledger.log.entry import EntryInput, format_time

__all__ = [
    "AGGREGATE_OPERATIONS",
    "MAX_SPANS",
    "PROVIDERS",
    "Mapped",
    "OtlpError",
    "Span",
    "decode_traces",
    "map_spans",
]

MAX_SPANS: Final = 10_000
"""Most spans one export request may carry."""

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"

STATUS_CODE_ERROR: Final = 2
"""``Status.StatusCode.STATUS_CODE_ERROR`` in ``opentelemetry/proto/trace/v1/trace.proto``."""

PROVIDERS: Final[Mapping[str, str]] = {
    # gen_ai.provider.name well-known values
    "aws.bedrock": "aws",
    "azure.ai.inference": "azure",
    "azure.ai.openai": "azure",
    "gcp.vertex_ai": "gcp",
    "gcp.gen_ai": "gcp",
    "gcp.gemini": "gcp",
    "anthropic": "anthropic",
    # deprecated gen_ai.system values, and names seen in the wild
    "az.ai.inference": "azure",
    "az.ai.openai": "azure",
    "azure_ai_foundry": "azure",
    "vertex_ai": "gcp",
    "gemini": "gcp",
}
"""GenAI provider names → pactledger providers. Others (``openai``, ``cohere`` …) are rejected:
pactledger has no price or capacity for them."""

AGGREGATE_OPERATIONS: Final = frozenset(
    {
        "create_agent",
        "invoke_agent",
        "invoke_workflow",
        "execute_tool",
        "retrieval",
        "plan",
        "search_memory",
        "create_memory",
        "update_memory",
        "upsert_memory",
        "delete_memory",
        "create_memory_store",
        "delete_memory_store",
    }
)
"""``gen_ai.operation.name`` values that are not one model call; such spans are ignored."""

_TIERS: Final = ("opus", "sonnet", "haiku")
_MAX_DEPTH: Final = 32  # nesting of array/kvlist attribute values
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class OtlpError(ValueError):
    """The export body cannot be decoded; ``str(error)`` is the message for the client and
    ``status`` the HTTP status that fits it (400, 413 or 415)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Span:
    """One span as both encodings decode it.

    ``attributes`` are the span's attributes merged over its resource's attributes (the span
    wins). Values are ``str``, ``int``, ``float``, ``bool``, ``list`` of values, ``dict`` (an
    OTLP ``kvlistValue``), ``bytes`` (``bytesValue``) or ``None`` (an empty ``AnyValue``).
    """

    trace_id: str  # lowercase hex, 32 digits; '' when the span has none
    span_id: str  # lowercase hex, 16 digits
    name: str
    start_unix_nano: int
    end_unix_nano: int
    status_error: bool
    attributes: Mapping[str, Any]


def decode_traces(body: bytes, content_type: str) -> list[Span]:
    """Decode an OTLP/HTTP trace export body sent with ``content_type``.

    Raises :class:`OtlpError` for an unsupported content type, a malformed body or too many
    spans.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == PROTOBUF:
        return _decode_protobuf(body)
    if media_type == JSON:
        return _decode_json(body)
    raise OtlpError(
        f"unsupported content type '{content_type}': send {PROTOBUF} or {JSON}", status=415
    )


def _too_many() -> OtlpError:
    return OtlpError(
        f"the request carries more than {MAX_SPANS} spans, the most accepted at once: export "
        "smaller batches",
        status=413,
    )


# --- binary protobuf ---------------------------------------------------------------------------


def _decode_protobuf(body: bytes) -> list[Span]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise OtlpError(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    count = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
    if count > MAX_SPANS:
        raise _too_many()
    spans: list[Span] = []
    for i, resource_spans in enumerate(request.resource_spans):
        path = f"resourceSpans[{i}]"
        base = _pb_attributes(resource_spans.resource.attributes, f"{path}.resource")
        for j, scope_spans in enumerate(resource_spans.scope_spans):
            for k, span in enumerate(scope_spans.spans):
                spans.append(_pb_span(span, base, f"{path}.scopeSpans[{j}].spans[{k}]"))
    return spans


def _pb_span(span: PbSpan, base: Mapping[str, Any], path: str) -> Span:
    trace_id = _pb_id(span.trace_id, 16, f"{path}.traceId", required=False)
    span_id = _pb_id(span.span_id, 8, f"{path}.spanId", required=True)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        name=span.name,
        start_unix_nano=span.start_time_unix_nano,
        end_unix_nano=span.end_time_unix_nano,
        status_error=span.status.code == STATUS_CODE_ERROR,
        attributes={**base, **_pb_attributes(span.attributes, path)},
    )


def _pb_id(raw: bytes, size: int, path: str, *, required: bool) -> str:
    if not raw and not required:
        return ""
    if len(raw) != size:
        raise OtlpError(f"{path}: expected {size} bytes, got {len(raw)}")
    return raw.hex()


def _pb_attributes(pairs: Sequence[KeyValue], path: str, depth: int = 0) -> dict[str, Any]:
    return {pair.key: _pb_value(pair.value, f"{path}.attributes", depth) for pair in pairs}


def _pb_value(value: AnyValue, path: str, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("array_value", "kvlist_value") and depth >= _MAX_DEPTH:
        raise OtlpError(f"{path}: attribute values nest deeper than {_MAX_DEPTH} levels")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [_pb_value(item, path, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values, path, depth + 1)
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    return None  # empty, or a string-table index (profiles only)


# --- JSON --------------------------------------------------------------------------------------

_HEX: Final = re.compile(r"[0-9a-fA-F]*")
_DECIMAL: Final = re.compile(r"-?[0-9]+")
_SPECIAL_DOUBLES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_STATUS_NAMES: Final = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _decode_json(body: bytes) -> list[Span]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise OtlpError(f"body is not valid JSON: {exc}") from None
    request = _object(document, "body")
    spans: list[Span] = []
    for i, raw_resource_spans in enumerate(_array(request.get("resourceSpans"), "resourceSpans")):
        path = f"resourceSpans[{i}]"
        resource_spans = _object(raw_resource_spans, path)
        resource = _object(resource_spans.get("resource"), f"{path}.resource")
        base = _attributes(resource.get("attributes"), f"{path}.resource.attributes")
        scopes = _array(resource_spans.get("scopeSpans"), f"{path}.scopeSpans")
        for j, raw_scope_spans in enumerate(scopes):
            scope_path = f"{path}.scopeSpans[{j}]"
            scope_spans = _object(raw_scope_spans, scope_path)
            raw_spans = _array(scope_spans.get("spans"), f"{scope_path}.spans")
            if len(spans) + len(raw_spans) > MAX_SPANS:
                raise _too_many()
            for k, raw_span in enumerate(raw_spans):
                spans.append(_json_span(raw_span, base, f"{scope_path}.spans[{k}]"))
    return spans


def _json_span(raw: Any, base: Mapping[str, Any], path: str) -> Span:
    span = _object(raw, path)
    status = _object(span.get("status"), f"{path}.status")
    return Span(
        trace_id=_json_id(span.get("traceId"), 16, f"{path}.traceId", required=False),
        span_id=_json_id(span.get("spanId"), 8, f"{path}.spanId", required=True),
        name=_string(span.get("name"), f"{path}.name"),
        start_unix_nano=_integer(span.get("startTimeUnixNano"), f"{path}.startTimeUnixNano"),
        end_unix_nano=_integer(span.get("endTimeUnixNano"), f"{path}.endTimeUnixNano"),
        status_error=_status_code(status.get("code"), f"{path}.status.code") == STATUS_CODE_ERROR,
        attributes={**base, **_attributes(span.get("attributes"), f"{path}.attributes")},
    )


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpError(f"{path}: expected a JSON object, got {_json_type(value)}")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{path}: expected a JSON array, got {_json_type(value)}")
    return value


def _string(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OtlpError(f"{path}: expected a string, got {_json_type(value)}")
    return value


def _json_id(value: Any, size: int, path: str, *, required: bool) -> str:
    text = _string(value, path)
    if not text and not required:
        return ""
    if len(text) != 2 * size or not _HEX.fullmatch(text):
        raise OtlpError(
            f"{path}: expected {2 * size} hex digits (OTLP/JSON ids are hex, not "
            f"base64), got {_clip(text)}"
        )
    return text.lower()


def _integer(value: Any, path: str, bounds: tuple[int, int] = _UINT64) -> int:
    """A 64-bit integer: a JSON number or a decimal string (proto3 JSON, OTLP/JSON)."""
    if value is None:
        number = 0
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif _integral(value):
        number = int(value)
    else:
        raise OtlpError(f"{path}: expected an integer or a decimal string, got {_clip(value)}")
    if not bounds[0] <= number <= bounds[1]:
        raise OtlpError(f"{path}: {number} is out of the 64-bit range")
    return number


def _integral(value: Any) -> bool:
    """A decimal string, or a float with no fraction (proto3 JSON reads 1e3 as 1000)."""
    if isinstance(value, str):
        return len(value) <= 21 and _DECIMAL.fullmatch(value) is not None
    return isinstance(value, float) and value.is_integer()


def _status_code(value: Any, path: str) -> int:
    if isinstance(value, str) and value in _STATUS_NAMES:
        return _STATUS_NAMES[value]  # the proto3 JSON form; OTLP/JSON senders use integers
    return _integer(value, path, bounds=(0, 2**31 - 1))


def _double(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise OtlpError(f"{path}: expected a number, got {_clip(value)}")


def _attributes(value: Any, path: str, depth: int = 0) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for i, raw_pair in enumerate(_array(value, path)):
        pair = _object(raw_pair, f"{path}[{i}]")
        key = _string(pair.get("key"), f"{path}[{i}].key")
        attributes[key] = _any_value(pair.get("value"), f"{path}[{i}].value", depth)
    return attributes


def _any_value(raw: Any, path: str, depth: int) -> Any:
    value = _object(raw, path)
    for kind, read in _VALUE_READERS:
        if value.get(kind) is None:
            continue
        if kind in ("arrayValue", "kvlistValue") and depth >= _MAX_DEPTH:
            raise OtlpError(f"{path}: attribute values nest deeper than {_MAX_DEPTH} levels")
        return read(value[kind], f"{path}.{kind}", depth)
    return None


def _bool(value: Any, path: str, depth: int) -> bool:
    if not isinstance(value, bool):
        raise OtlpError(f"{path}: expected true or false, got {_clip(value)}")
    return value


def _bytes(value: Any, path: str, depth: int) -> bytes:
    text = _string(value, path).replace("-", "+").replace("_", "/").rstrip("=")
    try:  # proto3 JSON accepts standard and URL-safe base64, padded or not
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise OtlpError(f"{path}: expected base64, got {_clip(text)}") from None


def _array_value(value: Any, path: str, depth: int) -> list[Any]:
    items = _array(_object(value, path).get("values"), f"{path}.values")
    return [_any_value(item, f"{path}.values[{i}]", depth + 1) for i, item in enumerate(items)]


def _kvlist_value(value: Any, path: str, depth: int) -> dict[str, Any]:
    return _attributes(_object(value, path).get("values"), f"{path}.values", depth + 1)


_VALUE_READERS: Final[tuple[tuple[str, Callable[[Any, str, int], Any]], ...]] = (
    ("stringValue", lambda value, path, _: _string(value, path)),
    ("boolValue", _bool),
    ("intValue", lambda value, path, _: _integer(value, path, _INT64)),
    ("doubleValue", lambda value, path, _: _double(value, path)),
    ("arrayValue", _array_value),
    ("kvlistValue", _kvlist_value),
    ("bytesValue", _bytes),
)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "null")


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- mapping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    """What :func:`map_spans` made of a batch of spans."""

    entries: list[dict[str, Any]]  # raw entry objects for Ledger.append, in span order
    ignored: int  # spans that are not single GenAI model calls
    rejected: list[str]  # one message per GenAI span that could not be mapped


class _UnmappableSpanError(Exception):
    def __init__(self, attribute: str, problem: str) -> None:
        super().__init__(f"{attribute}: {problem}")


_GENAI_MARKERS: Final = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system")
_OPTIONAL_LABELS: Final = ("deployment", "rack_family", "tranche_id", "decision_id", "route_reason")
# Personal fields (OpenTelemetry general attributes ``user.*``; ``enduser.id`` deprecated).
_END_USER: Final = (("end_user_id", ("user.id", "enduser.id")), ("end_user_email", ("user.email",)))


def map_spans(spans: Sequence[Span], *, default_tenant: str | None) -> Mapped:
    """Map GenAI spans to ``InferenceRouted`` entry objects (rules in the module docstring).

    ``default_tenant`` is the tenant of spans without ``pactledger.tenant`` (the caller's own
    tenant, typically); with ``None`` such spans are rejected.
    """
    entries: list[dict[str, Any]] = []
    rejected: list[str] = []
    ignored = 0
    for span in spans:
        attributes = span.attributes
        operation = attributes.get("gen_ai.operation.name")
        if not any(marker in attributes for marker in _GENAI_MARKERS) or (
            isinstance(operation, str) and operation in AGGREGATE_OPERATIONS
        ):
            ignored += 1
            continue
        try:
            entries.append(_Entry(span).build(default_tenant))
        except _UnmappableSpanError as exc:
            rejected.append(f"{_describe(span)}: {exc}")
    return Mapped(entries=entries, ignored=ignored, rejected=rejected)


class _Entry:
    """Builds one entry, remembering which attribute each field came from so that a value the
    entry models refuse is reported against that attribute."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.attrs = span.attributes
        self.sources: dict[str, str] = {
            "tenant": "default tenant",
            "request_id": "traceId/spanId",
            "idempotency_key": "traceId/spanId",
            "occurred_at": "startTimeUnixNano",
        }

    def optional(self, field: str, *keys: str) -> str | None:
        """The first of ``keys`` present (a string attribute), or None."""
        for key in keys:
            if self.attrs.get(key) is not None:
                self.sources[field] = key
                return _text(self.attrs, key)
        return None

    def required(self, field: str, *keys: str) -> str:
        value = self.optional(field, *keys)
        if value is None:
            raise _UnmappableSpanError(" or ".join(keys), "required attribute is missing")
        return value

    def build(self, default_tenant: str | None) -> dict[str, Any]:
        span = self.span
        tenant = self.optional("tenant", "pactledger.tenant")
        if tenant is None:
            tenant = default_tenant
        if tenant is None:
            raise _UnmappableSpanError(
                "pactledger.tenant", "required attribute is missing and there is no default tenant"
            )
        if span.start_unix_nano <= 0:
            raise _UnmappableSpanError("startTimeUnixNano", "the span has no start time")
        request_id = self.optional("request_id", "pactledger.request_id", "gen_ai.response.id")
        if request_id is None:
            request_id = f"{span.trace_id}-{span.span_id}" if span.trace_id else span.span_id
        served = self.required("model", "gen_ai.response.model", "gen_ai.request.model")
        model = canonical_model(served)
        payload: dict[str, Any] = {
            "request_id": request_id,
            "business_unit": self.required("business_unit", "pactledger.business_unit"),
            "cost_center": self.required("cost_center", "pactledger.cost_center"),
            "application": self.required("application", "pactledger.application", "service.name"),
            "model_tier": self.optional("model_tier", "pactledger.model_tier") or _tier(model),
            "model": model,
            "provider": self.provider(),
            "region": self.required("region", "pactledger.region", "cloud.region"),
        }
        for field in _OPTIONAL_LABELS:
            label = self.optional(field, f"pactledger.{field}")
            if label is not None:
                payload[field] = label
        for field, keys in _END_USER:
            personal = self.optional(field, *keys)
            if personal is not None:
                payload[field] = personal
        if model != served and "deployment" not in payload:
            payload["deployment"] = served  # the provider's own id, kept
        payload.update(self.tokens())
        if span.end_unix_nano >= span.start_unix_nano:
            payload["latency_ms"] = (span.end_unix_nano - span.start_unix_nano) // 1_000_000
        payload["status"] = "error" if span.status_error else "ok"
        started = _EPOCH + timedelta(microseconds=span.start_unix_nano // 1000)
        entry = {
            "type": InferenceRouted.TYPE,
            "stream": f"request:{request_id}",
            "tenant": tenant,
            "occurred_at": format_time(started),
            "idempotency_key": f"otlp:{span.trace_id}:{span.span_id}",
            "payload": payload,
        }
        self.sources["stream"] = self.sources["request_id"]
        self.check(InferenceRouted, payload)
        self.check(EntryInput, entry)
        return entry

    def provider(self) -> str:
        key = "gen_ai.provider.name"
        if self.attrs.get(key) is None and self.attrs.get("gen_ai.system") is not None:
            key = "gen_ai.system"  # deprecated, still sent by older instrumentations
        if self.attrs.get(key) is None:
            raise _UnmappableSpanError(key, "required attribute is missing")
        name = self.required("provider", key)
        if name not in PROVIDERS:
            raise _UnmappableSpanError(
                key, f"unknown provider {_clip(name)}; known: {', '.join(sorted(PROVIDERS))}"
            )
        return PROVIDERS[name]

    def count(self, field: str, *keys: str) -> int | None:
        """The first of ``keys`` present (an int attribute ≥ 0), or None."""
        for key in keys:
            value = self.attrs.get(key)
            if value is None:
                continue
            self.sources[field] = key
            if not isinstance(value, int) or isinstance(value, bool):
                raise _UnmappableSpanError(key, f"must be an int attribute, got {_kind(value)}")
            if value < 0:
                raise _UnmappableSpanError(key, f"must not be negative, got {value}")
            return value
        return None

    def tokens(self) -> dict[str, int]:
        input_keys = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
        output_keys = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
        total_input = self.count("input_tokens", *input_keys)
        if total_input is None:
            raise _UnmappableSpanError(input_keys[0], "required attribute is missing")
        output = self.count("output_tokens", *output_keys)
        if output is None:
            if self.attrs.get("gen_ai.operation.name") != "embeddings":
                raise _UnmappableSpanError(output_keys[0], "required attribute is missing")
            output = 0
        cached = self.count("cached_tokens", "gen_ai.usage.cache_read.input_tokens") or 0
        if cached > total_input:
            raise _UnmappableSpanError(
                "gen_ai.usage.cache_read.input_tokens",
                f"{cached} exceeds {self.sources['input_tokens']} {total_input}, which by the "
                "GenAI conventions includes cache reads",
            )
        tokens = {"input_tokens": total_input - cached, "output_tokens": output}
        if cached:
            tokens["cached_tokens"] = cached
        key = "gen_ai.response.time_to_first_chunk"
        seconds = self.attrs.get(key)
        if seconds is not None:
            self.sources["time_to_first_token_ms"] = key
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
                raise _UnmappableSpanError(key, f"must be a double attribute, got {_kind(seconds)}")
            if not 0 <= seconds < math.inf:
                raise _UnmappableSpanError(key, f"must be finite seconds ≥ 0, got {seconds}")
            tokens["time_to_first_token_ms"] = round(seconds * 1000)
        return tokens

    def check(self, model: type[pydantic.BaseModel], data: dict[str, Any]) -> None:
        try:
            model.model_validate(data)
        except pydantic.ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = str(error["loc"][0]) if error["loc"] else ""
            got = f" (got {_clip(error['input'])})" if error["loc"] else ""
            raise _UnmappableSpanError(
                self.sources.get(field, field), f"{error['msg']}{got}"
            ) from None


def _text(attrs: Mapping[str, Any], key: str) -> str:
    value = attrs[key]
    if not isinstance(value, str):
        raise _UnmappableSpanError(key, f"must be a string attribute, got {_kind(value)}")
    return value


def _describe(span: Span) -> str:
    name = span.name if len(span.name) <= 80 else span.name[:79] + "…"
    return f"span {span.span_id or '(no id)'}" + (f" ({name})" if name else "")


def _kind(value: Any) -> str:
    names = {str: "string", bool: "bool", int: "int", float: "double", list: "array"}
    return f"{names.get(type(value), type(value).__name__)} {_clip(value, 40)}"


_PROVIDER_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")
_VERSION_SUFFIX = re.compile(r"(?:@.*|-\d{8}.*|-v\d+(?::\d+)?|-latest)$")


def canonical_model(served: str) -> str:
    """The model name price lists use, from a provider's id: Bedrock
    ``eu.anthropic.claude-sonnet-4-5-20250929-v1:0`` and Vertex ``claude-sonnet-4-5@20250929``
    are ``claude-sonnet-4-5``. An id it does not recognise is returned unchanged."""
    if "claude" not in served:
        return served
    model = _PROVIDER_PREFIX.sub("", served)
    while True:
        shorter = _VERSION_SUFFIX.sub("", model)
        if shorter == model:
            return model or served
        model = shorter


def _tier(model: str) -> str:
    found = [tier for tier in _TIERS if tier in model.lower()]
    if len(found) != 1:
        raise _UnmappableSpanError(
            "pactledger.model_tier",
            f"required attribute is missing, and model {_clip(model)} names no single tier "
            "(opus, sonnet or haiku)",
        )
    return found[0]
