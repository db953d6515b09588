"""Governance events: published policies and price lists, residency decisions, routed
inferences (DESIGN §3). Amounts are exact decimals; personal data never appears in clear."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, model_validator

from ledger.events.catalogue import Event, Part
from ledger.events.types import Identifier, Label, Money, PersonalText, Sha256Hex, UtcTime

Provider = Literal["azure", "aws", "gcp", "anthropic"]
ModelTier = Literal["opus", "sonnet", "haiku"]
Outcome = Literal["allow", "deny", "reroute"]
TransferBasis = Literal["adequacy", "scc", "bcr", "derogation", "none"]
DataClass = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Region = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]


PolicyKind = Literal["regions", "residency", "routing"]


class PolicyPublished(Event):
    TYPE = "PolicyPublished"
    SUMMARY = "A policy version with its full text, so every decision can be re-checked later."

    policy_id: Identifier
    version: Annotated[int, Field(ge=1)]
    kind: PolicyKind
    text: Annotated[str, Field(min_length=1, max_length=48_000)]
    digest: Sha256Hex
    effective_from: UtcTime | None = None
    description: Label | None = None

    @model_validator(mode="after")
    def _digest_matches_text(self) -> PolicyPublished:
        actual = hashlib.sha256(self.text.encode()).hexdigest()
        if actual != self.digest:
            raise ValueError(f"digest is not the SHA-256 of text: expected {actual}")
        return self


class PolicyCitation(Part):
    """One policy document a decision was made with: id, version and text digest."""

    policy_id: Identifier
    version: Annotated[int, Field(ge=1)]
    digest: Sha256Hex


class ResidencyDecided(Event):
    TYPE = "ResidencyDecided"
    SUMMARY = "A data-residency decision, with the exact policy version that made it."

    decision_id: Identifier
    request_id: Identifier
    data_classes: Annotated[list[DataClass], Field(max_length=32)]
    candidate_provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # any asked for
    candidate_region: Region
    outcome: Outcome
    chosen_provider: Provider | None = None
    chosen_region: Region | None = None
    matched_rules: Annotated[list[Identifier], Field(max_length=64)]
    reasons: Annotated[list[Label], Field(max_length=64)]
    policies: Annotated[list[PolicyCitation], Field(min_length=1, max_length=64)]
    transfer_basis: TransferBasis = "none"
    model_tier: ModelTier | None = None

    @model_validator(mode="after")
    def _placement_fits_outcome(self) -> ResidencyDecided:
        placed = self.chosen_provider is not None and self.chosen_region is not None
        if self.outcome == "deny" and (self.chosen_provider or self.chosen_region):
            raise ValueError("a denied request has no chosen_provider or chosen_region")
        if self.outcome != "deny" and not placed:
            raise ValueError(f"outcome '{self.outcome}' needs chosen_provider and chosen_region")
        return self


class InferenceRouted(Event):
    TYPE = "InferenceRouted"
    SUMMARY = "One routed inference: who, which model where, on what capacity, at what cost."
    PERSONAL = ("end_user_id", "end_user_email", "end_user_note")
    SUBJECT = "end_user_id"

    request_id: Identifier
    business_unit: Identifier
    cost_center: Identifier
    application: Identifier
    model_tier: ModelTier
    model: Identifier
    provider: Provider
    region: Region
    deployment: Identifier | None = None
    rack_family: Identifier | None = None
    tranche_id: Identifier | None = None
    decision_id: Identifier | None = None
    route_reason: Label | None = None
    input_tokens: Annotated[
        NonNegativeInt, Field(description="Uncached input tokens, billed at the input rate")
    ]
    output_tokens: NonNegativeInt
    cached_tokens: Annotated[
        NonNegativeInt, Field(description="Cache-read input tokens, billed at the cached rate")
    ] = 0
    time_to_first_token_ms: NonNegativeInt | None = None
    latency_ms: NonNegativeInt | None = None
    status: Literal["ok", "error", "timeout", "refused"] = "ok"
    # Filled in by the ledger from the price list in force at occurred_at; a client may send
    # them, and then they must equal what the ledger computes.
    price_list_id: Identifier | None = None
    price_list_version: Annotated[int, Field(ge=1)] | None = None
    cost: Money | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    prompt_digest: Sha256Hex | None = None
    end_user_ref: Annotated[str, Field(max_length=4096)] | None = None  # ciphertext only
    # Personal data of the end user (the data subject), encrypted by the ledger on the way in.
    end_user_id: PersonalText | None = None
    end_user_email: PersonalText | None = None
    end_user_note: PersonalText | None = None


class ModelPrice(Part):
    """One line of a price list (not an event type of its own)."""

    model: Identifier
    provider: Provider
    region: Region | Literal["*"] = "*"
    input_per_million: Money
    output_per_million: Money
    cached_input_per_million: Money | None = None


class PriceListPublished(Event):
    TYPE = "PriceListPublished"
    SUMMARY = "A versioned price list; every cost line names the version it used."

    price_list_id: Identifier
    version: Annotated[int, Field(ge=1)]
    effective_from: UtcTime
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    prices: Annotated[list[ModelPrice], Field(min_length=1, max_length=300)]  # fits 64 KiB
