"""The projector views over HTTP: residency compliance, chargeback (JSON, CSV, FinOps FOCUS
1.2), capacity tranches, and the projectors' status. Every route reads views only (never the
log), shows only the caller's tenants, and says how far behind the log the views are."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AwareDatetime

from ledger.access import Permission, Principal
from ledger.app import views as queries
from ledger.app.projection import Projectors
from ledger.errors import ConfigurationError
from ledger.log.entry import utc_now

from ..auth import principal
from ..services import Services, services

router = APIRouter(prefix="/v1/views", tags=["views"])
Reader = Annotated[Principal, Depends(principal(Permission.READ))]
Found = Annotated[Services, Depends(services)]
TenantFilter = Annotated[
    list[str] | None, Query(description="Only these tenants (repeat); default: all you may see")
]


def _projectors(found: Services) -> Projectors:
    if found.projectors is None:
        raise ConfigurationError("this API process has no views configured")
    return found.projectors


def _tenants(who: Principal, wanted: list[str] | None) -> list[str] | None:
    if wanted is None:
        return None if who.all_tenants else sorted(who.tenants)
    return who.visible(wanted)


def _lag(projectors: Projectors, names: tuple[str, ...]) -> dict[str, int]:
    return {s.name: s.lag_entries for s in projectors.status() if s.name in names}


@router.get("/status")
def projector_status(who: Reader, found: Found) -> list[dict[str, Any]]:
    """Each projector's position, lag (entries, seconds) and the error that stopped it."""
    return [s.to_json() for s in _projectors(found).status()]


@router.get("/residency")
def residency(
    who: Reader,
    found: Found,
    tenant: TenantFilter = None,
    from_: Annotated[
        AwareDatetime | None, Query(alias="from", description="Served (or decided) at or after")
    ] = None,
    to: Annotated[AwareDatetime | None, Query(description="Served (or decided) before")] = None,
    violations_only: bool = False,
    status: Annotated[
        str | None, Query(description=f"One of: {', '.join(queries.STATUSES)}")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="Most requests listed (the summary counts all)")
    ] = 1000,
) -> dict[str, Any]:
    """Residency compliance per request (`compliance` view), oldest first, with a count per
    status over everything in scope; `truncated` says the list stopped at `limit`."""
    projectors = _projectors(found)
    rows = queries.residency(
        projectors.views,
        tenants=_tenants(who, tenant),
        since=from_,
        until=to,
        violations_only=violations_only,
        status=status,
    )
    return {
        "summary": queries.residency_summary(rows),
        "requests": rows[:limit],
        "truncated": len(rows) > limit,
        "lag_entries": _lag(projectors, ("compliance",))["compliance"],
    }


@router.get(
    "/chargeback",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def chargeback(
    who: Reader,
    found: Found,
    by: Annotated[
        str, Query(description=f"Group by one of: {', '.join(queries.CHARGEBACK_GROUPS)}")
    ] = "business_unit",
    month: Annotated[str | None, Query(description="YYYY-MM (UTC days)")] = None,
    tenant: TenantFilter = None,
    format: Annotated[
        Literal["json", "csv", "focus"],
        Query(description="json: totals by `by`; csv: the daily rows; focus: FOCUS 1.2 CSV"),
    ] = "json",
) -> Any:
    """Exact cost and tokens per group (`chargeback` view), largest first; or the daily rows as
    CSV, or as FinOps FOCUS 1.2."""
    queries.check_group(by)  # whatever the format: a bad value is an error, not ignored
    projectors = _projectors(found)
    tenants = _tenants(who, tenant)
    if format == "json":
        return {
            "by": by,
            "month": month,
            "totals": queries.chargeback(projectors.views, by=by, month=month, tenants=tenants),
            "lag_entries": _lag(projectors, ("chargeback",))["chargeback"],
        }
    rows = queries.chargeback_rows(projectors.views, month=month, tenants=tenants)
    text, name = queries.chargeback_csv(rows, focus=format == "focus", month=month)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/tranches")
def tranches(
    who: Reader,
    found: Found,
    as_of: Annotated[
        AwareDatetime | None, Query(description="Consumption up to this time (default: now)")
    ] = None,
    tenant: TenantFilter = None,
) -> dict[str, Any]:
    """Capacity tranches (`capacity` view) with consumption against commitment and observed
    throughput per GPU."""
    projectors = _projectors(found)
    return {
        "tranches": queries.tranches(
            projectors.views, as_of=as_of or utc_now(), tenants=_tenants(who, tenant)
        ),
        "lag_entries": _lag(projectors, ("capacity",))["capacity"],
    }
