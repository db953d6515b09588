"""POST /v1/events (one entry, group-committed) and POST /v1/events:batch (all or nothing)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from ledger.access import Permission, Principal
from ledger.events import default_catalogue

from ..auth import principal, require_tenant_write
from ..errors import ApiError
from ..schemas.events import BatchIn, BatchOut, EventIn, ReceiptOut
from ..services import Services, services

router = APIRouter(prefix="/v1", tags=["events"])
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same as the body's idempotency_key (batch: '<key>:<index>' per entry "
        "that has none)",
    ),
]
Writer = Annotated[Principal, Depends(principal(Permission.WRITE))]
Found = Annotated[Services, Depends(services)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or bad API key"},
    403: {"description": "The key may not write for this tenant"},
    409: {"description": "Idempotency key reused with other content, or expected_version"},
    413: {"description": "Body or batch too large"},
    422: {"description": "Refused: the error names the field (and the batch index)"},
    503: {"description": "Database unavailable: retry after Retry-After seconds"},
}


@router.post(
    "/events",
    response_model=ReceiptOut,
    status_code=201,
    responses={200: {"description": "An idempotent retry: nothing appended"}, **_ERRORS},
)
async def post_event(
    event: EventIn, who: Writer, found: Found, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    """Append one entry. Concurrent calls share a transaction (group commit); the receipt
    comes back only once the entry is durable."""
    entry = event.entry()
    if idempotency_key is not None:
        if event.idempotency_key not in (None, idempotency_key):
            raise ApiError(
                422,
                "validation_error",
                "the Idempotency-Key header and the body's idempotency_key differ",
                field="idempotency_key",
            )
        entry["idempotency_key"] = idempotency_key
    require_tenant_write(who, event.tenant)
    receipt = await found.committer.submit(entry)
    body = ReceiptOut.of(receipt).model_dump()
    return JSONResponse(body, status_code=200 if receipt.duplicate else 201)


@router.post(
    "/events:batch",
    response_model=BatchOut,
    status_code=201,
    responses={200: {"description": "Every entry was an idempotent retry"}, **_ERRORS},
)
def post_batch(
    batch: BatchIn, who: Writer, found: Found, idempotency_key: IdempotencyHeader = None
) -> JSONResponse:
    """Append up to `PACTLEDGER_API_MAX_BATCH` (10,000) entries in one transaction, all or
    nothing: a refusal names the entry's index and field, and nothing is written."""
    limit = found.settings.api_max_batch
    if len(batch.events) > limit:
        raise ApiError(
            413, "too_large", f"a batch holds at most {limit} entries, got {len(batch.events)}"
        )
    if not batch.events:
        raise ApiError(422, "validation_error", "the batch is empty", field="events")
    entries = []
    for index, event in enumerate(batch.events):
        require_tenant_write(who, event.tenant, index=index)
        entry = event.entry()
        if idempotency_key is not None and event.idempotency_key is None:
            entry["idempotency_key"] = f"{idempotency_key}:{index}"
        entries.append(entry)
    began = time.perf_counter()
    receipts = found.ledger.append(entries)
    found.metrics.append_seconds.labels("batch").observe(time.perf_counter() - began)
    found.metrics.batch_entries.labels("batch").observe(len(entries))
    fresh = sum(1 for r in receipts if not r.duplicate)
    found.metrics.appended.inc(fresh)
    body = BatchOut(
        receipts=[ReceiptOut.of(r) for r in receipts], tree_size=receipts[-1].tree_size
    ).model_dump()
    return JSONResponse(body, status_code=201 if fresh else 200)


@router.get("/events/types", tags=["catalogue"])
def event_types() -> list[dict[str, Any]]:
    """The event catalogue: every type, its current and accepted schema versions."""
    return default_catalogue().describe()


@router.get("/events/types/{event_type}/schema", tags=["catalogue"])
def event_schema(event_type: str, version: int | None = None) -> dict[str, Any]:
    """The JSON Schema of a type's payload, as POST /v1/events takes it."""
    return default_catalogue().json_schema(event_type, version)
