"""The provenance of one request: every entry on its stream ``request:<id>`` that the caller may
see, each with an inclusion proof against the newest signed checkpoint (DESIGN §2.4, §7).

One use case for the API (``GET /v1/provenance/{id}``) and the CLI (``pactledger provenance``).

Guarantees: the entries, the checkpoint, the proofs (and, when asked for, the published policy
and price list entries the request cites) are read in one ``store.reading()`` transaction, so
the answer is one consistent view of the log; an entry newer than the checkpoint has no proof
yet (``None``); a proof whose root is not the checkpoint's raises ``IntegrityError``; a request
with no entry the caller may see is a ``NotFoundError`` whose message is the same whether the
request exists for another tenant or not at all, so ids of other tenants cannot be probed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.app.published import POLICY_STREAM, PRICE_LIST_STREAM, read_event
from ledger.errors import IntegrityError, NotFoundError
from ledger.events import (
    Catalogue,
    InferenceRouted,
    PolicyPublished,
    PriceListPublished,
    ResidencyDecided,
)
from ledger.integrity.merkle import InclusionProof, prove_inclusion
from ledger.log.entry import SealedEntry
from ledger.log.ports import CheckpointRecord, LogStore

REQUEST_STREAM = "request:"


@dataclass(frozen=True)
class ProvenEntry:
    """One entry of the request's stream and its inclusion proof (``None``: newer than the
    checkpoint, or no checkpoint is signed yet)."""

    entry: SealedEntry
    proof: InclusionProof | None
    # Personal fields in clear (or "[erased]") beside the stored ciphertext; empty if none.
    personal: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        proof = self.proof.to_json() if self.proof is not None else None
        shown = {"personal": self.personal} if self.personal else {}
        return {**entry_json(self.entry), **shown, "inclusion_proof": proof}


@dataclass(frozen=True)
class RequestProvenance:
    request_id: str
    checkpoint: CheckpointRecord | None
    entries: list[ProvenEntry]
    # The PolicyPublished / PriceListPublished entries the request's entries cite, by
    # ("policy", id, version) or ("price-list", id, version); read only with ``sources=True``.
    sources: dict[tuple[str, str, int], SealedEntry] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The API's JSON answer (``GET /v1/provenance/{id}``, ``pactledger provenance
        --json``)."""
        return {
            "request_id": self.request_id,
            "checkpoint": checkpoint_json(self.checkpoint) if self.checkpoint else None,
            "entries": [e.to_json() for e in self.entries],
        }


def request_provenance(
    store: LogStore,
    catalogue: Catalogue,
    *,
    request_id: str,
    sees: Callable[[str], bool],
    sources: bool = False,
    reveal: Callable[[list[SealedEntry]], list[dict[str, str]]] | None = None,
) -> RequestProvenance:
    """Gather the provenance of ``request_id`` as seen by a caller who ``sees`` some tenants.

    ``sources``: also read the policy versions and price lists the entries cite (for the PROV
    document), by their streams' index, never by a scan of the log.
    ``reveal``: shows each entry's personal fields in clear, or ``[erased]``
    (:func:`ledger.app.personal_data.reveal`); without it none are shown.
    """
    with store.reading():  # one transaction for the entries, the checkpoint and the proofs
        entries = [
            e for e in store.stream_entries(f"{REQUEST_STREAM}{request_id}") if sees(e.tenant)
        ]
        if not entries:
            raise NotFoundError(f"no request '{request_id}'")
        checkpoint = store.latest_checkpoint()
        shown = reveal(entries) if reveal is not None else [{} for _ in entries]
        proven = [
            ProvenEntry(e, _proof(store, e.seq, checkpoint), personal)
            for e, personal in zip(entries, shown, strict=True)
        ]
        cited = _cited_sources(store, catalogue, entries) if sources else {}
    return RequestProvenance(request_id, checkpoint, proven, cited)


def entry_json(entry: SealedEntry) -> dict[str, Any]:
    """An entry as the API shows it: its fields, the exact hashed bytes and its hashes."""
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
        "canonical": entry.entry_bytes.decode(),
        "leaf_hash": entry.leaf_hash.hex(),
        "chain_hash": entry.chain_hash.hex(),
    }


def checkpoint_json(record: CheckpointRecord) -> dict[str, Any]:
    return {"tree_size": record.tree_size, "root_hash": record.root_hash.hex(), "note": record.note}


def _proof(store: LogStore, seq: int, checkpoint: CheckpointRecord | None) -> InclusionProof | None:
    if checkpoint is None or seq >= checkpoint.tree_size:
        return None
    # The checkpoint's size is within the log: no need to read the head again per entry.
    proof = prove_inclusion(store, index=seq, size=checkpoint.tree_size)
    if proof.root_hash != checkpoint.root_hash:
        raise IntegrityError(
            f"stored nodes do not reproduce checkpoint {checkpoint.tree_size}: run verify"
        )
    return proof


def _cited_sources(
    store: LogStore, catalogue: Catalogue, entries: list[SealedEntry]
) -> dict[tuple[str, str, int], SealedEntry]:
    """The publication entries of every policy version (id, version, digest) and price list
    version the request's decisions and inferences name; a citation that matches no published
    entry is left out (admission refuses such entries, so only a foreign log would have one)."""
    policies: dict[str, set[tuple[int, str]]] = {}
    price_lists: dict[str, set[int]] = {}
    for entry in entries:
        event = read_event(catalogue, entry)
        if isinstance(event, ResidencyDecided):
            for cited in event.policies:
                policies.setdefault(cited.policy_id, set()).add((cited.version, cited.digest))
        elif (
            isinstance(event, InferenceRouted)
            and event.price_list_id is not None
            and event.price_list_version is not None
        ):
            price_lists.setdefault(event.price_list_id, set()).add(event.price_list_version)
    found: dict[tuple[str, str, int], SealedEntry] = {}
    for policy_id, wanted in sorted(policies.items()):
        for entry in store.stream_entries(f"{POLICY_STREAM}{policy_id}"):
            event = read_event(catalogue, entry)
            if isinstance(event, PolicyPublished) and (event.version, event.digest) in wanted:
                found.setdefault(("policy", policy_id, event.version), entry)
    for list_id, versions in sorted(price_lists.items()):
        for entry in store.stream_entries(f"{PRICE_LIST_STREAM}{list_id}"):
            event = read_event(catalogue, entry)
            if isinstance(event, PriceListPublished) and event.version in versions:
                found.setdefault(("price-list", list_id, event.version), entry)
    return found
