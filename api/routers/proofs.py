"""Provenance of a request, checkpoints, proofs and the mirror feed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response

from ledger.access import Permission, Principal
from ledger.app.personal_data import reveal
from ledger.app.provenance import entry_json, request_provenance
from ledger.errors import NotFoundError, ValidationError
from ledger.provenance_prov import prov_json

from ..auth import principal
from ..schemas.queries import (
    ConsistencyProofOut,
    EntriesPage,
    InclusionProofOut,
    ProvenanceOut,
)
from ..services import Services, services

router = APIRouter(prefix="/v1", tags=["proofs"])
Reader = Annotated[Principal, Depends(principal(Permission.READ))]
Found = Annotated[Services, Depends(services)]


@router.get(
    "/provenance/{request_id}",
    response_model=ProvenanceOut,
    responses={
        200: {
            "description": "`format=json`: the entries with their proofs (below); "
            "`format=prov`: the same request as a W3C PROV-JSON document (docs/provenance.md)",
        }
    },
)
def provenance(
    request_id: str,
    who: Reader,
    found: Found,
    format: Annotated[
        Literal["json", "prov"],
        Query(description="`json` (default): entries and proofs; `prov`: W3C PROV-JSON"),
    ] = "json",
) -> Response:
    """Every entry about a request (its stream `request:<id>`: decision, routing …), each with
    an inclusion proof against the newest signed checkpoint, which is included; or, with
    `format=prov`, the request as a W3C PROV-JSON document. A request of another tenant is a
    404, like one that does not exist."""
    ledger = found.ledger
    gathered = request_provenance(
        ledger.store,
        ledger.catalogue,
        request_id=request_id,
        sees=who.sees,
        sources=format == "prov",
        reveal=lambda entries: reveal(ledger, entries),
    )
    if format == "prov":
        return Response(prov_json(gathered, ledger.catalogue), media_type="application/json")
    return _json(gathered.to_json())


@router.get(
    "/checkpoints/latest",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "A C2SP signed note"}},
)
def latest_checkpoint(who: Reader, found: Found) -> PlainTextResponse:
    """The newest signed checkpoint, byte for byte (C2SP tlog-checkpoint in a signed note)."""
    record = found.ledger.latest_checkpoint()
    if record is None:
        raise NotFoundError("no checkpoint is signed yet: run `pactledger checkpoint`")
    return PlainTextResponse(record.note, media_type="text/plain; charset=utf-8")


@router.get("/proofs/inclusion", response_model=InclusionProofOut)
def inclusion_proof(
    who: Reader,
    found: Found,
    seq: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int | None, Query(ge=1, description="Default: the log size")] = None,
) -> dict[str, object]:
    """RFC 9162 inclusion proof of entry `seq` in the tree of `tree_size` entries."""
    with _renamed("size", "tree_size"):
        return found.ledger.prove_inclusion(seq, size=tree_size).to_json()


@router.get("/proofs/consistency", response_model=ConsistencyProofOut)
def consistency_proof(
    who: Reader,
    found: Found,
    first: Annotated[int, Query(ge=0)],
    second: Annotated[int | None, Query(ge=0, description="Default: the log size")] = None,
) -> dict[str, object]:
    """RFC 9162 consistency proof between two tree sizes."""
    with _renamed("size", "second"):
        return found.ledger.prove_consistency(first, second).to_json()


@router.get("/entries", response_model=EntriesPage)
def entries_page(
    who: Annotated[Principal, Depends(principal(Permission.MIRROR))],
    found: Found,
    after: Annotated[int, Query(ge=-1, description="Entries with seq > after")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The log in seq order, for mirrors and monitors (needs an all-tenants key)."""
    size = found.ledger.head().size
    page = []
    for entry in found.ledger.store.iter_entries(start=after + 1, batch_size=limit):
        page.append(entry_json(entry))
        if len(page) == limit:
            break
    last = page[-1]["seq"] if page else after
    next_after = last if last + 1 < size else None
    return _json({"entries": page, "next_after": next_after, "tree_size": size})


def _json(body: dict[str, Any]) -> Response:
    """Serialised with orjson, skipping a second validation of what we built ourselves (the
    response models still document the shape in OpenAPI)."""
    return Response(orjson.dumps(body), media_type="application/json")


@contextmanager
def _renamed(field: str, parameter: str) -> Iterator[None]:
    """Report the ledger's name for a value as the query parameter the client sent."""
    try:
        yield
    except ValidationError as exc:
        if exc.field != field:
            raise
        raise ValidationError(exc.reason, field=parameter) from None
