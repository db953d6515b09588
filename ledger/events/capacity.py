"""Capacity events: reserved rack tranches from contract to retirement, and the throughput
benchmarks that an SLA credit can be assessed against (DESIGN §3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from ledger.events.catalogue import Event, Part
from ledger.events.governance import Provider, Region
from ledger.events.types import (
    DecimalText,
    Identifier,
    Label,
    Money,
    NonNegativeDecimal,
    Sha256Hex,
    UtcTime,
)

Precision = Literal["bf16", "fp8", "fp4"]


class Milestone(Part):
    name: Identifier
    due: UtcTime
    racks: NonNegativeInt


class SlaTerms(Part):
    reference_workload: Identifier
    min_tokens_per_s_per_gpu: NonNegativeDecimal
    credit_rate: Annotated[DecimalText, Field(ge=0, le=1)]  # fraction of the period's charge


class TrancheContracted(Event):
    TYPE = "TrancheContracted"
    SUMMARY = "A committed capacity tranche: racks, GPUs, power, money, milestones, SLA."

    tranche_id: Identifier
    provider: Provider
    region: Region
    rack_family: Identifier
    racks: PositiveInt
    gpus: PositiveInt
    power_mw: NonNegativeDecimal
    committed_usd: Money
    price_per_gpu_hour: Money
    milestones: Annotated[list[Milestone], Field(max_length=64)] = Field(default_factory=list)
    sla: SlaTerms


class TrancheDelivered(Event):
    TYPE = "TrancheDelivered"
    SUMMARY = "Racks of a tranche handed over (partial deliveries add up)."

    tranche_id: Identifier
    racks_delivered: PositiveInt
    gpus_delivered: PositiveInt
    delivered_at: UtcTime
    milestone: Identifier | None = None


class TrancheDelayed(Event):
    TYPE = "TrancheDelayed"
    SUMMARY = "A milestone of a tranche slipped."

    tranche_id: Identifier
    milestone: Identifier
    original_due: UtcTime
    new_due: UtcTime
    reason: Label


class SeqRange(Part):
    first: NonNegativeInt
    last: NonNegativeInt


class TrancheCreditAssessed(Event):
    TYPE = "TrancheCreditAssessed"
    SUMMARY = "An SLA credit for underdelivered throughput, with the evidence that supports it."

    tranche_id: Identifier
    period_start: UtcTime
    period_end: UtcTime
    expected_tokens_per_s_per_gpu: NonNegativeDecimal
    observed_tokens_per_s_per_gpu: NonNegativeDecimal
    shortfall: Annotated[DecimalText, Field(ge=0, le=1)]
    credit_usd: Money
    evidence: Annotated[list[SeqRange], Field(max_length=1000)] = Field(default_factory=list)
    checkpoint_size: NonNegativeInt | None = None


class TrancheRetired(Event):
    TYPE = "TrancheRetired"
    SUMMARY = "Racks of a tranche taken out of service."

    tranche_id: Identifier
    racks_retired: PositiveInt
    retired_at: UtcTime
    reason: Label | None = None


class WorkloadShape(Part):
    name: Identifier
    input_tokens: PositiveInt
    output_tokens: PositiveInt
    scenario: Literal["offline", "server", "interactive"]


class BenchmarkRecorded(Event):
    TYPE = "BenchmarkRecorded"
    SUMMARY = "A reproducible throughput measurement on a tranche's racks."

    benchmark_id: Identifier
    tranche_id: Identifier
    rack_family: Identifier
    model: Identifier
    precision: Precision
    gpus: PositiveInt
    workload: WorkloadShape
    measured_tokens_per_s: NonNegativeDecimal
    harness_digest: Sha256Hex
    measured_at: UtcTime
