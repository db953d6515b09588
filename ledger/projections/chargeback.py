"""Chargeback per tenant, business unit, cost center, application, model, provider, region and
day (docs/projectors.md, ``chargeback``).

Guarantees: sums are exact (``Decimal``, costs kept as decimal text); every ``InferenceRouted``
counts once, in the UTC day of its ``occurred_at`` and under the price list version that
priced it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal, Inexact

from .base import Fact, Key, Rows, TableSpec

DIMENSIONS = (
    "tenant",
    "day",
    "business_unit",
    "cost_center",
    "application",
    "model",
    "model_tier",
    "provider",
    "region",
    "price_list_id",
    "price_list_version",
    "currency",
)
MEASURES = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cost")
CHARGEBACK = TableSpec("view_chargeback", key=DIMENSIONS, columns=(*DIMENSIONS, *MEASURES))
EXACT = Context(prec=60, traps=[Inexact])  # sums of money never round


class ChargebackProjection:
    name = "chargeback"
    tables: tuple[TableSpec, ...] = (CHARGEBACK,)
    types: frozenset[str] | None = frozenset({"InferenceRouted"})

    def keys(self, fact: Fact) -> Iterable[tuple[str, Key]]:
        if fact.type == "InferenceRouted":
            yield CHARGEBACK.name, _key(fact)

    def apply(self, fact: Fact, rows: Rows) -> None:
        if fact.type != "InferenceRouted":
            return
        payload = fact.payload
        key = _key(fact)
        held = rows.get(CHARGEBACK.name, key)
        row = dict(held) if held else {**dict(zip(DIMENSIONS, key, strict=True)), **_zero()}
        row["requests"] += 1
        row["input_tokens"] += payload["input_tokens"]
        row["output_tokens"] += payload["output_tokens"]
        row["cached_tokens"] += payload.get("cached_tokens", 0)
        row["cost"] = add_money(row["cost"], payload.get("cost") or "0")
        rows.put(CHARGEBACK.name, key, row)


def _key(fact: Fact) -> Key:
    payload = fact.payload
    return (
        fact.tenant,
        fact.occurred_at[:10],
        payload["business_unit"],
        payload["cost_center"],
        payload["application"],
        payload["model"],
        payload["model_tier"],
        payload["provider"],
        payload["region"],
        payload.get("price_list_id") or "",
        payload.get("price_list_version") or 0,
        payload.get("currency", "USD"),
    )


def _zero() -> dict[str, int | str]:
    return {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost": "0"}


def add_money(total: str, amount: str) -> str:
    """``total + amount``, exactly, as decimal text."""
    return decimal_text(EXACT.add(Decimal(total), Decimal(amount)))


def decimal_text(value: Decimal) -> str:
    """Exact decimal text without exponent or trailing zeros: ``1.50`` → ``1.5``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
