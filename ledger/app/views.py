"""Queries over the projector views: residency audit, chargeback, tranches (docs/projectors.md).

Guarantees: sums of money are exact (``Decimal``); a caller limited to some tenants sees only
their rows; filters are validated and a bad one raises a ValidationError naming it; results
are plain JSON-able dicts in a stable order.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from ledger.app.audit_queries import utc_instant
from ledger.errors import ValidationError
from ledger.log.entry import format_time
from ledger.projections.chargeback import DIMENSIONS, MEASURES, add_money, decimal_text
from ledger.projections.compliance import STATUSES, VIOLATIONS
from ledger.projections.focus import write_focus_csv

CHARGEBACK_GROUPS = (
    "business_unit",
    "tenant",
    "model",
    "provider",
    "region",
    "cost_center",
    "application",
    "day",
)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class ViewRows(Protocol):
    def rows(
        self,
        table_name: str,
        *,
        equal: Mapping[str, Any] | None = None,
        within: Mapping[str, Sequence[Any]] | None = None,
        at_least: Mapping[str, Any] | None = None,
        below: Mapping[str, Any] | None = None,
        order_by: Sequence[str] = (),
    ) -> list[dict[str, Any]]: ...


# --- residency ------------------------------------------------------------------------------


def residency(
    views: ViewRows,
    *,
    tenants: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    violations_only: bool = False,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Requests with their compliance status, oldest first. The time range applies to when the
    request was served (or decided, if never served): ``since`` inclusive, ``until`` exclusive.
    """
    if status is not None and status not in STATUSES:
        raise ValidationError(
            f"unknown status '{status}'; statuses: {', '.join(STATUSES)}", field="status"
        )
    within: dict[str, Sequence[Any]] = {}
    if tenants is not None:
        within["tenant"] = sorted(tenants)
    statuses: list[str] | None = list(VIOLATIONS) if violations_only else None
    if status is not None:
        statuses = [status] if statuses is None or status in statuses else []
    if statuses is not None:
        within["status"] = statuses
    low, high = _text_time(since, "from"), _text_time(until, "to")
    if low is not None and high is not None and low >= high:
        raise ValidationError("must be after 'from'", field="to")
    rows = views.rows("view_residency", within=within, order_by=("request_id",))
    chosen = []
    for row in rows:
        moment = row["served_at"] or row["decided_at"] or ""
        if (low is None or moment >= low) and (high is None or moment < high):
            chosen.append(row)
    chosen.sort(key=lambda row: (row["served_at"] or row["decided_at"] or "", row["request_id"]))
    return chosen


def residency_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row["status"]] += 1
    return counts


# --- chargeback -----------------------------------------------------------------------------


def chargeback_rows(
    views: ViewRows, *, month: str | None = None, tenants: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The chargeback view's rows (one per day and dimension set), in key order."""
    at_least, below = {}, {}
    if month is not None:
        first, after = month_bounds(month)
        at_least["day"], below["day"] = first, after
    within = {"tenant": sorted(tenants)} if tenants is not None else None
    return views.rows(
        "view_chargeback", within=within, at_least=at_least, below=below, order_by=DIMENSIONS
    )


def check_group(by: str) -> str:
    if by not in CHARGEBACK_GROUPS:
        raise ValidationError(
            f"cannot group by '{by}'; choose one of: {', '.join(CHARGEBACK_GROUPS)}", field="by"
        )
    return by


def chargeback(
    views: ViewRows,
    *,
    by: str = "business_unit",
    month: str | None = None,
    tenants: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Totals grouped by one dimension (and currency), largest cost first."""
    check_group(by)
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in chargeback_rows(views, month=month, tenants=tenants):
        key = (str(row[by]), row["currency"])
        total = totals.setdefault(
            key,
            {
                by: key[0],
                "currency": key[1],
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cached_tokens": 0,
                "cost": "0",
                "price_list_versions": set(),
            },
        )
        for measure in ("requests", "input_tokens", "output_tokens", "cached_tokens"):
            total[measure] += row[measure]
        total["cost"] = add_money(total["cost"], row["cost"])
        if row["price_list_id"]:
            total["price_list_versions"].add(f"{row['price_list_id']}@{row['price_list_version']}")
    result = []
    for total in totals.values():
        total["price_list_versions"] = sorted(total["price_list_versions"])
        result.append(total)
    result.sort(key=lambda t: (-Decimal(t["cost"]), t[by]))
    return result


def month_bounds(month: str) -> tuple[str, str]:
    """``2026-11`` → (``2026-11-01``, ``2026-12-01``)."""
    match = _MONTH.match(month)
    if match is None:
        raise ValidationError(f"a month is YYYY-MM, e.g. 2026-11; got '{month}'", field="month")
    year, number = int(match.group(1)), int(match.group(2))
    after = (year + 1, 1) if number == 12 else (year, number + 1)
    return f"{year:04d}-{number:02d}-01", f"{after[0]:04d}-{after[1]:02d}-01"


# --- tranches -------------------------------------------------------------------------------


def tranches(
    views: ViewRows,
    *,
    as_of: datetime,
    tenants: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Every tranche with its consumption against commitment as of ``as_of`` and the
    throughput its racks delivered (mean observed output tokens/s per GPU over the hours with
    usage)."""
    as_of = utc_instant(as_of, "as_of") or as_of
    within = {"tenant": sorted(tenants)} if tenants is not None else None
    rows = views.rows("view_tranches", within=within, order_by=("tranche_id",))
    usage = _usage_by_tranche(views, [row["tranche_id"] for row in rows])
    report = []
    for row in rows:
        tranche = {**row}
        for column in ("milestones", "deliveries", "retirements"):
            tranche[column] = json.loads(row[column]) if row[column] else []
        gpu_hours = _gpu_hours(tranche["deliveries"], tranche["retirements"], as_of)
        accrued = None
        consumption = None
        if row["price_per_gpu_hour"] is not None:
            accrued = gpu_hours * Decimal(row["price_per_gpu_hour"])
            committed = Decimal(row["committed_usd"] or "0")
            if committed:
                consumption = (accrued / committed).quantize(Decimal("0.0001"))
        hours = usage.get(row["tranche_id"], [])
        rates = [
            Decimal(h["output_tokens"]) / Decimal(3600) / Decimal(h["gpus_in_service"])
            for h in hours
            if h["gpus_in_service"]
        ]
        tranche.update(
            as_of=as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            gpu_hours=decimal_text(gpu_hours.quantize(Decimal("0.01"))),
            accrued_usd=None
            if accrued is None
            else decimal_text(accrued.quantize(Decimal("0.01"))),
            consumption=None if consumption is None else decimal_text(consumption),
            usage_hours=len(hours),
            observed_tokens_per_s_per_gpu=(
                decimal_text((sum(rates, Decimal(0)) / len(rates)).quantize(Decimal("0.001")))
                if rates
                else None
            ),
        )
        report.append(tranche)
    return report


def rack_usage(
    views: ViewRows, *, tranche_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Hourly usage per tranche with observed output tokens/s per GPU (null with no GPU)."""
    within = {"tranche_id": sorted(tranche_ids)} if tranche_ids is not None else None
    rows = views.rows("view_rack_usage", within=within, order_by=("tranche_id", "hour"))
    for row in rows:
        gpus = row["gpus_in_service"]
        row["tokens_per_s_per_gpu"] = (
            decimal_text(
                (Decimal(row["output_tokens"]) / Decimal(3600) / Decimal(gpus)).quantize(
                    Decimal("0.001")
                )
            )
            if gpus
            else None
        )
    return rows


def _usage_by_tranche(views: ViewRows, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    if not ids:
        return {}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in views.rows("view_rack_usage", within={"tranche_id": list(ids)}):
        grouped.setdefault(row["tranche_id"], []).append(row)
    return grouped


def _gpu_hours(
    deliveries: Sequence[Mapping[str, Any]],
    retirements: Sequence[Mapping[str, Any]],
    as_of: datetime,
) -> Decimal:
    """GPU-hours in service up to ``as_of``: each delivery's GPUs from its time on, less each
    retirement's GPUs from its time on."""
    total = Decimal(0)
    for items, sign in ((deliveries, 1), (retirements, -1)):
        for item in items:
            start = datetime.fromisoformat(item["at"].replace("Z", "+00:00"))
            if start < as_of:
                hours = Decimal((as_of - start).total_seconds()) / Decimal(3600)
                total += sign * item["gpus"] * hours
    return max(total, Decimal(0))


def _text_time(moment: datetime | None, field: str) -> str | None:
    utc = utc_instant(moment, field)
    return None if utc is None else format_time(utc)


def chargeback_csv(
    rows: Sequence[Mapping[str, Any]], *, focus: bool, month: str | None
) -> tuple[str, str]:
    """The chargeback view's daily ``rows`` as CSV: FinOps FOCUS 1.2 columns (``focus``) or the
    view's own; returns (text, file name)."""
    buffer = io.StringIO(newline="")
    if focus:
        write_focus_csv(rows, buffer)
    else:
        writer = csv.DictWriter(buffer, fieldnames=[*DIMENSIONS, *MEASURES], lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue(), f"chargeback-{month or 'all'}{'-focus' if focus else ''}.csv"
