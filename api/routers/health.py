"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ledger.errors import LedgerError
from ledger.store.engine import schema_is_current

from ..services import Services, services

router = APIRouter(tags=["operations"])
Found = Annotated[Services, Depends(services)]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the reason is given"}})
def readyz(found: Found) -> JSONResponse:
    """The database answers, its schema is at the newest migration, the ledger exists."""
    problems: list[str] = []
    size: Any = None
    try:
        if found.engine is not None and not schema_is_current(found.engine):
            problems.append("the database schema is not at head: run `pactledger init`")
        size = found.ledger.head().size
    except LedgerError as exc:
        problems.append(str(exc))
    except Exception:
        problems.append("the database cannot be reached")
    if problems:
        return JSONResponse(
            {"status": "not ready", "problems": problems},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", "tree_size": size})


@router.get("/metrics", response_class=Response)
def metrics(found: Found) -> Response:
    """Prometheus exposition format."""
    return Response(found.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
