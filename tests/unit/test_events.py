"""The event catalogue: every shipped type validates a realistic payload and dumps it to one
fixed JSON form; bad payloads are refused naming the field; versions upcast; schemas print."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.errors import ValidationError
from ledger.events import EVENT_MODELS, Catalogue, Event, InferenceRouted, default_catalogue

POLICY_TEXT = "kind: residency\nid: eu-boundary\nversion: 3\nrules: []\n"

GOOD: dict[str, dict[str, Any]] = {
    "PolicyPublished": {
        "policy_id": "eu-boundary",
        "version": 3,
        "kind": "residency",
        "text": POLICY_TEXT,
        "digest": hashlib.sha256(POLICY_TEXT.encode()).hexdigest(),
    },
    "ResidencyDecided": {
        "decision_id": "dec-1",
        "request_id": "req-1",
        "data_classes": ["personal"],
        "candidate_provider": "aws",
        "candidate_region": "us-east-1",
        "outcome": "reroute",
        "chosen_provider": "aws",
        "chosen_region": "eu-central-1",
        "matched_rules": ["eu-personal-stays-in-eu"],
        "reasons": ["EU personal data must be processed in the EU/EEA"],
        "policies": [{"policy_id": "eu-boundary", "version": 3, "digest": "a" * 64}],
    },
    "InferenceRouted": {
        "request_id": "req-1",
        "business_unit": "research",
        "cost_center": "cc-4410",
        "application": "contract-review",
        "model_tier": "sonnet",
        "model": "claude-sonnet-4-5",
        "provider": "aws",
        "region": "eu-central-1",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost": "0.008100",
    },
    "PriceListPublished": {
        "price_list_id": "list-2026",
        "version": 2,
        "effective_from": "2026-11-01T00:00:00+00:00",
        "prices": [
            {
                "model": "claude-sonnet-4-5",
                "provider": "aws",
                "input_per_million": "3.00",
                "output_per_million": "15.00",
            }
        ],
    },
    "TrancheContracted": {
        "tranche_id": "gb300-fra-1",
        "provider": "azure",
        "region": "germanywestcentral",
        "rack_family": "gb300-nvl72",
        "racks": 16,
        "gpus": 1152,
        "power_mw": "2.1",
        "committed_usd": "412000000",
        "price_per_gpu_hour": "6.40",
        "milestones": [{"name": "m1", "due": "2026-12-01T00:00:00Z", "racks": 8}],
        "sla": {
            "reference_workload": "mlperf-llama3.1-405b",
            "min_tokens_per_s_per_gpu": "180",
            "credit_rate": "0.15",
        },
    },
    "TrancheDelivered": {
        "tranche_id": "gb300-fra-1",
        "racks_delivered": 8,
        "gpus_delivered": 576,
        "delivered_at": "2026-12-03T09:00:00Z",
    },
    "TrancheDelayed": {
        "tranche_id": "gb300-fra-1",
        "milestone": "m2",
        "original_due": "2027-01-01T00:00:00Z",
        "new_due": "2027-02-15T00:00:00Z",
        "reason": "power feed late",
    },
    "TrancheCreditAssessed": {
        "tranche_id": "gb300-fra-1",
        "period_start": "2026-12-01T00:00:00Z",
        "period_end": "2026-12-31T00:00:00Z",
        "expected_tokens_per_s_per_gpu": "180",
        "observed_tokens_per_s_per_gpu": "131.5",
        "shortfall": "0.2694",
        "credit_usd": "1830000.00",
        "evidence": [{"first": 100, "last": 5400}],
    },
    "TrancheRetired": {
        "tranche_id": "hgx-h100-iad-2",
        "racks_retired": 4,
        "retired_at": "2027-06-30T00:00:00Z",
    },
    "BenchmarkRecorded": {
        "benchmark_id": "bench-7",
        "tranche_id": "gb300-fra-1",
        "rack_family": "gb300-nvl72",
        "model": "llama-3.1-405b",
        "precision": "fp4",
        "gpus": 72,
        "workload": {
            "name": "mlperf-llama3.1-405b",
            "input_tokens": 9400,
            "output_tokens": 680,
            "scenario": "server",
        },
        "measured_tokens_per_s": "9468.5",
        "harness_digest": "b" * 64,
        "measured_at": "2026-12-05T12:00:00Z",
    },
    "SubjectErased": {
        "subject_ref": "subj-8f2c",
        "key_id": "dek-8f2c",
        "erased_at": "2026-12-20T10:00:00Z",
    },
    "SigningKeyRotated": {
        "old_vkey": "ledger.example/eu-1+0123abcd+AQ",
        "new_vkey": "ledger.example/eu-1+89abcdef+AQ",
        "effective_at": "2027-01-01T00:00:00Z",
    },
}

catalogue = default_catalogue()


def test_the_catalogue_holds_every_design_type() -> None:
    assert set(catalogue.types()) == set(GOOD)
    assert len(EVENT_MODELS) == 12


@pytest.mark.parametrize("event_type", sorted(GOOD))
def test_each_type_reads_a_realistic_payload_and_dumps_it_stably(event_type: str) -> None:
    event = catalogue.validate(event_type, 1, GOOD[event_type])
    dumped = event.payload()
    assert catalogue.validate(event_type, 1, dumped).payload() == dumped
    json.dumps(dumped)  # JSON values only: decimals and times as text
    assert not any(isinstance(value, float) for value in _leaves(dumped))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_money_and_times_have_one_text_form() -> None:
    event = catalogue.validate("InferenceRouted", 1, GOOD["InferenceRouted"])
    assert isinstance(event, InferenceRouted)
    assert event.cost == Decimal("0.008100")
    assert event.payload()["cost"] == "0.008100"
    delivered = catalogue.validate(
        "TrancheDelivered",
        1,
        {**GOOD["TrancheDelivered"], "delivered_at": "2026-12-03T11:00:00+02:00"},
    )
    assert delivered.payload()["delivered_at"] == "2026-12-03T09:00:00.000000Z"


@pytest.mark.parametrize(
    ("event_type", "change", "field", "reason"),
    [
        ("InferenceRouted", {"cost": 0.0081}, "payload.cost", "never floats"),
        ("InferenceRouted", {"cost": "1e-3"}, "payload.cost", "decimal string"),
        ("InferenceRouted", {"input_tokens": "many"}, "payload.input_tokens", "integer"),
        ("InferenceRouted", {"input_tokens": -1}, "payload.input_tokens", "greater than"),
        ("InferenceRouted", {"provider": "oracle"}, "payload.provider", "azure"),
        ("InferenceRouted", {"colour": "red"}, "payload.colour", "Extra inputs"),
        ("InferenceRouted", {"model": None}, "payload.model", "string"),
        (
            "TrancheDelivered",
            {"delivered_at": "2026-12-03T09:00:00"},
            "payload.delivered_at",
            "timezone",
        ),
        ("TrancheContracted", {"power_mw": 2.1}, "payload.power_mw", "never floats"),
        ("TrancheCreditAssessed", {"shortfall": "1.5"}, "payload.shortfall", "less than or equal"),
        ("PolicyPublished", {"digest": "0" * 64}, "payload", "SHA-256 of text"),
        ("ResidencyDecided", {"outcome": "deny"}, "payload", "denied request"),
    ],
)
def test_bad_payloads_are_refused_naming_the_field(
    event_type: str, change: dict[str, Any], field: str, reason: str
) -> None:
    payload = {**GOOD[event_type], **change}
    with pytest.raises(ValidationError) as caught:
        catalogue.validate(event_type, 1, payload)
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_a_missing_field_is_named() -> None:
    payload = dict(GOOD["InferenceRouted"])
    del payload["region"]
    with pytest.raises(ValidationError) as caught:
        catalogue.validate("InferenceRouted", 1, payload)
    assert caught.value.field == "payload.region"
    assert "required" in str(caught.value)


def test_unknown_types_and_versions_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown event type 'Nope'") as caught:
        catalogue.validate("Nope", 1, {})
    assert caught.value.field == "type"
    with pytest.raises(ValidationError, match="no schema version 2") as caught:
        catalogue.validate("InferenceRouted", 2, GOOD["InferenceRouted"])
    assert caught.value.field == "schema_version"


class NoteV1(Event):
    TYPE = "Note"
    VERSION = 1
    text: str


class NoteV2(Event):
    TYPE = "Note"
    VERSION = 2
    body: str
    language: str


def test_a_v1_entry_still_reads_after_v2_exists() -> None:
    notes = Catalogue()
    notes.register(NoteV1)
    stored_v1 = NoteV1(text="hello").payload()
    notes.register(NoteV2, upcast_from_previous=lambda old: {"body": old["text"], "language": "en"})
    read = notes.read("Note", 1, stored_v1)
    assert isinstance(read, NoteV2)
    assert read.payload() == {"body": "hello", "language": "en"}
    assert notes.read("Note", 2, {"body": "hej", "language": "sv"}).payload()["language"] == "sv"
    with pytest.raises(ValidationError):
        notes.validate("Note", 2, stored_v1)  # written as v1, it is not a valid v2 payload
    assert notes.describe() == [
        {"type": "Note", "schema_version": 2, "versions": [1, 2], "summary": ""}
    ]


def test_a_new_version_needs_an_upcaster() -> None:
    notes = Catalogue()
    with pytest.raises(ValueError, match="needs v1"):
        notes.register(NoteV2)
    notes.register(NoteV1)
    with pytest.raises(ValueError, match="registered twice"):
        notes.register(NoteV1)


def test_cli_lists_the_catalogue_and_prints_schemas() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["events", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {row["type"] for row in json.loads(listed.stdout)} == set(GOOD)
    shown = runner.invoke(app, ["events", "schema", "InferenceRouted", "--json"])
    assert shown.exit_code == 0, shown.output
    schema = json.loads(shown.stdout)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"request_id", "model", "provider", "region"}
    money = schema["properties"]["cost"]["anyOf"][0]
    assert money["type"] == "string"
    unknown = runner.invoke(app, ["events", "schema", "Nope"])
    assert unknown.exit_code == 1
    assert "unknown event type" in unknown.stderr
