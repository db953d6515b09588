"""The reference views and the scenario generator: the yardstick the projectors are held to
must itself be right, on small hand-built logs where every expected value is written out."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
import pytest

from ledger.app.governance import decision_entry, publish_policies
from ledger.app.service import Ledger
from ledger.errors import ValidationError
from ledger.events import EVENT_MODELS, TrancheDelivered
from ledger.events.catalogue import build_catalogue
from ledger.log.entry import SealedEntry
from ledger.policy import Facts, PolicySet, load_policy_set, shipped_policy_dir
from ledger.store.memory import MemoryLogStore
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import price_list, routed
from tests.projections.reference import VIEWS, normalise, reference_views
from tests.projections.scenario import RESIDENCY_STATUSES, VIOLATIONS, Scenario, fill_ledger
from tests.projections.timeline import RATES_V2, TRANCHE_STATUSES

DAY = "2026-11-02"
V2_FROM = "2026-11-03T00:00:00Z"


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policy_set()


@pytest.fixture
def ledger(policies: PolicySet) -> Ledger:
    ledger = Ledger(store=MemoryLogStore(ORIGIN))
    publish_policies(ledger, policies)
    ledger.append([price_list(1), price_list(2, effective_from=V2_FROM, rates=RATES_V2)])
    return ledger


def entries(ledger: Ledger) -> list[SealedEntry]:
    return list(ledger.store.iter_entries())


def views(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    return reference_views(entries(ledger))


def row(ledger: Ledger, table: str, **key: Any) -> dict[str, Any]:
    found = [r for r in views(ledger)[table] if all(r[k] == v for k, v in key.items())]
    assert len(found) == 1, found
    return found[0]


def decision(
    policies: PolicySet,
    n: int,
    *,
    tenant: str = "acme",
    location: str = "aws/us-east-1",
    data: tuple[str, ...] = ("internal",),
    basis: str = "none",
    tier: str = "sonnet",
    at: str = f"{DAY}T10:00:00Z",
    decision_id: str | None = None,
) -> dict[str, Any]:
    provider, region = location.split("/")
    facts = Facts(tenant, data, provider, region, tier, basis)
    return decision_entry(
        facts,
        policies.decide(facts),
        request_id=f"req-{n}",
        decision_id=decision_id or f"dec-{n}",
        occurred_at=at,
    )


def served(
    n: int,
    *,
    location: str = "aws/us-east-1",
    at: str = f"{DAY}T10:00:01Z",
    **payload: Any,
) -> dict[str, Any]:
    provider, region = location.split("/")
    return routed(n, provider=provider, region=region, occurred_at=at, **payload)


# --- view_residency --------------------------------------------------------------------------

EU = ("eu_personal",)
# name: (decision facts or None, routings as (location, status), expected status)
CASES: dict[str, tuple[dict[str, Any] | None, list[tuple[str, str]], str]] = {
    "allowed, served there": ({}, [("aws/us-east-1", "ok")], "compliant"),
    "rerouted, served where rerouted": (
        {"tenant": "globex", "data": EU},
        [("aws/eu-central-1", "ok")],
        "compliant",
    ),
    "served twice at the decided place": (
        {},
        [("aws/us-east-1", "error"), ("aws/us-east-1", "ok")],
        "compliant",
    ),
    "refused elsewhere, then served at the decided place": (
        {},
        [("gcp/us-east5", "refused"), ("aws/us-east-1", "ok")],
        "compliant",
    ),
    "rerouted, served where it asked": (
        {"tenant": "globex", "data": EU},
        [("aws/us-east-1", "ok")],
        "violation",
    ),
    "served at the decided place and elsewhere": (
        {},
        [("aws/us-east-1", "ok"), ("azure/eastus2", "ok")],
        "violation",
    ),
    "denied, served": ({"tenant": "us-federal"}, [("aws/us-east-1", "ok")], "denied_but_served"),
    "served with no decision": (None, [("aws/us-east-1", "ok")], "no_decision"),
    "allowed, never served": ({}, [], "not_served"),
    "denied, never served": ({"tenant": "us-federal"}, [], "not_served"),
    "allowed, refused": ({}, [("aws/us-east-1", "refused")], "not_served"),
    "refused, no decision": (None, [("aws/us-east-1", "refused")], "not_served"),
}


@pytest.mark.parametrize("order", ["decision first", "routing first"])
@pytest.mark.parametrize("case", list(CASES))
def test_residency_status_does_not_depend_on_arrival_order(
    ledger: Ledger, policies: PolicySet, case: str, order: str
) -> None:
    facts, routes, expected = CASES[case]
    decided = [decision(policies, 1, **facts)] if facts is not None else []
    routings = [
        served(1, location=location, status=status, at=f"{DAY}T10:00:{10 + k:02d}Z")
        for k, (location, status) in enumerate(routes)
    ]
    batches = [decided, routings] if order == "decision first" else [routings, decided]
    for batch in batches:
        if batch:
            ledger.append(batch)

    got = row(ledger, "view_residency", request_id="req-1")
    assert got["status"] == expected
    assert got["served_count"] == sum(1 for _, status in routes if status != "refused")


def test_residency_row_in_full(ledger: Ledger, policies: PolicySet) -> None:
    ledger.append([served(1, location="gcp/us-east5", status="refused", at=f"{DAY}T10:00:01Z")])
    ledger.append([decision(policies, 1, tenant="globex", data=EU, at=f"{DAY}T10:00:00Z")])
    ledger.append(
        [
            served(1, location="aws/eu-central-1", tenant="globex", at=f"{DAY}T10:00:05Z"),
            served(1, location="aws/eu-central-1", tenant="globex", at=f"{DAY}T10:00:09Z"),
        ]
    )
    seqs = [e.seq for e in entries(ledger)][-4:]

    assert row(ledger, "view_residency", request_id="req-1") == {
        "request_id": "req-1",
        "tenant": "acme",  # of its first entry, the refused routing
        "decision_id": "dec-1",
        "decision_seq": seqs[1],
        "decided_at": f"{DAY}T10:00:00.000000Z",
        "outcome": "reroute",
        "candidate_provider": "aws",
        "candidate_region": "us-east-1",
        "decided_provider": "aws",
        "decided_region": "eu-central-1",
        "decided_jurisdiction": "eu",
        "policy_versions": "capability-routing@1 default-residency@1 eu-data-boundary@1 "
        "region-catalogue@1 sovereign-government@1",
        "transfer_basis": "none",
        "served_count": 2,
        "first_served_seq": seqs[2],
        "last_served_seq": seqs[3],
        "served_at": f"{DAY}T10:00:09.000000Z",
        "served_provider": "aws",
        "served_region": "eu-central-1",
        "served_jurisdiction": "eu",
        "served_locations": "aws/eu-central-1",
        "status": "compliant",
    }


def test_residency_nulls_without_decision_or_service(ledger: Ledger, policies: PolicySet) -> None:
    ledger.append([decision(policies, 1, tenant="us-federal"), served(2, status="refused")])

    denied = row(ledger, "view_residency", request_id="req-1")
    undecided = row(ledger, "view_residency", request_id="req-2")

    assert denied["outcome"] == "deny"
    assert denied["decided_provider"] is denied["decided_jurisdiction"] is None
    assert denied["served_count"] == 0
    assert all(denied[c] is None for c in ("first_served_seq", "served_at", "served_locations"))
    assert undecided["decision_id"] is undecided["outcome"] is undecided["transfer_basis"] is None
    assert (undecided["served_count"], undecided["status"]) == (0, "not_served")


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [("dec-deny", "dec-allow", "compliant"), ("dec-allow", "dec-deny", "denied_but_served")],
)
def test_the_latest_decision_by_seq_counts(
    ledger: Ledger, policies: PolicySet, first: str, second: str, expected: str
) -> None:
    made = {
        "dec-deny": decision(policies, 1, location="aws/mx-central-1", decision_id="dec-deny"),
        "dec-allow": decision(policies, 1, decision_id="dec-allow", at=f"{DAY}T09:00:00Z"),
    }
    ledger.append([made[first]])
    ledger.append([made[second], served(1)])

    got = row(ledger, "view_residency", request_id="req-1")
    assert (got["decision_id"], got["status"]) == (second, expected)
    assert got["decision_seq"] == entries(ledger)[-2].seq


def test_served_locations_are_distinct_sorted_and_jurisdictions_looked_up(
    ledger: Ledger, policies: PolicySet
) -> None:
    ledger.append(
        [
            decision(policies, 1),
            served(1, location="gcp/us-east5", at=f"{DAY}T10:00:01Z"),
            served(1, location="aws/us-east-1", at=f"{DAY}T10:00:02Z"),
            served(1, location="gcp/us-east5", at=f"{DAY}T10:00:03Z"),
            served(1, location="aws/mx-central-1", at=f"{DAY}T10:00:04Z"),  # not catalogued
        ]
    )
    got = row(ledger, "view_residency", request_id="req-1")
    assert got["served_locations"] == "aws/mx-central-1 aws/us-east-1 gcp/us-east5"
    assert (got["served_region"], got["served_jurisdiction"]) == ("mx-central-1", None)
    assert (got["served_count"], got["status"]) == (4, "violation")


# --- view_regions ----------------------------------------------------------------------------


def catalogue_entry(version: int, text: str) -> dict[str, Any]:
    return {
        "type": "PolicyPublished",
        "stream": "policy:region-catalogue",
        "tenant": "governance",
        "payload": {
            "policy_id": "region-catalogue",
            "version": version,
            "kind": "regions",
            "text": text,
            "digest": hashlib.sha256(text.encode()).hexdigest(),
        },
    }


def test_regions_from_the_catalogue(ledger: Ledger, policies: PolicySet) -> None:
    rows = views(ledger)["view_regions"]
    assert len(rows) == len(policies.catalogue.regions)
    assert row(ledger, "view_regions", provider="aws", region="us-gov-west-1") == {
        "provider": "aws",
        "region": "us-gov-west-1",
        "tenant": "governance",
        "country": "US",
        "jurisdiction": "us-gov",
        "sovereign": True,
    }


def test_a_later_catalogue_updates_what_it_lists_and_keeps_the_rest(ledger: Ledger) -> None:
    v1 = (shipped_policy_dir() / "regions.yaml").read_bytes().decode()
    start = v1.index("  - provider: aws\n    region: us-east-1\n")
    end = v1.index("  - provider: aws\n", start + 1)
    v2 = (v1[:start] + v1[end:]).replace("version: 1\n", "version: 2\n", 1)
    v2 = v2.replace(
        "country: CH\n    jurisdiction: ch\n", "country: CH\n    jurisdiction: ch-fadp\n"
    )
    ledger.append([catalogue_entry(2, v2)])
    ledger.append([catalogue_entry(1, v1)])  # re-publishing v1 unchanged must not roll back

    assert row(ledger, "view_regions", region="eu-central-2")["jurisdiction"] == "ch-fadp"
    assert row(ledger, "view_regions", region="us-east-1")["jurisdiction"] == "us"  # kept


# --- view_chargeback -------------------------------------------------------------------------


def test_chargeback_sums_exactly_per_day_and_price_list(ledger: Ledger) -> None:
    ledger.append(
        [
            routed(1, input_tokens=1000, output_tokens=200, cached_tokens=100),
            routed(2, input_tokens=3, output_tokens=1, occurred_at=f"{DAY}T23:59:59.999999Z"),
            routed(3, status="refused", input_tokens=10, output_tokens=0),
            routed(4, occurred_at="2026-11-03T00:00:00Z", input_tokens=1000, output_tokens=200),
        ]
    )
    rows = views(ledger)["view_chargeback"]

    assert [(r["day"], r["price_list_version"], r["requests"]) for r in rows] == [
        (DAY, 1, 3),
        ("2026-11-03", 2, 1),
    ]
    day1, day2 = rows
    # v1 sonnet: 3 / 15 / 0.30 per million; v2: 2.70 / 13.50
    assert Decimal(day1["cost"]) == Decimal("0.00603") + Decimal("0.000024") + Decimal("0.00003")
    assert (day1["input_tokens"], day1["output_tokens"], day1["cached_tokens"]) == (1013, 201, 100)
    assert Decimal(day2["cost"]) == Decimal("0.0054")
    assert day1["price_list_id"] == "list-2026"
    assert (day1["tenant"], day1["currency"], day1["model_tier"]) == ("acme", "USD", "sonnet")


def test_chargeback_keys_split_by_every_dimension(ledger: Ledger) -> None:
    ledger.append(
        [
            routed(1),
            routed(2, application="chat-triage"),
            routed(3, model="claude-haiku-4-5"),
            routed(4, region="eu-west-1"),
            routed(5, tenant="globex"),
        ]
    )
    assert [r["requests"] for r in views(ledger)["view_chargeback"]] == [1] * 5


def test_an_unpriced_entry_counts_with_an_empty_price_list() -> None:
    store = MemoryLogStore(ORIGIN)  # the store alone: an entry from before pricing existed
    entry = routed(1)
    store.append([entry])

    (got,) = reference_views(store.entries)["view_chargeback"]
    assert (got["price_list_id"], got["price_list_version"], got["cost"]) == ("", 0, "0")
    assert got["requests"] == 1


# --- view_provenance -------------------------------------------------------------------------


def test_provenance_by_payload_request_id_or_request_stream(
    ledger: Ledger, policies: PolicySet
) -> None:
    first = len(entries(ledger))
    ledger.append(
        [
            decision(policies, 1),
            served(1),
            {**served(2), "stream": "request:batch-9"},  # payload request_id comes first
            {
                "type": "SubjectErased",
                "stream": "request:req-1",
                "tenant": "acme",
                "payload": {
                    "subject_ref": "subj-1",
                    "key_id": "dek-1",
                    "erased_at": "2026-11-04T00:00:00Z",
                    "request_ref": "req-1",
                },
            },
            {
                "type": "SubjectErased",
                "stream": "subject:subj-2",
                "tenant": "acme",
                "payload": {
                    "subject_ref": "subj-2",
                    "key_id": "dek-2",
                    "erased_at": "2026-11-04T00:00:00Z",
                    "request_ref": "req-1",  # a request_ref is not a request_id
                },
            },
        ]
    )
    rows = views(ledger)["view_provenance"]
    assert [(r["request_id"], r["seq"] - first, r["type"], r["stream"]) for r in rows] == [
        ("req-1", 0, "ResidencyDecided", "request:req-1"),
        ("req-1", 1, "InferenceRouted", "request:req-1"),
        ("req-1", 3, "SubjectErased", "request:req-1"),
        ("req-2", 2, "InferenceRouted", "request:batch-9"),
    ]
    assert {r["tenant"] for r in rows} == {"acme"}


# --- view_tranches and view_rack_usage -------------------------------------------------------


def tranche(event_type: str, at: str, **payload: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "stream": "tranche:t-1",
        "tenant": "acme",
        "occurred_at": at,
        "payload": {"tranche_id": "t-1", **payload},
    }


def contracted(racks: int, gpus: int, at: str = "2026-11-01T00:00:00Z") -> dict[str, Any]:
    return tranche(
        "TrancheContracted",
        at,
        provider="aws",
        region="us-east-1",
        rack_family="gb200-nvl72",
        racks=racks,
        gpus=gpus,
        power_mw="0.90",
        committed_usd="1000000.00",
        price_per_gpu_hour="3.50",
        milestones=[
            {"name": "m1", "due": "2026-11-02T00:00:00Z", "racks": 3},
            {"name": "m2", "due": "2026-11-05T00:00:00Z", "racks": racks - 3},
        ],
        sla={
            "reference_workload": "chat",
            "min_tokens_per_s_per_gpu": "1800",
            "credit_rate": "0.1",
        },
    )


def delivered(racks: int, gpus: int, at: str) -> dict[str, Any]:
    return tranche(
        "TrancheDelivered", at, racks_delivered=racks, gpus_delivered=gpus, delivered_at=at
    )


def retired(racks: int, at: str) -> dict[str, Any]:
    return tranche("TrancheRetired", at, racks_retired=racks, retired_at=at)


def delayed(new_due: str, at: str = "2026-11-04T00:00:00Z") -> dict[str, Any]:
    return tranche(
        "TrancheDelayed",
        at,
        milestone="m2",
        original_due="2026-11-05T00:00:00Z",
        new_due=new_due,
        reason="Cooling parts late",
    )


def on_tranche(n: int, at: str, **payload: Any) -> dict[str, Any]:
    return routed(n, occurred_at=at, tranche_id="t-1", rack_family="gb200-nvl72", **payload)


def tranche_row(ledger: Ledger) -> dict[str, Any]:
    return row(ledger, "view_tranches", tranche_id="t-1")


def test_tranche_status_moves_through_its_life(ledger: Ledger) -> None:
    steps: list[tuple[list[dict[str, Any]], str]] = [
        ([contracted(7, 500)], "contracted"),
        ([delivered(3, 216, "2026-11-02T00:00:00Z")], "partially_delivered"),
        ([delayed("2026-11-07T06:00:00Z")], "delayed"),
        ([delivered(4, 288, "2026-11-07T00:00:00Z")], "delivered"),
        ([retired(2, "2026-11-20T00:00:00Z")], "delivered"),
        ([retired(5, "2026-11-21T00:00:00Z")], "retired"),
    ]
    for batch, status in steps:
        ledger.append(batch)
        assert tranche_row(ledger)["status"] == status


def test_retirement_is_pro_rata_rounded_down_per_retirement(ledger: Ledger) -> None:
    ledger.append(
        [
            contracted(7, 500),
            delivered(7, 500, "2026-11-02T00:00:00Z"),
            retired(2, "2026-11-20T00:00:00Z"),  # 2 × 500 / 7 = 142.86
            retired(5, "2026-11-21T00:00:00Z"),  # 5 × 500 / 7 = 357.14
        ]
    )
    got = tranche_row(ledger)
    assert (got["racks_retired"], got["gpus_retired"]) == (7, 142 + 357)
    assert got["retirements"] == [
        {"at": "2026-11-20T00:00:00.000000Z", "racks": 2, "gpus": 142},
        {"at": "2026-11-21T00:00:00.000000Z", "racks": 5, "gpus": 357},
    ]


def test_tranche_row_in_full(ledger: Ledger) -> None:
    ledger.append(
        [
            contracted(7, 500),
            delivered(3, 216, "2026-11-02T00:00:00Z"),
            delayed("2026-11-07T06:00:00Z"),  # 2.25 days: rounds half up to 2.3
            delayed("2026-11-06T00:00:00Z", at="2026-11-05T00:00:00Z"),  # later, shorter
            tranche(
                "TrancheCreditAssessed",
                "2026-11-06T00:00:00Z",
                period_start="2026-11-02T00:00:00Z",
                period_end="2026-11-05T00:00:00Z",
                expected_tokens_per_s_per_gpu="1800",
                observed_tokens_per_s_per_gpu="1620",
                shortfall="0.1",
                credit_usd="1250.50",
            ),
            on_tranche(1, "2026-11-02T10:00:00Z", input_tokens=1000, output_tokens=200),
            on_tranche(2, "2026-11-02T11:00:00Z", input_tokens=2000, output_tokens=100),
            delivered(2, 144, "2026-11-06T12:00:00Z"),
            {
                "type": "BenchmarkRecorded",  # names the tranche but is not a Tranche* event
                "stream": "benchmark:b-1",
                "tenant": "acme",
                "payload": {
                    "benchmark_id": "b-1",
                    "tranche_id": "t-2",
                    "rack_family": "gb200-nvl72",
                    "model": "claude-sonnet-4-5",
                    "precision": "fp8",
                    "gpus": 72,
                    "workload": {
                        "name": "chat",
                        "input_tokens": 2048,
                        "output_tokens": 512,
                        "scenario": "server",
                    },
                    "measured_tokens_per_s": "120000.5",
                    "harness_digest": "a" * 64,
                    "measured_at": "2026-11-06T00:00:00Z",
                },
            },
        ]
    )
    assert [r["tranche_id"] for r in views(ledger)["view_tranches"]] == ["t-1"]
    assert tranche_row(ledger) == {
        "tranche_id": "t-1",
        "tenant": "acme",
        "provider": "aws",
        "region": "us-east-1",
        "rack_family": "gb200-nvl72",
        "racks_contracted": 7,
        "gpus_contracted": 500,
        "power_mw": "0.90",
        "committed_usd": "1000000.00",
        "price_per_gpu_hour": "3.50",
        "contracted_at": "2026-11-01T00:00:00.000000Z",
        "milestones": [
            {
                "name": "m1",
                "due": "2026-11-02T00:00:00.000000Z",
                "racks": 3,
                "current_due": "2026-11-02T00:00:00.000000Z",
            },
            {
                "name": "m2",
                "due": "2026-11-05T00:00:00.000000Z",
                "racks": 4,
                "current_due": "2026-11-06T00:00:00.000000Z",
            },
        ],
        "racks_delivered": 5,
        "gpus_delivered": 360,
        "first_delivered_at": "2026-11-02T00:00:00.000000Z",
        "last_delivered_at": "2026-11-06T12:00:00.000000Z",
        "deliveries": [
            {"at": "2026-11-02T00:00:00.000000Z", "racks": 3, "gpus": 216},
            {"at": "2026-11-06T12:00:00.000000Z", "racks": 2, "gpus": 144},
        ],
        "delays": 2,
        "max_delay_days": "2.3",
        "credits": 1,
        "credits_usd": "1250.50",
        "racks_retired": 0,
        "gpus_retired": 0,
        "retirements": [],
        "requests": 2,
        "input_tokens": 3000,
        "output_tokens": 300,
        # sonnet v1: (1000 × 3 + 200 × 15 + 2000 × 3 + 100 × 15) / 10⁶
        "inference_cost": "0.0135",
        "status": "delayed",
    }


def test_a_tranche_only_named_by_routings_has_a_row(ledger: Ledger) -> None:
    ledger.append([on_tranche(1, "2026-11-02T10:00:00Z")])
    got = tranche_row(ledger)
    assert (got["status"], got["requests"], got["provider"], got["milestones"]) == (
        "contracted",
        1,
        None,
        None,
    )
    (usage,) = views(ledger)["view_rack_usage"]
    assert usage["gpus_in_service"] == 0


def test_rack_usage_per_hour_with_gpus_as_projected_at_the_hours_latest_entry(
    ledger: Ledger,
) -> None:
    ledger.append(
        [
            contracted(4, 286),
            delivered(2, 143, "2026-11-02T09:00:00Z"),
            on_tranche(1, "2026-11-02T10:05:00Z", input_tokens=100, output_tokens=10),
            delivered(2, 143, "2026-11-02T10:20:00Z"),
            on_tranche(2, "2026-11-02T10:40:00Z", input_tokens=200, output_tokens=20),
            on_tranche(3, "2026-11-02T11:10:00Z", input_tokens=300, output_tokens=30),
            retired(1, "2026-11-02T11:30:00Z"),  # 286 / 4 = 71.5: 71 GPUs
        ]
    )
    hours = {r["hour"]: r for r in views(ledger)["view_rack_usage"]}
    assert hours["2026-11-02T10:00:00Z"] == {
        "tranche_id": "t-1",
        "hour": "2026-11-02T10:00:00Z",
        "tenant": "acme",
        "requests": 2,
        "input_tokens": 300,
        "output_tokens": 30,
        "gpus_in_service": 286,
    }
    assert hours["2026-11-02T11:00:00Z"]["gpus_in_service"] == 286

    # A late routing of 10:00, applied after the retirement, is now the hour's latest entry.
    ledger.append([on_tranche(4, "2026-11-02T10:50:00Z", input_tokens=1, output_tokens=1)])
    hours = {r["hour"]: r for r in views(ledger)["view_rack_usage"]}
    assert hours["2026-11-02T10:00:00Z"]["gpus_in_service"] == 286 - 71
    assert hours["2026-11-02T10:00:00Z"]["requests"] == 3
    assert hours["2026-11-02T11:00:00Z"]["gpus_in_service"] == 286


# --- normalise and the catalogue -------------------------------------------------------------


def test_normalise_puts_sql_rows_and_reference_rows_in_one_form(ledger: Ledger) -> None:
    ledger.append([contracted(7, 500), delivered(3, 216, "2026-11-02T00:00:00Z")])
    reference = views(ledger)["view_tranches"]
    from_sql = [
        {
            **reference[0],
            "power_mw": "0.9",
            "committed_usd": Decimal("1000000"),
            "milestones": orjson.dumps(reference[0]["milestones"]).decode(),
            "deliveries": orjson.dumps(reference[0]["deliveries"]),
            "surrogate_id": 17,  # columns the spec does not name are left out
        }
    ]
    assert normalise("view_tranches", from_sql) == normalise("view_tranches", reference)
    regions = views(ledger)["view_regions"]
    as_sqlite = [{**r, "sovereign": int(r["sovereign"])} for r in reversed(regions)]
    assert normalise("view_regions", as_sqlite) == normalise("view_regions", regions)
    assert normalise("view_regions", as_sqlite)[0]["provider"] == "anthropic"


def test_normalise_refuses_missing_columns_and_float_money() -> None:
    with pytest.raises(KeyError, match="status"):
        normalise("view_tranches", [{"tranche_id": "t-1"}])
    with pytest.raises(TypeError, match="exact decimal"):
        normalise(
            "view_chargeback",
            [dict.fromkeys(VIEWS["view_chargeback"].columns, "x") | {"cost": 0.1}],
        )


def test_an_entry_of_an_unknown_type_stops_the_reference(ledger: Ledger) -> None:
    ledger.append([delivered(1, 72, "2026-11-02T00:00:00Z")])
    without = build_catalogue(m for m in EVENT_MODELS if m is not TrancheDelivered)
    with pytest.raises(ValidationError, match="TrancheDelivered"):
        reference_views(entries(ledger), without)


# --- the scenario ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filled() -> tuple[Scenario, list[SealedEntry]]:
    store = MemoryLogStore(ORIGIN)
    scenario = fill_ledger(Ledger(store=store), entries=3000)
    return scenario, store.entries


def content(log: Sequence[SealedEntry]) -> list[tuple[str, str, str, Any]]:
    return [(e.type, e.stream, e.tenant, orjson.loads(e.entry_bytes)["payload"]) for e in log]


def test_scenario_appends_about_as_many_entries_as_asked(
    filled: tuple[Scenario, list[SealedEntry]],
) -> None:
    scenario, log = filled
    assert len(log) == scenario.entries
    assert abs(scenario.entries - 3000) <= 5
    assert scenario.counts == dict(sorted(Counter(e.type for e in log).items()))
    assert scenario.batches == 6


def test_scenario_is_deterministic(filled: tuple[Scenario, list[SealedEntry]]) -> None:
    scenario, log = filled
    store = MemoryLogStore(ORIGIN)
    again = fill_ledger(Ledger(store=store), entries=3000)
    assert again == scenario
    assert content(store.entries) == content(log)

    other = MemoryLogStore(ORIGIN)
    fill_ledger(Ledger(store=other), entries=300, seed=8)
    assert content(other.entries) != content(log)[: len(other.entries)]


def test_scenario_has_every_status_and_the_reference_agrees(
    filled: tuple[Scenario, list[SealedEntry]],
) -> None:
    scenario, log = filled
    got = reference_views(log)

    residency = {r["request_id"]: r["status"] for r in got["view_residency"]}
    assert residency == scenario.statuses
    assert set(residency.values()) == set(RESIDENCY_STATUSES)
    assert all(scenario.violations[status] for status in VIOLATIONS)
    tranches = {r["tranche_id"]: r["status"] for r in got["view_tranches"]}
    assert tranches == scenario.tranche_statuses
    assert set(tranches.values()) == set(TRANCHE_STATUSES)

    assert {r["price_list_version"] for r in got["view_chargeback"]} == {1, 2}
    assert len({r["day"] for r in got["view_chargeback"]}) >= 10
    assert {r["tenant"] for r in got["view_chargeback"]} == set(scenario.tenants)
    assert scenario.erased_request in {
        r["request_id"] for r in got["view_provenance"] if r["type"] == "SubjectErased"
    }
    assert {r["tranche_id"] for r in got["view_rack_usage"]} == {
        t for t, status in scenario.tranche_statuses.items() if status != "contracted"
    }


def test_scenario_mixes_arrival_orders(filled: tuple[Scenario, list[SealedEntry]]) -> None:
    _, log = filled
    first_batch = min(e.seq for e in log if e.type != "PolicyPublished")

    def batch(seq: int) -> int:
        return (seq - first_batch) // 500

    decided: dict[str, int] = {}
    routed_at: dict[str, int] = {}
    for row in reference_views(log)["view_residency"]:
        if row["decision_seq"] is not None and row["first_served_seq"] is not None:
            decided[row["request_id"]] = row["decision_seq"]
            routed_at[row["request_id"]] = row["first_served_seq"]
    both = decided.keys()
    assert any(routed_at[r] < decided[r] for r in both)  # routing before its decision
    assert any(batch(routed_at[r]) > batch(decided[r]) for r in both)  # routing a batch later
    assert any(batch(decided[r]) > batch(routed_at[r]) for r in both)  # decision a batch later


def test_scenario_names_tranches_only_after_their_delivery(
    filled: tuple[Scenario, list[SealedEntry]],
) -> None:
    _, log = filled
    first_delivery: dict[str, int] = {}
    named = 0
    for entry, payload in zip(log, (c[3] for c in content(log)), strict=True):
        if entry.type == "TrancheDelivered":
            first_delivery.setdefault(payload["tranche_id"], entry.seq)
        elif entry.type == "InferenceRouted" and "tranche_id" in payload:
            named += 1
            assert entry.seq > first_delivery[payload["tranche_id"]]
            assert payload["rack_family"].endswith("nvl72")
    assert named > 50


def test_scenario_through_sqlite_gives_the_same_views(
    sqlite_url: str, filled: tuple[Scenario, list[SealedEntry]]
) -> None:
    store = open_sql_store(sqlite_url)
    scenario = fill_ledger(Ledger(store=store), entries=3000)
    _, log = filled

    assert scenario == filled[0]
    assert reference_views(store.iter_entries()) == reference_views(log)


def test_reference_rows_have_exactly_the_spec_columns_in_key_order(
    filled: tuple[Scenario, list[SealedEntry]],
) -> None:
    got = reference_views(filled[1])
    assert set(got) == set(VIEWS)
    for table, rows in got.items():
        assert rows, table
        assert all(list(r) == list(VIEWS[table].columns) for r in rows), table
        keys = VIEWS[table].keys
        in_key_order = [tuple(r[k] for k in keys) for r in normalise(table, rows)]
        assert [tuple(r[k] for k in keys) for r in rows] == in_key_order, table
        assert len(set(in_key_order)) == len(rows), table  # the key is a key
