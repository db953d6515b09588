"""Entries in and receipts out."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ledger.log.entry import Receipt

EXAMPLE: dict[str, Any] = {
    "type": "InferenceRouted",
    "stream": "request:7f3a",
    "tenant": "contoso-eu",
    "occurred_at": "2026-11-25T09:30:00Z",
    "idempotency_key": "route-7f3a",
    "payload": {
        "request_id": "7f3a",
        "business_unit": "research",
        "cost_center": "cc-4410",
        "application": "contract-review",
        "model_tier": "sonnet",
        "model": "claude-sonnet-4-5",
        "provider": "aws",
        "region": "eu-central-1",
        "input_tokens": 1200,
        "output_tokens": 300,
    },
}


class EventIn(BaseModel):
    """One entry. The payload must match its type's schema (`GET /v1/events/types`, or
    `pactledger events schema TYPE`); money as decimal strings, times RFC 3339 with offset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    type: str = Field(description="A catalogued event type, e.g. InferenceRouted")
    stream: str = Field(description="kind:id, e.g. request:7f3a")
    tenant: str
    payload: dict[str, Any]
    schema_version: int = 1
    occurred_at: AwareDatetime | None = None
    idempotency_key: str | None = Field(
        default=None, description="A retry with the same key and content appends nothing"
    )
    expected_version: int | None = Field(
        default=None, description="Refuse unless the stream is at this version (409)"
    )

    def entry(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(description="Appended all or nothing, in this order")


class ReceiptOut(BaseModel):
    seq: int
    event_id: str
    stream: str
    stream_version: int
    leaf_hash: str = Field(description="RFC 6962 leaf hash, hex")
    chain_hash: str = Field(description="Hash-chain link after this entry, hex")
    tree_size: int = Field(description="Size of the tree that includes the entry")
    duplicate: bool = Field(description="True when an idempotent retry appended nothing")

    @classmethod
    def of(cls, receipt: Receipt) -> ReceiptOut:
        return cls(
            seq=receipt.seq,
            event_id=receipt.event_id,
            stream=receipt.stream,
            stream_version=receipt.stream_version,
            leaf_hash=receipt.leaf_hash.hex(),
            chain_hash=receipt.chain_hash.hex(),
            tree_size=receipt.tree_size,
            duplicate=receipt.duplicate,
        )


class BatchOut(BaseModel):
    receipts: list[ReceiptOut]
    tree_size: int
