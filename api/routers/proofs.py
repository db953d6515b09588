"""Provenance of a request, checkpoints, proofs and the mirror feed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response

from ledger.access import Permission, Principal
from ledger.errors import IntegrityError, NotFoundError, ValidationError
from ledger.integrity.merkle import prove_inclusion
from ledger.log.entry import SealedEntry
from ledger.log.ports import CheckpointRecord

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


@router.get("/provenance/{request_id}", response_model=ProvenanceOut)
def provenance(request_id: str, who: Reader, found: Found) -> Response:
    """Every entry about a request (its stream `request:<id>`: decision, routing …), each with
    an inclusion proof against the newest signed checkpoint, which is included. A request of
    another tenant is a 404, like one that does not exist."""
    store = found.ledger.store
    with store.reading():  # one transaction for the entries, the checkpoint and the proofs
        entries = [e for e in store.stream_entries(f"request:{request_id}") if who.sees(e.tenant)]
        if not entries:
            raise NotFoundError(f"no request '{request_id}'")
        checkpoint = store.latest_checkpoint()
        proofs = [_proof(found, e.seq, checkpoint) for e in entries]
    return _json(
        {
            "request_id": request_id,
            "checkpoint": _checkpoint(checkpoint) if checkpoint else None,
            "entries": [
                {**_entry(e), "inclusion_proof": proof}
                for e, proof in zip(entries, proofs, strict=True)
            ],
        }
    )


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
        page.append(_entry(entry))
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


def _entry(entry: SealedEntry) -> dict[str, Any]:
    canonical = entry.entry_bytes.decode()
    data = orjson.loads(entry.entry_bytes)
    return {
        "seq": entry.seq,
        "type": entry.type,
        "schema_version": entry.schema_version,
        "stream": entry.stream,
        "tenant": entry.tenant,
        "occurred_at": data["occurred_at"],
        "recorded_at": data["recorded_at"],
        "payload": data["payload"],
        "canonical": canonical,
        "leaf_hash": entry.leaf_hash.hex(),
        "chain_hash": entry.chain_hash.hex(),
    }


def _checkpoint(record: CheckpointRecord) -> dict[str, Any]:
    return {"tree_size": record.tree_size, "root_hash": record.root_hash.hex(), "note": record.note}


def _proof(found: Services, seq: int, checkpoint: CheckpointRecord | None) -> Any:
    if checkpoint is None or seq >= checkpoint.tree_size:
        return None
    # The checkpoint's size is within the log: no need to read the head again per entry.
    proof = prove_inclusion(found.ledger.store, index=seq, size=checkpoint.tree_size)
    if proof.root_hash != checkpoint.root_hash:
        raise IntegrityError(
            f"stored nodes do not reproduce checkpoint {checkpoint.tree_size}: run verify"
        )
    return proof.to_json()
