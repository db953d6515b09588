"""Pricing routed inferences from the published price lists.

Guarantees: a cost is exact (``Decimal``, no rounding: rates times token counts, scaled by
10⁻⁶); it is computed from the price list *in force* at the request's time and names that
list's id and version, so history can be re-priced and every cost line cited. The list in
force, for each ``price_list_id``, is the version with the latest ``effective_from`` not after
the request (ties: the higher version). When several lists are in force the most recent one
that prices the model on the provider — region line first, then the provider-wide ``*`` line —
is used; a request may name its ``price_list_id`` to choose. No price → a ValidationError
naming ``payload.model``: nothing is appended unpriced.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, Inexact, Rounded, localcontext

from ledger.errors import ValidationError
from ledger.events.governance import InferenceRouted, ModelPrice, PriceListPublished
from ledger.log.entry import format_time


@dataclass(frozen=True)
class PriceQuote:
    price_list_id: str
    price_list_version: int
    currency: str
    cost: Decimal


def cost_of(routed: InferenceRouted, line: ModelPrice) -> Decimal:
    """Exact cost of one routed inference at one price line (rates are per million tokens).

    Computed with enough precision for any rate the catalogue admits, and trapping inexact
    results, so a cost is never silently rounded."""
    cached_rate = line.cached_input_per_million
    if cached_rate is None:
        cached_rate = line.input_per_million
    with localcontext() as context:
        context.prec = 200
        context.traps[Inexact] = True
        context.traps[Rounded] = True
        try:
            total = (
                routed.input_tokens * line.input_per_million
                + routed.cached_tokens * cached_rate
                + routed.output_tokens * line.output_per_million
            )
            return total.scaleb(-6).normalize() if total else Decimal(0)
        except (Inexact, Rounded):
            raise ValidationError(
                "the cost needs more than 200 significant digits: shorten the price list's rates",
                field="payload.model",
            ) from None


class PriceBook:
    """Every published price list, answering "what did this request cost, and by which list"."""

    def __init__(self) -> None:
        self._lists: dict[str, list[PriceListPublished]] = defaultdict(list)

    def add(self, price_list: PriceListPublished) -> None:
        self._lists[price_list.price_list_id].append(price_list)

    def in_force(
        self, at: datetime, *, price_list_id: str | None = None
    ) -> list[PriceListPublished]:
        """The lists in force at ``at``, most recent first."""
        ids = [price_list_id] if price_list_id is not None else sorted(self._lists)
        current = []
        for list_id in ids:
            effective = [p for p in self._lists.get(list_id, []) if p.effective_from <= at]
            if effective:
                current.append(max(effective, key=lambda p: (p.effective_from, p.version)))
        return sorted(current, key=lambda p: (p.effective_from, p.version), reverse=True)

    def quote(self, routed: InferenceRouted, at: datetime) -> PriceQuote:
        lists = self.in_force(at, price_list_id=routed.price_list_id)
        for price_list in lists:
            line = _line_for(price_list, routed)
            if line is not None:
                return PriceQuote(
                    price_list.price_list_id,
                    price_list.version,
                    price_list.currency,
                    cost_of(routed, line),
                )
        named = f"price list '{routed.price_list_id}'" if routed.price_list_id else "price list"
        raise ValidationError(
            f"no {named} in force at {format_time(at)} prices {routed.model} on "
            f"{routed.provider}/{routed.region}: publish a PriceListPublished entry that covers it",
            field="payload.model",
        )

    def price(self, routed: InferenceRouted, at: datetime) -> InferenceRouted:
        """The routed inference with its cost, currency and price list filled in. Values the
        client sent must equal the computed ones."""
        quote = self.quote(routed, at)
        expected = {
            "price_list_id": quote.price_list_id,
            "price_list_version": quote.price_list_version,
            "currency": quote.currency,
            "cost": quote.cost,
        }
        for name, value in expected.items():
            said = getattr(routed, name)
            if name in routed.model_fields_set and said is not None and said != value:
                raise ValidationError(
                    f"is {said} but price list {quote.price_list_id} v{quote.price_list_version} "
                    f"in force at {format_time(at)} gives {value}; omit it and the "
                    "ledger fills it in",
                    field=f"payload.{name}",
                )
        return routed.model_copy(update=expected)


def _line_for(price_list: PriceListPublished, routed: InferenceRouted) -> ModelPrice | None:
    provider_wide = None
    for line in price_list.prices:
        if line.model != routed.model or line.provider != routed.provider:
            continue
        if line.region == routed.region:
            return line
        if line.region == "*":
            provider_wide = line
    return provider_wide
