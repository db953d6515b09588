"""Tests of ledger.projections.focus: the FOCUS 1.2 export of chargeback rows.

Proves, on the CSV as a FOCUS consumer reads it back:

* the header is FOCUS_COLUMNS: every FOCUS 1.2 Mandatory column, FOCUS columns before the
  custom ones, custom columns prefixed ``x_``;
* every column FOCUS requires non-null for a usage charge has a value, and ChargeClass is null;
* date/times are ``YYYY-MM-DDTHH:MM:SSZ``, the charge period is the row's day ``[d, d+1)`` and
  the billing period its calendar month (month ends, December → January, leap Februaries);
* decimals are plain (no exponent, sign or separators) and the four costs equal the row's cost,
  so totals are exact; currency is a three-letter code;
* each kind of bad row raises ValueError naming the row and the column;
* (Hypothesis) for random rows, parsing the CSV back gives exactly the costs and token counts
  that went in.
"""

from __future__ import annotations

import ast
import csv
import io
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.projections import focus
from ledger.projections.focus import FOCUS_COLUMNS, FOCUS_VERSION, focus_records, write_focus_csv

# FOCUS 1.2: the columns whose feature level is Mandatory (BillingAccountType is Conditional).
MANDATORY = frozenset(
    {
        "BilledCost",
        "BillingAccountId",
        "BillingAccountName",
        "BillingCurrency",
        "BillingPeriodEnd",
        "BillingPeriodStart",
        "ChargeCategory",
        "ChargeClass",
        "ChargeDescription",
        "ChargePeriodEnd",
        "ChargePeriodStart",
        "ContractedCost",
        "EffectiveCost",
        "InvoiceIssuerName",
        "ListCost",
        "PricingQuantity",
        "PricingUnit",
        "ProviderName",
        "PublisherName",
        "ServiceCategory",
        "ServiceName",
    }
)
# Null allowed only for ChargeClass (and, for a usage charge, ChargeDescription SHOULD NOT be).
NOT_NULL = (MANDATORY - {"ChargeClass"}) | {
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingCategory",
    "RegionId",
    "RegionName",
    "ServiceSubcategory",
}
DATE_TIMES = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
COSTS = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")
DECIMALS = (*COSTS, "ConsumedQuantity", "PricingQuantity")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def chargeback_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant": "acme",
        "day": "2026-11-01",
        "business_unit": "retail",
        "cost_center": "cc-4711",
        "application": "support-bot",
        "model": "claude-sonnet-4-5",
        "model_tier": "sonnet",
        "provider": "aws",
        "region": "us-east-1",
        "price_list_id": "public-2026",
        "price_list_version": 3,
        "currency": "USD",
        "requests": 1234,
        "input_tokens": 1_000_000,
        "output_tokens": 200_000,
        "cached_tokens": 34_567,
        "cost": "12.345678",
    }
    row.update(changes)
    return row


def export(rows: list[Mapping[str, Any]]) -> tuple[str, list[str], list[dict[str, str]]]:
    """The CSV text, and its header and records as csv reads them back."""
    out = io.StringIO(newline="")
    assert write_focus_csv(rows, out) == len(rows)
    text = out.getvalue()
    reader = csv.reader(io.StringIO(text, newline=""))
    header, *records = list(reader)
    return text, header, [dict(zip(header, record, strict=True)) for record in records]


def one(**changes: Any) -> dict[str, str]:
    _, _, [record] = export([chargeback_row(**changes)])
    return record


def exact_sum(values: list[Decimal]) -> Decimal:
    with localcontext() as context:
        context.prec = 400
        return sum(values, Decimal(0))


# --- columns -----------------------------------------------------------------------------------


def test_header_is_focus_columns_and_records_follow_it() -> None:
    text, header, records = export([chargeback_row(), chargeback_row(region="eu-central-1")])
    assert FOCUS_VERSION == "1.2"
    assert header == list(FOCUS_COLUMNS)
    assert len(set(FOCUS_COLUMNS)) == len(FOCUS_COLUMNS)
    assert [list(r) for r in focus_records([chargeback_row()])] == [list(FOCUS_COLUMNS)]
    assert len(records) == 2
    assert text.count("\r\n") == 3  # RFC 4180 line ends: header + two records


def test_every_mandatory_column_is_present() -> None:
    assert set(FOCUS_COLUMNS) >= MANDATORY


def test_custom_columns_are_prefixed_and_come_after_focus_columns() -> None:
    custom = [c for c in FOCUS_COLUMNS if c.startswith("x_")]
    spec = [c for c in FOCUS_COLUMNS if not c.startswith("x_")]
    assert list(FOCUS_COLUMNS) == spec + custom  # not intermixed
    assert spec == sorted(spec)
    assert all(PASCAL.match(c) and len(c) <= 50 for c in spec)
    assert all(PASCAL.match(c.removeprefix("x_")) for c in custom)
    assert {
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
    } == set(custom)


def test_columns_focus_requires_for_a_usage_charge_are_not_null() -> None:
    record = one()
    assert {column for column in NOT_NULL if record[column] == ""} == set()
    assert record["ChargeClass"] == ""  # null: not a correction


def test_fixed_values_are_focus_allowed_values() -> None:
    record = one()
    assert record["ChargeCategory"] == "Usage"
    assert record["ChargeFrequency"] == "Usage-Based"
    assert record["PricingCategory"] == "Standard"
    assert record["ServiceCategory"] == "AI and Machine Learning"
    assert record["ServiceSubcategory"] == "Generative AI"
    assert record["PublisherName"] == "Anthropic"
    assert record["PricingUnit"] == "1000000 Tokens"
    assert record["ConsumedUnit"] == "Tokens"


def test_dimensions_map_to_focus_and_custom_columns() -> None:
    record = one()
    assert record["BillingAccountId"] == record["BillingAccountName"] == "acme"
    assert record["RegionId"] == record["RegionName"] == "us-east-1"
    assert {k: v for k, v in record.items() if k.startswith("x_")} == {
        "x_BusinessUnit": "retail",
        "x_CostCenter": "cc-4711",
        "x_Application": "support-bot",
        "x_Model": "claude-sonnet-4-5",
        "x_ModelTier": "sonnet",
        "x_InputTokens": "1000000",
        "x_OutputTokens": "200000",
        "x_CachedTokens": "34567",
        "x_Requests": "1234",
        "x_PriceListId": "public-2026",
        "x_PriceListVersion": "3",
        "x_Tenant": "acme",
    }


@pytest.mark.parametrize(
    ("provider", "provider_name", "service_name"),
    [
        ("aws", "Amazon Web Services", "Amazon Bedrock"),
        ("azure", "Microsoft", "Microsoft Foundry"),
        ("gcp", "Google Cloud", "Vertex AI"),
        ("anthropic", "Anthropic", "Claude API"),
    ],
)
def test_provider_names_the_provider_invoice_issuer_and_service(
    provider: str, provider_name: str, service_name: str
) -> None:
    record = one(provider=provider)
    assert record["ProviderName"] == record["InvoiceIssuerName"] == provider_name
    assert record["ServiceName"] == service_name
    assert service_name in record["ChargeDescription"]


def test_charge_description_is_readable_and_survives_csv_quoting() -> None:
    text, _, [record] = export([chargeback_row()])
    assert record["ChargeDescription"] == (
        "claude-sonnet-4-5 inference on Amazon Bedrock us-east-1: 1,234 requests, "
        "list price public-2026 v3"
    )
    assert '"claude-sonnet-4-5 inference' in text  # the commas are quoted, not split on
    assert one(requests=1)["ChargeDescription"].endswith(": 1 request, list price public-2026 v3")


def test_unpriced_row_has_null_price_list_columns() -> None:
    record = one(price_list_id="", price_list_version=0, cost="0")
    assert record["x_PriceListId"] == record["x_PriceListVersion"] == ""
    assert all(record[c] == "0" for c in COSTS)
    assert record["ChargeDescription"].endswith(", no price list")


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "period_start", "period_end"),
    [
        ("2026-11-01", "2026-11-01", "2026-12-01"),
        ("2026-11-30", "2026-11-01", "2026-12-01"),
        ("2026-12-31", "2026-12-01", "2027-01-01"),  # December → January
        ("2027-01-01", "2027-01-01", "2027-02-01"),
        ("2027-02-28", "2027-02-01", "2027-03-01"),  # not a leap year
        ("2028-02-28", "2028-02-01", "2028-03-01"),  # leap year: 29 February follows
        ("2028-02-29", "2028-02-01", "2028-03-01"),
        ("2000-02-29", "2000-02-01", "2000-03-01"),  # divisible by 400: a leap year
    ],
)
def test_charge_period_is_the_day_and_billing_period_its_month(
    day: str, period_start: str, period_end: str
) -> None:
    record = one(day=day)
    assert all(DATE_TIME.match(record[c]) for c in DATE_TIMES)
    times = {c: datetime.strptime(record[c], "%Y-%m-%dT%H:%M:%SZ") for c in DATE_TIMES}
    assert record["ChargePeriodStart"] == f"{day}T00:00:00Z"
    assert times["ChargePeriodEnd"] - times["ChargePeriodStart"] == timedelta(days=1)
    assert record["BillingPeriodStart"] == f"{period_start}T00:00:00Z"
    assert record["BillingPeriodEnd"] == f"{period_end}T00:00:00Z"
    assert times["BillingPeriodStart"] <= times["ChargePeriodStart"]
    assert times["ChargePeriodEnd"] <= times["BillingPeriodEnd"]  # [start, end): end exclusive


def test_leap_day_charge_period_ends_on_the_first_of_march() -> None:
    assert one(day="2028-02-28")["ChargePeriodEnd"] == "2028-02-29T00:00:00Z"
    assert one(day="2028-02-29")["ChargePeriodEnd"] == "2028-03-01T00:00:00Z"
    assert one(day="2027-02-28")["ChargePeriodEnd"] == "2027-03-01T00:00:00Z"


# --- numbers and currency ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        ("12.345678", "12.345678"),
        ("1.50", "1.5"),
        ("100", "100"),
        ("0", "0"),
        ("0.000", "0"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("1E+2"), "100"),
        (Decimal("-0"), "0"),
        (7, "7"),
        ("123456789012345678901234567890.123456789012345678901", None),  # beyond 28 digits
    ],
)
def test_costs_are_plain_exact_decimals(cost: str | Decimal | int, text: str | None) -> None:
    record = one(cost=cost)
    expected = text if text is not None else str(cost)
    assert {record[c] for c in COSTS} == {expected}
    assert DECIMAL.match(expected)


def test_costs_sum_exactly_to_the_input_costs() -> None:
    costs = ["0.1", "0.2", "12.345678", "0.0000001", "999999999.999999", "3"]
    _, _, records = export(
        [chargeback_row(cost=c, day=f"2026-11-0{i + 1}") for i, c in enumerate(costs)]
    )
    for column in COSTS:
        assert all(DECIMAL.match(r[column]) for r in records)
        total = exact_sum([Decimal(r[column]) for r in records])
        assert total == exact_sum([Decimal(c) for c in costs]) == Decimal("1000000015.6456771")


@pytest.mark.parametrize(
    ("tokens", "pricing_quantity"),
    [
        ((1_000_000, 200_000, 34_567), "1.234567"),
        ((5, 0, 0), "0.000005"),
        ((0, 0, 0), "0"),
        ((3_000_000, 0, 0), "3"),
        ((10**30 + 1, 0, 0), "1000000000000000000000000.000001"),  # exact past 28 digits
    ],
)
def test_quantities_are_tokens_and_millions_of_tokens(
    tokens: tuple[int, int, int], pricing_quantity: str
) -> None:
    record = one(input_tokens=tokens[0], output_tokens=tokens[1], cached_tokens=tokens[2])
    assert record["ConsumedQuantity"] == str(sum(tokens))
    assert record["PricingQuantity"] == pricing_quantity
    assert all(DECIMAL.match(record[c]) for c in DECIMALS)


def test_counts_may_come_as_digit_text() -> None:
    record = one(requests="12", input_tokens="7", output_tokens="0", cached_tokens="0")
    assert (record["x_Requests"], record["ConsumedQuantity"]) == ("12", "7")


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY"])
def test_billing_currency_is_the_rows_iso_4217_code(currency: str) -> None:
    record = one(currency=currency)
    assert CURRENCY.match(record["BillingCurrency"])
    assert record["BillingCurrency"] == currency


# --- bad input ---------------------------------------------------------------------------------


def _without(column: str) -> dict[str, Any]:
    row = chargeback_row()
    del row[column]
    return row


@pytest.mark.parametrize(
    ("bad_row", "column"),
    [
        pytest.param(_without("cost"), "'cost'", id="missing-cost"),
        pytest.param(_without("day"), "'day'", id="missing-day"),
        pytest.param(chargeback_row(cost="abc"), "column 'cost'", id="cost-not-decimal"),
        pytest.param(chargeback_row(cost=0.1), "column 'cost'", id="cost-float"),
        pytest.param(chargeback_row(cost="1E-7"), "column 'cost'", id="cost-exponent-text"),
        pytest.param(chargeback_row(cost="1,000.00"), "column 'cost'", id="cost-separator"),
        pytest.param(chargeback_row(cost="-1.5"), "column 'cost'", id="cost-negative"),
        pytest.param(chargeback_row(cost=Decimal("-1.5")), "column 'cost'", id="cost-neg-dec"),
        pytest.param(chargeback_row(cost=-2), "column 'cost'", id="cost-neg-int"),
        pytest.param(chargeback_row(cost=Decimal("NaN")), "column 'cost'", id="cost-nan"),
        pytest.param(chargeback_row(cost=None), "column 'cost'", id="cost-null"),
        pytest.param(chargeback_row(input_tokens=-1), "column 'input_tokens'", id="tokens-neg"),
        pytest.param(chargeback_row(requests=True), "column 'requests'", id="requests-bool"),
        pytest.param(chargeback_row(cached_tokens=1.0), "column 'cached_tokens'", id="float"),
        pytest.param(chargeback_row(day="2026-13-01"), "column 'day'", id="day-month-13"),
        pytest.param(chargeback_row(day="2027-02-29"), "column 'day'", id="day-not-leap"),
        pytest.param(chargeback_row(day="20261101"), "column 'day'", id="day-basic-format"),
        pytest.param(chargeback_row(day="9999-12-31"), "column 'day'", id="day-last-month"),
        pytest.param(chargeback_row(currency="usd"), "column 'currency'", id="currency-case"),
        pytest.param(chargeback_row(currency="US"), "column 'currency'", id="currency-short"),
        pytest.param(chargeback_row(provider="oracle"), "column 'provider'", id="provider"),
        pytest.param(chargeback_row(tenant=""), "column 'tenant'", id="tenant-empty"),
        pytest.param(chargeback_row(region=None), "column 'region'", id="region-null"),
        pytest.param(chargeback_row(price_list_id=7), "column 'price_list_id'", id="list-id"),
        pytest.param(
            chargeback_row(price_list_version=0), "column 'price_list_version'", id="list-v0"
        ),
        pytest.param(
            chargeback_row(price_list_id="", price_list_version=2),
            "column 'price_list_version'",
            id="unpriced-with-version",
        ),
    ],
)
def test_bad_row_raises_naming_the_row_and_column(bad_row: dict[str, Any], column: str) -> None:
    with pytest.raises(ValueError, match=rf"^chargeback row 2: .*{re.escape(column)}"):
        list(focus_records([chargeback_row(), bad_row]))
    with pytest.raises(ValueError, match=re.escape(column)):
        write_focus_csv([bad_row], io.StringIO(newline=""))


def test_a_float_cost_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"column 'cost' .*\(a float is never exact\), got 0\.1$"):
        list(focus_records([chargeback_row(cost=0.1)]))


def test_missing_columns_are_all_named() -> None:
    with pytest.raises(ValueError, match=r"^chargeback row 1: missing columns 'day', 'cost'$"):
        list(
            focus_records([{k: v for k, v in chargeback_row().items() if k not in ("day", "cost")}])
        )


def test_a_row_that_is_not_a_mapping_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="chargeback row 1: expected a mapping"):
        list(focus_records([("acme", "2026-11-01")]))  # type: ignore[list-item]


def test_extra_columns_are_ignored_and_no_rows_give_a_header_only() -> None:
    assert one(row_key="acme\x1f2026-11-01")["BillingAccountId"] == "acme"
    out = io.StringIO(newline="")
    assert write_focus_csv([], out) == 0
    assert out.getvalue() == ",".join(FOCUS_COLUMNS) + "\r\n"


def test_module_is_pure() -> None:
    """No storage, framework or network import: only the standard library and the view."""
    tree = ast.parse(Path(focus.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    standard = {"__future__", "collections.abc", "csv", "dataclasses", "datetime", "decimal"}
    assert imported <= standard | {"re", "typing", ".chargeback"}


# --- property ----------------------------------------------------------------------------------

identifiers = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,20}\Z")
counts = st.integers(min_value=0, max_value=10**15)
costs = st.one_of(
    st.decimals(min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=1, places=12),
    st.integers(min_value=0, max_value=60).map(lambda n: Decimal(1).scaleb(-n)),  # 1E-n
).map(Decimal.copy_abs)  # never -0, which has no non-negative decimal text
rows = st.fixed_dictionaries(
    {
        "tenant": identifiers,
        "day": st.dates(min_value=date(1970, 1, 1), max_value=date(9999, 11, 30)).map(str),
        "business_unit": identifiers,
        "cost_center": identifiers,
        "application": identifiers,
        "model": st.sampled_from(["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"]),
        "model_tier": st.sampled_from(["opus", "sonnet", "haiku"]),
        "provider": st.sampled_from(["aws", "azure", "gcp", "anthropic"]),
        "region": st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,20}\Z"),
        "price_list_id": identifiers,
        "price_list_version": st.integers(min_value=1, max_value=10**6),
        "currency": st.from_regex(r"\A[A-Z]{3}\Z"),
        "requests": st.integers(min_value=1, max_value=10**9),
        "input_tokens": counts,
        "output_tokens": counts,
        "cached_tokens": counts,
        "cost": st.one_of(costs, costs.map(lambda d: format(d, "f"))),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(rows, max_size=12))
def test_csv_round_trip_keeps_costs_and_quantities_exact(batch: list[dict[str, Any]]) -> None:
    _, header, records = export(batch)
    assert header == list(FOCUS_COLUMNS)
    assert len(records) == len(batch)
    for row, record in zip(batch, records, strict=True):
        cost = Decimal(row["cost"])
        tokens = row["input_tokens"] + row["output_tokens"] + row["cached_tokens"]
        for column in COSTS:
            assert DECIMAL.match(record[column]), record[column]
            assert Decimal(record[column]) == cost
        assert int(record["ConsumedQuantity"]) == tokens
        assert Decimal(record["PricingQuantity"]).scaleb(6) == tokens
        assert all(DATE_TIME.match(record[c]) for c in DATE_TIMES)
        start = datetime.strptime(record["ChargePeriodStart"], "%Y-%m-%dT%H:%M:%SZ")
        assert start.date().isoformat() == row["day"]
        assert CURRENCY.match(record["BillingCurrency"])
        assert {c for c in NOT_NULL if not record[c]} == set()
    for column in COSTS:
        assert exact_sum([Decimal(r[column]) for r in records]) == exact_sum(
            [Decimal(r["cost"]) for r in batch]
        )
