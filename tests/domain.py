"""Catalogue-valid entries for tests: the ledger admits only typed payloads, so tests that
exercise the log build theirs here rather than inventing types."""

from __future__ import annotations

from typing import Any

PRICE_LIST_ID = "list-2026"
RATES = {  # model: (input, output, cached input) per million tokens, USD
    "claude-opus-4-1": ("15", "75", "1.50"),
    "claude-sonnet-4-5": ("3", "15", "0.30"),
    "claude-haiku-4-5": ("1", "5", "0.10"),
}
TIERS = {"claude-opus-4-1": "opus", "claude-sonnet-4-5": "sonnet", "claude-haiku-4-5": "haiku"}


def price_list(
    version: int = 1,
    *,
    effective_from: str = "2026-01-01T00:00:00Z",
    rates: dict[str, tuple[str, str, str]] | None = None,
    price_list_id: str = PRICE_LIST_ID,
) -> dict[str, Any]:
    """A PriceListPublished entry pricing every model on every provider (region '*')."""
    prices = [
        {
            "model": model,
            "provider": provider,
            "input_per_million": rate[0],
            "output_per_million": rate[1],
            "cached_input_per_million": rate[2],
        }
        for model, rate in (rates or RATES).items()
        for provider in ("azure", "aws", "gcp")
    ]
    return {
        "type": "PriceListPublished",
        "stream": f"price-list:{price_list_id}",
        "tenant": "governance",
        "payload": {
            "price_list_id": price_list_id,
            "version": version,
            "effective_from": effective_from,
            "prices": prices,
        },
    }


def routed(
    n: int,
    *,
    tenant: str = "acme",
    model: str = "claude-sonnet-4-5",
    occurred_at: str | None = "2026-11-02T10:00:00Z",
    **payload: Any,
) -> dict[str, Any]:
    """An InferenceRouted entry for request ``n`` (needs a price list in force)."""
    body: dict[str, Any] = {
        "request_id": f"req-{n}",
        "business_unit": "research",
        "cost_center": "cc-4410",
        "application": "contract-review",
        "model_tier": TIERS[model],
        "model": model,
        "provider": "aws",
        "region": "eu-central-1",
        "input_tokens": 1000 + n,
        "output_tokens": 200,
    }
    body.update(payload)
    entry: dict[str, Any] = {
        "type": "InferenceRouted",
        "stream": f"request:req-{n}",
        "tenant": tenant,
        "payload": body,
    }
    if occurred_at is not None:
        entry["occurred_at"] = occurred_at
    return entry


def delivered(n: int, **fields: Any) -> dict[str, Any]:
    """A TrancheDelivered entry: a typed event with no dependencies, for log-mechanics tests."""
    entry: dict[str, Any] = {
        "type": "TrancheDelivered",
        "stream": f"tranche:t-{n % 4}",
        "tenant": "acme",
        "payload": {
            "tranche_id": f"t-{n % 4}",
            "racks_delivered": 1 + n,
            "gpus_delivered": 72 * (1 + n),
            "delivered_at": "2026-11-01T00:00:00Z",
        },
    }
    entry.update(fields)
    return entry
