"""POST /v1/otlp/v1/traces — OTLP/HTTP trace export (binary protobuf or JSON, optionally
gzip-compressed). GenAI spans become ``InferenceRouted`` entries (mapping in ``api/otlp.py``);
other spans are counted and ignored.

The answer follows OTLP partial success: 200 with ``partialSuccess`` naming the spans that
could not be recorded (missing attributes, a tenant the key may not write, no price in force …)
while the others are recorded in one transaction; retries of the same export append nothing
(idempotency keys ``otlp:<trace id>:<span id>``). An undecodable body is 400 (415 for another
content type, 413 when too large) and writes nothing. The response uses the request's encoding.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from ledger.access import Permission, Principal
from ledger.log.entry import EntryLike, Receipt

from ..auth import principal
from ..errors import ApiError
from ..otlp import PROTOBUF, OtlpError, decode_traces, map_spans
from ..services import Services, services

router = APIRouter(prefix="/v1/otlp", tags=["opentelemetry"])


@router.post(
    "/v1/traces",
    responses={
        200: {"description": "ExportTraceServiceResponse (partialSuccess names refused spans)"},
        400: {"description": "The body cannot be decoded"},
        415: {"description": "Neither application/x-protobuf nor application/json"},
    },
)
async def export_traces(
    request: Request,
    who: Annotated[Principal, Depends(principal(Permission.WRITE))],
    found: Annotated[Services, Depends(services)],
) -> Response:
    """Receive an OTLP trace export from an OpenTelemetry SDK exporter or Collector."""
    content_type = request.headers.get("content-type", "")
    body = _decompressed(
        await request.body(),
        request.headers.get("content-encoding", ""),
        limit=found.settings.api_max_body_bytes,
    )
    try:
        spans = decode_traces(body, content_type)
    except OtlpError as exc:
        raise ApiError(exc.status, "bad_otlp", str(exc)) from None
    default_tenant = next(iter(who.tenants)) if len(who.tenants) == 1 else None
    mapped = map_spans(spans, default_tenant=default_tenant)
    rejected = list(mapped.rejected)
    entries: list[EntryLike] = []
    for entry in mapped.entries:
        if who.sees(entry["tenant"]):
            entries.append(entry)
        else:
            rejected.append(
                f"request {entry['payload']['request_id']}: key {who.key_id} may not write "
                f"for tenant '{entry['tenant']}'"
            )
    recorded = await _append_what_the_ledger_admits(found, entries, rejected)
    found.metrics.otlp_spans.labels("recorded").inc(recorded)
    found.metrics.otlp_spans.labels("ignored").inc(mapped.ignored)
    found.metrics.otlp_spans.labels("rejected").inc(len(rejected))
    return _response(content_type, rejected)


async def _append_what_the_ledger_admits(
    found: Services, entries: list[EntryLike], rejected: list[str]
) -> int:
    """Append in one transaction; an entry the ledger refuses is named in ``rejected``."""
    if not entries:
        return 0
    results = await asyncio.to_thread(found.ledger.append_admissible, entries)
    recorded = 0
    for entry, result in zip(entries, results, strict=True):
        if isinstance(result, Receipt):
            recorded += 1
            found.metrics.appended.inc(0 if result.duplicate else 1)
        else:
            assert isinstance(entry, dict)
            reason = getattr(result, "reason", None) or str(result)
            rejected.append(f"request {entry['payload']['request_id']}: {reason}")
    return recorded


def _decompressed(body: bytes, encoding: str, *, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ApiError(415, "bad_otlp", f"unsupported Content-Encoding '{encoding}'")
    decoder = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = decoder.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise ApiError(400, "bad_otlp", f"the body is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        raise ApiError(413, "too_large", f"the decompressed body exceeds {limit} bytes")
    return out


def _response(content_type: str, rejected: list[str]) -> Response:
    message = "; ".join(rejected[:20]) + (
        f"; … {len(rejected) - 20} more" if len(rejected) > 20 else ""
    )
    if content_type.split(";", 1)[0].strip().lower() == PROTOBUF:
        answer = ExportTraceServiceResponse()
        if rejected:
            answer.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=len(rejected), error_message=message)
            )
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    data: dict[str, Any] = {}
    if rejected:
        data["partialSuccess"] = {"rejectedSpans": str(len(rejected)), "errorMessage": message}
    return Response(json.dumps(data), media_type="application/json")
