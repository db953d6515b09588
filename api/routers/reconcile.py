"""Tranche reconciliation over HTTP: ``GET /v1/reconcile`` (docs: ``pactledger reconcile``).

The same reports as ``pactledger reconcile --json`` (:func:`ledger.app.reconcile.reconcile`):
per tranche and period, usage against the estimator and benchmarks against the SLA, with the
proposed ``TrancheCreditAssessed`` of a tranche below its SLA. Proposals only: this route
appends nothing; recording a credit stays a CLI action (``pactledger reconcile --record``).

A caller sees only the tranches of its tenants; a tranche it may not see is a 404, exactly like
one that does not exist (no existence leak). A bad ``from``, ``to`` or ``band`` is a 422 in the
one error shape, ``field`` naming the parameter.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from ledger.access import Permission, Principal
from ledger.app import views as queries
from ledger.app.projection import Projectors
from ledger.app.reconcile import DEFAULT_BAND
from ledger.app.reconcile import reconcile as reconcile_tranches
from ledger.errors import ConfigurationError, NotFoundError
from ledger.log.entry import utc_now

from ..auth import principal
from ..services import Services, services

router = APIRouter(prefix="/v1/reconcile", tags=["reconcile"])
Reader = Annotated[Principal, Depends(principal(Permission.READ))]
Found = Annotated[Services, Depends(services)]


def _projectors(found: Services) -> Projectors:
    if found.projectors is None:
        raise ConfigurationError("this API process has no views configured")
    return found.projectors


def _visible_tranches(projectors: Projectors, who: Principal, end: datetime) -> set[str]:
    tenants = None if who.all_tenants else sorted(who.tenants)
    rows = queries.tranches(projectors.views, as_of=end, tenants=tenants)
    return {row["tranche_id"] for row in rows if who.sees(row["tenant"])}


@router.get("")
def reconcile(
    who: Reader,
    found: Found,
    tranche: Annotated[str | None, Query(max_length=200, description="Only this tranche")] = None,
    from_: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Period start (default: the whole history)"),
    ] = None,
    to: Annotated[AwareDatetime | None, Query(description="Period end (default: now)")] = None,
    band: Annotated[
        Decimal,
        Query(
            ge=0,
            le=1000,
            description="Allowed deviation of a benchmark from its estimate (fraction)",
        ),
    ] = DEFAULT_BAND,
) -> list[dict[str, Any]]:
    """One report per tranche of the caller's tenants, in `tranche_id` order: usage
    (utilisation, effective $/Mtok), benchmarks (SLA test, over-reporting beyond `band`), the
    verdict and, below the SLA, the proposed credit (`recorded_seq` once recorded). Nothing is
    appended: `pactledger reconcile --record` records a proposal."""
    projectors = _projectors(found)
    end = to or utc_now()
    visible = _visible_tranches(projectors, who, end)
    if tranche is not None and tranche not in visible:
        raise NotFoundError(f"no tranche '{tranche}'")
    reports = reconcile_tranches(
        projectors.views,
        found.ledger.store,
        start=from_,
        end=end,
        tranche_id=tranche,
        band=band,
    )
    return [report for report in reports if report["tranche_id"] in visible]
