"""Audit queries: recorded residency decisions and routed inferences, paged with stable
cursors (``next_cursor`` → ``?cursor=``), only the caller's tenants."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from ledger.access import Permission, Principal
from ledger.app import audit_queries

from ..auth import principal
from ..services import Services, services

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Reader = Annotated[Principal, Depends(principal(Permission.READ))]
Found = Annotated[Services, Depends(services)]
TenantFilter = Annotated[
    list[str] | None, Query(description="Only these tenants (repeat); default: all you may see")
]
From = Annotated[AwareDatetime | None, Query(alias="from", description="occurred_at ≥ this")]
To = Annotated[AwareDatetime | None, Query(description="occurred_at < this")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=audit_queries.MAX_PAGE)]


def _tenants(who: Principal, wanted: list[str] | None) -> list[str] | None:
    if wanted is None:
        return None if who.all_tenants else sorted(who.tenants)
    return who.visible(wanted)  # another tenant's name reads as an empty tenant


@router.get("/decisions")
def audit_decisions(
    who: Reader,
    found: Found,
    tenant: TenantFilter = None,
    from_: From = None,
    to: To = None,
    outcome: Literal["allow", "deny", "reroute"] | None = None,
    policy: Annotated[
        str | None, Query(description="policy id, id@version, or a text digest")
    ] = None,
    region: Annotated[str | None, Query(description="candidate or chosen region")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Recorded `ResidencyDecided` entries, oldest first."""
    page = audit_queries.decisions(
        found.ledger.store, found.ledger.catalogue, tenants=_tenants(who, tenant),
        cursor=cursor, limit=limit, occurred_from=from_, occurred_to=to, outcome=outcome,
        policy=policy, region=region,
    )  # fmt: skip
    return page.to_json()


@router.get("/inferences")
def audit_inferences(
    who: Reader,
    found: Found,
    tenant: TenantFilter = None,
    business_unit: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    region: str | None = None,
    from_: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Recorded `InferenceRouted` entries (with their cost and price list), oldest first."""
    page = audit_queries.inferences(
        found.ledger.store, found.ledger.catalogue, tenants=_tenants(who, tenant),
        cursor=cursor, limit=limit, occurred_from=from_, occurred_to=to,
        business_unit=business_unit, model=model, provider=provider, region=region,
    )  # fmt: skip
    return page.to_json()
