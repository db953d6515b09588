"""Residency compliance per request (docs/projectors.md, ``compliance``).

Guarantees: a request's ``status`` is recomputed from its whole row on every change, so it
does not depend on whether the decision or the routing was appended first; the decision is
judged as recorded (the placement it names); jurisdictions come from the region catalogue
published in the ledger itself (``PolicyPublished`` of kind ``regions``), never from files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from .base import Fact, Key, Row, Rows, TableSpec

REGIONS = TableSpec(
    "view_regions",
    key=("provider", "region"),
    columns=("provider", "region", "tenant", "country", "jurisdiction", "sovereign", "version"),
)
RESIDENCY = TableSpec(
    "view_residency",
    key=("request_id",),
    columns=(
        "request_id",
        "tenant",
        "decision_id",
        "decision_seq",
        "decided_at",
        "outcome",
        "candidate_provider",
        "candidate_region",
        "decided_provider",
        "decided_region",
        "decided_jurisdiction",
        "policy_versions",
        "transfer_basis",
        "served_count",
        "first_served_seq",
        "last_served_seq",
        "served_at",
        "served_provider",
        "served_region",
        "served_jurisdiction",
        "served_locations",
        "status",
    ),
)

COMPLIANT, NOT_SERVED = "compliant", "not_served"
VIOLATIONS = ("violation", "no_decision", "denied_but_served")
STATUSES = (COMPLIANT, NOT_SERVED, *VIOLATIONS)


class ComplianceProjection:
    name = "compliance"
    tables: tuple[TableSpec, ...] = (REGIONS, RESIDENCY)
    types: frozenset[str] | None = frozenset(
        {"PolicyPublished", "ResidencyDecided", "InferenceRouted"}
    )

    def keys(self, fact: Fact) -> Iterable[tuple[str, Key]]:
        payload = fact.payload
        if fact.type == "PolicyPublished":
            if payload.get("kind") == "regions":
                yield from ((REGIONS.name, location) for location in _catalogue(payload)[0])
        elif fact.type == "ResidencyDecided":
            yield RESIDENCY.name, (payload["request_id"],)
            if payload.get("chosen_region"):
                yield REGIONS.name, (payload["chosen_provider"], payload["chosen_region"])
        elif fact.type == "InferenceRouted":
            yield RESIDENCY.name, (payload["request_id"],)
            yield REGIONS.name, (payload["provider"], payload["region"])

    def apply(self, fact: Fact, rows: Rows) -> None:
        if fact.type == "PolicyPublished" and fact.payload.get("kind") == "regions":
            version = fact.payload["version"]
            locations, infos = _catalogue(fact.payload)
            for location, info in zip(locations, infos, strict=True):
                held = rows.get(REGIONS.name, location)
                if held is None or held["version"] <= version:  # never roll a region back
                    rows.put(
                        REGIONS.name, location, {**info, "tenant": fact.tenant, "version": version}
                    )
        elif fact.type == "ResidencyDecided":
            self._decided(fact, rows)
        elif fact.type == "InferenceRouted":
            self._served(fact, rows)

    def _decided(self, fact: Fact, rows: Rows) -> None:
        payload = fact.payload
        key = (payload["request_id"],)
        row = _row_of(rows.get(RESIDENCY.name, key), payload["request_id"], fact.tenant)
        if row["decision_seq"] is not None and row["decision_seq"] > fact.seq:
            return  # an older decision never replaces a newer one
        provider, region = payload.get("chosen_provider"), payload.get("chosen_region")
        row.update(
            decision_id=payload["decision_id"],
            decision_seq=fact.seq,
            decided_at=fact.occurred_at,
            outcome=payload["outcome"],
            candidate_provider=payload["candidate_provider"],
            candidate_region=payload["candidate_region"],
            decided_provider=provider,
            decided_region=region,
            decided_jurisdiction=_jurisdiction(rows, provider, region),
            policy_versions=" ".join(
                sorted(f"{p['policy_id']}@{p['version']}" for p in payload["policies"])
            ),
            transfer_basis=payload.get("transfer_basis", "none"),
        )
        row["status"] = status_of(row)
        rows.put(RESIDENCY.name, key, row)

    def _served(self, fact: Fact, rows: Rows) -> None:
        payload = fact.payload
        key = (payload["request_id"],)
        row = _row_of(rows.get(RESIDENCY.name, key), payload["request_id"], fact.tenant)
        if payload.get("status", "ok") != "refused":
            provider, region = payload["provider"], payload["region"]
            locations = set((row["served_locations"] or "").split())
            locations.add(f"{provider}/{region}")
            row.update(
                served_count=row["served_count"] + 1,
                first_served_seq=row["first_served_seq"]
                if row["first_served_seq"] is not None
                else fact.seq,
                last_served_seq=fact.seq,
                served_at=fact.occurred_at,
                served_provider=provider,
                served_region=region,
                served_jurisdiction=_jurisdiction(rows, provider, region),
                served_locations=" ".join(sorted(locations)),
            )
        row["status"] = status_of(row)
        rows.put(RESIDENCY.name, key, row)


def status_of(row: Row) -> str:
    """The compliance status of a request's row (docs/projectors.md)."""
    if not row["served_count"]:
        return NOT_SERVED
    if row["decision_id"] is None:
        return "no_decision"
    if row["outcome"] == "deny":
        return "denied_but_served"
    decided = f"{row['decided_provider']}/{row['decided_region']}"
    if all(location == decided for location in row["served_locations"].split()):
        return COMPLIANT
    return "violation"


def _row_of(existing: Row | None, request_id: str, tenant: str) -> Row:
    if existing is not None:
        return dict(existing)
    row: Row = dict.fromkeys(RESIDENCY.columns)
    row.update(request_id=request_id, tenant=tenant, served_count=0)
    return row


def _jurisdiction(rows: Rows, provider: str | None, region: str | None) -> str | None:
    if provider is None or region is None:
        return None
    info = rows.get(REGIONS.name, (provider, region))
    return None if info is None else str(info["jurisdiction"])


def _catalogue(payload: Any) -> tuple[list[Key], list[Row]]:
    """The rows of a published region catalogue (its text was validated when published)."""
    document = yaml.safe_load(payload["text"])
    locations: list[Key] = []
    infos: list[Row] = []
    for entry in document.get("regions", []):
        location = (entry["provider"], entry["region"])
        locations.append(location)
        infos.append(
            {
                "provider": entry["provider"],
                "region": entry["region"],
                "country": entry["country"],
                "jurisdiction": entry["jurisdiction"],
                "sovereign": bool(entry.get("sovereign", False)),
            }
        )
    return locations, infos
