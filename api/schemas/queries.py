"""Decisions, provenance, proofs and mirror pages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DecisionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tenant": "contoso-eu",
                    "data_classes": ["eu_personal"],
                    "provider": "aws",
                    "region": "us-east-1",
                    "model": "claude-sonnet-4-5",
                    "request_id": "7f3a",
                }
            ]
        },
    )

    tenant: str
    data_classes: list[str] = Field(min_length=1, max_length=32)
    provider: str
    region: str
    model: str | None = Field(
        default=None, description="A tier (opus, sonnet, haiku) or a model id naming one"
    )
    capability: str | None = Field(
        default=None, description="Instead of model: routed to a tier by the routing policy"
    )
    transfer_basis: Literal["adequacy", "scc", "bcr", "derogation", "none"] = "none"
    request_id: str = Field(description="The request's id; the decision goes on its stream")
    decision_id: str | None = Field(
        default=None, description="Default: a new id. A retry with the same id appends nothing"
    )


class CheckpointOut(BaseModel):
    tree_size: int
    root_hash: str
    note: str = Field(description="The C2SP signed note, byte for byte")


class InclusionProofOut(BaseModel):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    audit_path: list[str]


class ConsistencyProofOut(BaseModel):
    first_size: int
    second_size: int
    first_root: str
    second_root: str
    consistency_path: list[str]


class EntryOut(BaseModel):
    seq: int
    type: str
    schema_version: int
    stream: str
    tenant: str
    occurred_at: str
    recorded_at: str
    payload: dict[str, Any]
    canonical: str = Field(description="The exact hashed bytes (RFC 8785 JSON) as text")
    leaf_hash: str
    chain_hash: str


class ProvenanceEntryOut(EntryOut):
    personal: dict[str, str] | None = Field(
        default=None,
        description="Personal fields in clear, or [erased] once the data subject's key is "
        "destroyed; absent when the entry has none. The payload keeps the stored ciphertext, "
        "which is what the hashes cover.",
    )
    inclusion_proof: InclusionProofOut | None = Field(
        description="Against the checkpoint below; null when the entry is newer than it"
    )


class ProvenanceOut(BaseModel):
    request_id: str
    checkpoint: CheckpointOut | None
    entries: list[ProvenanceEntryOut]


class EntriesPage(BaseModel):
    entries: list[EntryOut]
    next_after: int | None = Field(description="Pass as ?after= for the next page; null at the end")
    tree_size: int
