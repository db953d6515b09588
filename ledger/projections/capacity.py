"""Capacity tranches and the usage of their racks (docs/projectors.md, ``capacity``).

Guarantees: a tranche's row sums every delivery, delay, credit and retirement recorded for it,
in ``seq`` order, with money exact; events about a tranche whose contract is not (yet) in the
log still count, with the contract's columns null; rack usage is kept per tranche and UTC hour
with the GPUs in service as projected at that moment, so observed tokens/s per GPU can be set
against the estimator's figure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .base import Fact, Key, Row, Rows, TableSpec
from .chargeback import add_money

TRANCHES = TableSpec(
    "view_tranches",
    key=("tranche_id",),
    columns=(
        "tranche_id",
        "tenant",
        "provider",
        "region",
        "rack_family",
        "racks_contracted",
        "gpus_contracted",
        "power_mw",
        "committed_usd",
        "price_per_gpu_hour",
        "contracted_at",
        "milestones",
        "racks_delivered",
        "gpus_delivered",
        "first_delivered_at",
        "last_delivered_at",
        "deliveries",
        "delays",
        "max_delay_days",
        "credits",
        "credits_usd",
        "racks_retired",
        "gpus_retired",
        "retirements",
        "requests",
        "input_tokens",
        "output_tokens",
        "inference_cost",
        "status",
    ),
    json_columns=frozenset({"milestones", "deliveries", "retirements"}),
)
RACK_USAGE = TableSpec(
    "view_rack_usage",
    key=("tranche_id", "hour"),
    columns=(
        "tranche_id",
        "hour",
        "tenant",
        "requests",
        "input_tokens",
        "output_tokens",
        "gpus_in_service",
    ),
)
TRANCHE_EVENTS = frozenset(
    {
        "TrancheContracted",
        "TrancheDelivered",
        "TrancheDelayed",
        "TrancheCreditAssessed",
        "TrancheRetired",
    }
)


class CapacityProjection:
    name = "capacity"
    tables: tuple[TableSpec, ...] = (TRANCHES, RACK_USAGE)
    types: frozenset[str] | None = TRANCHE_EVENTS | {"InferenceRouted"}

    def keys(self, fact: Fact) -> Iterable[tuple[str, Key]]:
        if fact.type in TRANCHE_EVENTS:
            yield TRANCHES.name, (fact.payload["tranche_id"],)
        elif fact.type == "InferenceRouted" and fact.payload.get("tranche_id"):
            tranche = fact.payload["tranche_id"]
            yield TRANCHES.name, (tranche,)
            yield RACK_USAGE.name, (tranche, hour_of(fact.occurred_at))

    def apply(self, fact: Fact, rows: Rows) -> None:
        if fact.type in TRANCHE_EVENTS:
            key = (fact.payload["tranche_id"],)
            row = _tranche(rows.get(TRANCHES.name, key), key[0], fact.tenant)
            _TRANCHE_FOLDS[fact.type](row, fact)
            row["status"] = tranche_status(row)
            rows.put(TRANCHES.name, key, row)
        elif fact.type == "InferenceRouted" and fact.payload.get("tranche_id"):
            self._used(fact, rows)

    def _used(self, fact: Fact, rows: Rows) -> None:
        payload = fact.payload
        key = (payload["tranche_id"],)
        tranche = _tranche(rows.get(TRANCHES.name, key), key[0], fact.tenant)
        tranche["requests"] += 1
        tranche["input_tokens"] += payload["input_tokens"]
        tranche["output_tokens"] += payload["output_tokens"]
        tranche["inference_cost"] = add_money(tranche["inference_cost"], payload.get("cost") or "0")
        tranche["status"] = tranche_status(tranche)
        rows.put(TRANCHES.name, key, tranche)

        usage_key = (key[0], hour_of(fact.occurred_at))
        held = rows.get(RACK_USAGE.name, usage_key)
        usage = (
            dict(held)
            if held
            else {
                "tranche_id": key[0],
                "hour": usage_key[1],
                "tenant": fact.tenant,
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
            }
        )
        usage["requests"] += 1
        usage["input_tokens"] += payload["input_tokens"]
        usage["output_tokens"] += payload["output_tokens"]
        usage["gpus_in_service"] = tranche["gpus_delivered"] - tranche["gpus_retired"]
        rows.put(RACK_USAGE.name, usage_key, usage)


def tranche_status(row: Row) -> str:
    delivered, contracted = row["racks_delivered"], row["racks_contracted"]
    if delivered > 0 and row["racks_retired"] >= delivered:
        return "retired"
    if contracted is not None and delivered >= contracted:
        return "delivered"
    if row["delays"]:
        return "delayed"
    if delivered:
        return "partially_delivered"
    return "contracted"


def hour_of(occurred_at: str) -> str:
    """``2026-11-02T10:41:07.5Z`` → ``2026-11-02T10:00:00Z``."""
    return f"{occurred_at[:13]}:00:00Z"


# --- folds, one per tranche event ---------------------------------------------------------------


def _contracted(row: Row, fact: Fact) -> None:
    payload = fact.payload
    row.update(
        provider=payload["provider"],
        region=payload["region"],
        rack_family=payload["rack_family"],
        racks_contracted=payload["racks"],
        gpus_contracted=payload["gpus"],
        power_mw=payload["power_mw"],
        committed_usd=payload["committed_usd"],
        price_per_gpu_hour=payload["price_per_gpu_hour"],
        contracted_at=fact.occurred_at,
    )
    current = {m["name"]: m for m in _loads(row["milestones"])}
    row["milestones"] = _dumps(
        [
            {
                "name": m["name"],
                "due": m["due"],
                "racks": m["racks"],
                "current_due": current.get(m["name"], {}).get("current_due", m["due"]),
            }
            for m in payload.get("milestones", [])
        ]
    )


def _delivered(row: Row, fact: Fact) -> None:
    payload = fact.payload
    at = payload["delivered_at"]
    row["racks_delivered"] += payload["racks_delivered"]
    row["gpus_delivered"] += payload["gpus_delivered"]
    row["first_delivered_at"] = min(filter(None, (row["first_delivered_at"], at)))
    row["last_delivered_at"] = max(filter(None, (row["last_delivered_at"], at)))
    deliveries = _loads(row["deliveries"])
    deliveries.append(
        {"at": at, "racks": payload["racks_delivered"], "gpus": payload["gpus_delivered"]}
    )
    row["deliveries"] = _dumps(deliveries)


def _delayed(row: Row, fact: Fact) -> None:
    payload = fact.payload
    row["delays"] += 1
    slip = _days_between(payload["original_due"], payload["new_due"])
    if row["max_delay_days"] is None or slip > Decimal(row["max_delay_days"]):
        row["max_delay_days"] = format(slip, "f")
    milestones = _loads(row["milestones"])
    for milestone in milestones:
        if milestone["name"] == payload["milestone"]:
            milestone["current_due"] = payload["new_due"]
    row["milestones"] = _dumps(milestones)


def _credited(row: Row, fact: Fact) -> None:
    row["credits"] += 1
    row["credits_usd"] = add_money(row["credits_usd"], fact.payload["credit_usd"])


def _retired(row: Row, fact: Fact) -> None:
    payload = fact.payload
    racks = payload["racks_retired"]
    gpus = 0
    if row["racks_contracted"] and row["gpus_contracted"] is not None:
        gpus = racks * row["gpus_contracted"] // row["racks_contracted"]
    row["racks_retired"] += racks
    row["gpus_retired"] += gpus
    retirements = _loads(row["retirements"])
    retirements.append({"at": payload["retired_at"], "racks": racks, "gpus": gpus})
    row["retirements"] = _dumps(retirements)


_TRANCHE_FOLDS = {
    "TrancheContracted": _contracted,
    "TrancheDelivered": _delivered,
    "TrancheDelayed": _delayed,
    "TrancheCreditAssessed": _credited,
    "TrancheRetired": _retired,
}


def _tranche(existing: Row | None, tranche_id: str, tenant: str) -> Row:
    if existing is not None:
        return dict(existing)
    row: Row = dict.fromkeys(TRANCHES.columns)
    row.update(
        tranche_id=tranche_id,
        tenant=tenant,
        milestones="[]",
        racks_delivered=0,
        gpus_delivered=0,
        deliveries="[]",
        delays=0,
        credits=0,
        credits_usd="0",
        racks_retired=0,
        gpus_retired=0,
        retirements="[]",
        requests=0,
        input_tokens=0,
        output_tokens=0,
        inference_cost="0",
    )
    return row


def _days_between(start: str, end: str) -> Decimal:
    """Days from ``start`` to ``end``, to one decimal (exact arithmetic, half up)."""
    delta = _time(end) - _time(start)
    microseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (Decimal(microseconds) / Decimal(86_400_000_000)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _loads(text: str | None) -> list[dict[str, Any]]:
    return list(json.loads(text)) if text else []


def _dumps(value: list[dict[str, Any]]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
