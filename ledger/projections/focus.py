"""FinOps FOCUS 1.2 export of the chargeback view: one FOCUS cost-and-usage record per row.

Pure: no I/O but the text stream handed to :func:`write_focus_csv`. A ``view_chargeback`` row
(docs/projectors.md, ``chargeback``) is one UTC day of one model's inference on one provider
and region, for one tenant, business unit, cost center and application, priced by one price
list version; it becomes one FOCUS record (FinOps Open Cost and Usage Specification, version
:data:`FOCUS_VERSION`, https://focus.finops.org/focus-specification/v1-2/).

Guarantees:

* Every value is text in FOCUS's formats. Date/times are ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``
  and every period is ``[start, end)``: the charge period is the row's day, the billing period
  its calendar month. Decimals are plain (``0.0000001``, never ``1E-7``; no ``+``, no
  thousands separators, no trailing zeros) and exact (``Decimal`` from the row's decimal
  text, never a float). The currency is the row's ISO 4217 code. Null is ``""``, an empty
  CSV field.
* Money passes through unchanged: BilledCost, EffectiveCost, ListCost and ContractedCost all
  equal the row's ``cost``, so every sum over an export equals the same sum over the view.
* Every row is checked before it is used: a missing column, a cost that is not exact
  non-negative decimal text, a count that is not a non-negative integer, a day that is not a
  date, an unknown provider or a malformed currency raises ``ValueError`` naming the column
  and the row (counted from 1, in input order). Rows are streamed, so when that happens the
  records before the bad row are already out: write to a temporary file, rename on success.

Columns (:data:`FOCUS_COLUMNS`): FOCUS columns first, alphabetically, then the custom
``x_`` columns (FOCUS Column Handling). Presence levels are those of FOCUS 1.2's columns and
its requirements model (``specification/requirements_model`` of the FOCUS_Spec repository):

* Every column FOCUS 1.2 makes Mandatory. BillingAccountType is Conditional (present when a
  provider has more than one type of billing account) and is left out: there is one, the
  tenant.
* The Conditional columns whose condition holds here: ConsumedQuantity and ConsumedUnit
  (usage is metered, in tokens), RegionId and RegionName (every request runs in a region;
  the name is the id, as the view has no display names), PricingCategory (``Standard``: every
  cost is the published list price).
* Two Recommended columns: ChargeFrequency (``Usage-Based``) and ServiceSubcategory
  (``Generative AI``, under ServiceCategory ``AI and Machine Learning``).

Mapping: the tenant is the billing account (id and name); the row's provider is the provider
and the invoice issuer (no reseller or marketplace is recorded) and names the service
(:data:`PROVIDERS`); Anthropic, which makes every Claude model the ledger routes, is the
publisher. Prices are per million tokens, so, as in FOCUS's own token-billing examples, the
PricingUnit is ``1000000 Tokens`` with PricingQuantity the row's tokens (input + output +
cached) × 10⁻⁶, and the ConsumedUnit is ``Tokens`` with ConsumedQuantity the token count (0
for a row of requests that used no tokens, though FOCUS expects a positive quantity on usage:
the export reports what was metered). A row without a price list (entries older than pricing:
``price_list_id`` ``""``, version 0, cost 0) has null x_PriceListId and x_PriceListVersion.

Not modelled:

* Discounts, negotiated prices, commitment discounts, capacity reservations, credits, taxes,
  refunds and corrections (ChargeClass is always null, ChargeCategory always ``Usage``): the
  ledger prices every request at the published list price, so the four costs are equal. No
  invoice is known (no InvoiceId), and no FOCUS metadata document is written.
* SkuId, SkuPriceId, SkuMeter, SkuPriceDetails and ListUnitPrice: a chargeback row blends
  three meters with their own rates (input, output and cached input tokens), so no single SKU
  price or unit price describes it; x_PriceListId and x_PriceListVersion cite the prices used.
* SubAccountId and SubAccountName: a FOCUS sub account is the service provider's construct
  (an AWS account, an Azure subscription, a Google Cloud project), which the view does not
  record; the business unit is the enterprise's own allocation dimension, x_BusinessUnit, and
  is not passed off as one.
* Resources, tags, availability zones and a pricing currency apart from the billing currency.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TextIO

from .chargeback import DIMENSIONS, MEASURES, decimal_text

FOCUS_VERSION = "1.2"

_SPEC_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
)
_CUSTOM_COLUMNS = (
    "x_BusinessUnit",
    "x_CostCenter",
    "x_Application",
    "x_Model",
    "x_ModelTier",
    "x_InputTokens",
    "x_OutputTokens",
    "x_CachedTokens",
    "x_Requests",
    "x_PriceListId",
    "x_PriceListVersion",
    "x_Tenant",
)
FOCUS_COLUMNS: tuple[str, ...] = (*_SPEC_COLUMNS, *_CUSTOM_COLUMNS)
"""Every column of a record and of the CSV header, in order."""


@dataclass(frozen=True, slots=True)
class ProviderNames:
    """How FOCUS names a provider: who provides and invoices, and the service used."""

    name: str
    service: str


PROVIDERS: Mapping[str, ProviderNames] = {
    "aws": ProviderNames("Amazon Web Services", "Amazon Bedrock"),
    "azure": ProviderNames("Microsoft", "Microsoft Foundry"),
    "gcp": ProviderNames("Google Cloud", "Vertex AI"),
    "anthropic": ProviderNames("Anthropic", "Claude API"),
}
PUBLISHER_NAME = "Anthropic"
PRICING_UNIT = "1000000 Tokens"  # the price lists' rates are per million tokens
CONSUMED_UNIT = "Tokens"

ROW_COLUMNS = (*DIMENSIONS, *MEASURES)
"""The columns a chargeback row must have (others are ignored)."""

_COUNTS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "price_list_version")
_LABELS = ("tenant", "business_unit", "cost_center", "application", "model", "model_tier")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_LAST_MONTH = date(9999, 12, 1)


@dataclass(frozen=True, slots=True)
class _Row:
    labels: Mapping[str, str]
    day: date
    provider: ProviderNames
    region: str
    price_list_id: str
    currency: str
    counts: Mapping[str, int]
    cost: Decimal


def focus_records(rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, str]]:
    """One FOCUS record per chargeback row, lazily: every :data:`FOCUS_COLUMNS` value as text.

    Raises ``ValueError`` naming the row and the column of the first bad value."""
    for number, row in enumerate(rows, start=1):
        yield _record(_parse(row, f"chargeback row {number}"))


def write_focus_csv(rows: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Write the header and one record per row as CSV (RFC 4180); return the record count.

    Fields are quoted only when they must be, lines end in CRLF as RFC 4180 says, and null is
    an empty field. Open ``out`` with ``newline=""`` (and UTF-8) so nothing is translated."""
    writer = csv.DictWriter(out, fieldnames=FOCUS_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    count = 0
    for record in focus_records(rows):
        writer.writerow(record)
        count += 1
    return count


def _record(row: _Row) -> dict[str, str]:
    cost = _decimal(row.cost)
    counts = row.counts
    tokens = counts["input_tokens"] + counts["output_tokens"] + counts["cached_tokens"]
    month = row.day.replace(day=1)
    priced = row.price_list_id != ""
    values = {
        "BilledCost": cost,
        "BillingAccountId": row.labels["tenant"],
        "BillingAccountName": row.labels["tenant"],
        "BillingCurrency": row.currency,
        "BillingPeriodEnd": _midnight((month + timedelta(days=31)).replace(day=1)),
        "BillingPeriodStart": _midnight(month),
        "ChargeCategory": "Usage",
        "ChargeClass": "",  # null: not a correction of an invoiced period
        "ChargeDescription": _description(row),
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _midnight(row.day + timedelta(days=1)),
        "ChargePeriodStart": _midnight(row.day),
        "ConsumedQuantity": str(tokens),
        "ConsumedUnit": CONSUMED_UNIT,
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceIssuerName": row.provider.name,
        "ListCost": cost,
        "PricingCategory": "Standard",
        "PricingQuantity": _decimal(Decimal(f"{tokens}E-6")),  # exact: built, not divided
        "PricingUnit": PRICING_UNIT,
        "ProviderName": row.provider.name,
        "PublisherName": PUBLISHER_NAME,
        "RegionId": row.region,
        "RegionName": row.region,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": row.provider.service,
        "ServiceSubcategory": "Generative AI",
        "x_BusinessUnit": row.labels["business_unit"],
        "x_CostCenter": row.labels["cost_center"],
        "x_Application": row.labels["application"],
        "x_Model": row.labels["model"],
        "x_ModelTier": row.labels["model_tier"],
        "x_InputTokens": str(counts["input_tokens"]),
        "x_OutputTokens": str(counts["output_tokens"]),
        "x_CachedTokens": str(counts["cached_tokens"]),
        "x_Requests": str(counts["requests"]),
        "x_PriceListId": row.price_list_id,
        "x_PriceListVersion": str(counts["price_list_version"]) if priced else "",
        "x_Tenant": row.labels["tenant"],
    }
    return {column: values[column] for column in FOCUS_COLUMNS}


def _description(row: _Row) -> str:
    requests = row.counts["requests"]
    plural = "" if requests == 1 else "s"
    price = (
        f"list price {row.price_list_id} v{row.counts['price_list_version']}"
        if row.price_list_id
        else "no price list"
    )
    return (
        f"{row.labels['model']} inference on {row.provider.service} {row.region}: "
        f"{requests:,} request{plural}, {price}"
    )


def _midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _decimal(value: Decimal) -> str:
    return decimal_text(value) if value else "0"  # never "-0"


def _parse(row: Mapping[str, Any], where: str) -> _Row:
    if not isinstance(row, Mapping):
        raise TypeError(f"{where}: expected a mapping of column to value, got {type(row).__name__}")
    missing = [column for column in ROW_COLUMNS if column not in row]
    if missing:
        names = ", ".join(f"'{column}'" for column in missing)
        raise ValueError(f"{where}: missing column{'s' if len(missing) > 1 else ''} {names}")
    labels = {column: _label(row, column, where) for column in _LABELS}
    counts = {column: _count(row, column, where) for column in _COUNTS}
    price_list_id = row["price_list_id"]
    if not isinstance(price_list_id, str):
        raise _bad(where, "price_list_id", "must be text", price_list_id)
    if (price_list_id == "") != (counts["price_list_version"] == 0):
        raise _bad(
            where,
            "price_list_version",
            "must be 0 exactly when price_list_id is empty (an unpriced row)",
            counts["price_list_version"],
        )
    provider = row["provider"]
    if provider not in PROVIDERS:
        raise _bad(where, "provider", f"must be one of {', '.join(PROVIDERS)}", provider)
    currency = row["currency"]
    if not (isinstance(currency, str) and _CURRENCY.fullmatch(currency)):
        raise _bad(where, "currency", "must be an ISO 4217 code such as 'USD'", currency)
    return _Row(
        labels=labels,
        day=_day(row, where),
        provider=PROVIDERS[provider],
        region=_label(row, "region", where),
        price_list_id=price_list_id,
        currency=currency,
        counts=counts,
        cost=_cost(row, where),
    )


def _label(row: Mapping[str, Any], column: str, where: str) -> str:
    value = row[column]
    if not (isinstance(value, str) and value):
        raise _bad(where, column, "must be non-empty text", value)
    return value


def _count(row: Mapping[str, Any], column: str, where: str) -> int:
    value = row[column]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise _bad(where, column, "must be a non-negative integer", value)


def _cost(row: Mapping[str, Any], where: str) -> Decimal:
    value = row["cost"]
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite() and not value < 0:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Decimal(value)
    why = " (a float is never exact)" if isinstance(value, float) else ""
    raise _bad(where, "cost", f"must be non-negative decimal text such as '12.345678'{why}", value)


def _day(row: Mapping[str, Any], where: str) -> date:
    value = row["day"]
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if day < _LAST_MONTH:  # its billing period must end on a representable date
                return day
    raise _bad(where, "day", "must be a UTC date 'YYYY-MM-DD' before 9999-12", value)


def _bad(where: str, column: str, rule: str, value: object) -> ValueError:
    return ValueError(f"{where}: column '{column}' {rule}, got {value!r}")
