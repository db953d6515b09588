"""POST /v1/decisions/residency: decide with the published policies and record it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ledger.access import Permission, Principal
from ledger.app.governance import decide, model_tier_for
from ledger.policy import Facts

from ..auth import principal, require_tenant_write
from ..schemas.queries import DecisionIn
from ..services import Services, services

router = APIRouter(prefix="/v1", tags=["decisions"])


@router.post("/decisions/residency")
def decide_residency(
    request: DecisionIn,
    who: Annotated[Principal, Depends(principal(Permission.WRITE))],
    found: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    """Decide where a request may run — allow, reroute (and where) or deny — with the newest
    published version of every policy, and record it as `ResidencyDecided` on the request's
    stream. A denial is a normal 200 answer with `outcome: deny`. Retrying with the same
    `decision_id` appends nothing."""
    require_tenant_write(who, request.tenant)
    policy_set = found.published_policies()
    tier = model_tier_for(
        policy_set,
        model=request.model,
        capability=request.capability,
        tenant=request.tenant,
        data_classes=request.data_classes,
    )
    facts = Facts(
        request.tenant,
        tuple(request.data_classes),
        request.provider,
        request.region,
        tier,
        request.transfer_basis,
    )
    recorded = decide(
        found.ledger,
        policy_set,
        facts,
        request_id=request.request_id,
        decision_id=request.decision_id,
        record=True,
    )
    result = recorded.to_json()
    result["model_tier"] = tier
    return result
