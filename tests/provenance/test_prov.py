"""The PROV builder (ledger/provenance_prov.py) over a memory ledger: the document parses back
with the ``prov`` library; the request, its decision, the cited policy versions, the price list,
the deployment, the tranche, the activities and the agents are there with the relations of
docs/provenance.md; every element made from an entry carries that entry's seq and leaf hash and
the checkpoint its proof is against (none for an entry after the checkpoint); no personal field
appears; and the text is the same on every run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prov.model import ProvDocument, ProvRecord

from ledger.app.provenance import RequestProvenance, request_provenance
from ledger.app.service import Ledger
from ledger.errors import NotFoundError
from ledger.integrity.note import NoteSigner
from ledger.provenance_prov import PACTLEDGER, prov_json
from ledger.store.memory import MemoryLogStore
from tests.conftest import ORIGIN
from tests.provenance.scenario import DECISION, REQUEST, fill

PL = "pactledger:"


def signed_ledger() -> Ledger:
    key = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
    return Ledger(store=MemoryLogStore(ORIGIN), signer=NoteSigner(ORIGIN, key))


@pytest.fixture
def ledger() -> Ledger:
    found = signed_ledger()
    fill(found)
    return found


def gather(ledger: Ledger, request_id: str = REQUEST) -> RequestProvenance:
    return request_provenance(
        ledger.store, ledger.catalogue, request_id=request_id, sees=lambda _: True, sources=True
    )


def parsed(text: str) -> ProvDocument:
    return ProvDocument.deserialize(content=text, format="json")


def records(doc: ProvDocument) -> dict[str, ProvRecord]:
    return {str(r.identifier): r for r in doc.get_records() if r.identifier is not None}


def attrs(record: ProvRecord) -> dict[str, Any]:
    return {str(name): value for name, value in record.attributes}


def relations(doc: ProvDocument, kind: str) -> set[tuple[str, ...]]:
    """(first, second) formal attributes of every relation of ``kind`` (e.g. "used")."""
    found = set()
    for record in doc.get_records():
        if record.get_type().localpart == kind or type(record).__name__ == kind:
            formal = [str(v) for _, v in record.formal_attributes[:2]]
            found.add(tuple(formal))
    return found


def test_the_document_has_the_requests_elements(ledger: Ledger) -> None:
    doc = parsed(prov_json(gather(ledger), ledger.catalogue))
    named = records(doc)
    for name in [
        f"request/{REQUEST}",
        f"decision/{DECISION}",
        f"decide/{DECISION}",
        "policy/eu-data-boundary/v1",
        "price-list/list-2026/v1",
        "deployment/aws/eu-central-1/sonnet-fra-blue",
        "tranche/gb200-fra-1",
        "tenant/acme",
        "business-unit/acme/research",
        "application/acme/contract-review",
    ]:
        assert PL + name in named, name
    entries = gather(ledger).entries
    inferences = [e.entry.seq for e in entries if e.entry.type == "InferenceRouted"]
    assert len(inferences) == 2
    for seq in inferences:
        assert f"{PL}inference/{seq}" in named
        assert f"{PL}cost/{seq}" in named
    for proven in entries:
        assert f"{PL}entry/{proven.entry.seq}" in named
    assert named[PL + "tenant/acme"].get_type().localpart == "Agent"
    assert attrs(named[PL + "business-unit/acme/research"])[PL + "cost_center"] == "cc-4410"
    policy = attrs(named[PL + "policy/eu-data-boundary/v1"])
    assert len(policy[PL + "digest"]) == 64


def test_the_relations_tie_agents_activities_and_entities(ledger: Ledger) -> None:
    doc = parsed(prov_json(gather(ledger), ledger.catalogue))
    seq = next(e.entry.seq for e in gather(ledger).entries if e.entry.type == "InferenceRouted")
    inference, decide = f"{PL}inference/{seq}", f"{PL}decide/{DECISION}"
    used = relations(doc, "Usage")
    assert (inference, f"{PL}request/{REQUEST}") in used
    assert (inference, f"{PL}deployment/aws/eu-central-1/sonnet-fra-blue") in used
    assert (inference, f"{PL}tranche/gb200-fra-1") in used
    assert (inference, f"{PL}price-list/list-2026/v1") in used
    assert (decide, f"{PL}policy/eu-data-boundary/v1") in used
    assert (f"{PL}decision/{DECISION}", decide) in relations(doc, "Generation")
    assert (f"{PL}cost/{seq}", inference) in relations(doc, "Generation")
    assert (inference, f"{PL}application/acme/contract-review") in relations(doc, "Association")
    assert (decide, f"{PL}tenant/acme") in relations(doc, "Association")
    assert (f"{PL}request/{REQUEST}", f"{PL}application/acme/contract-review") in relations(
        doc, "Attribution"
    )
    delegation = relations(doc, "Delegation")
    assert (f"{PL}application/acme/contract-review", f"{PL}business-unit/acme/research") in (
        delegation
    )
    assert (f"{PL}business-unit/acme/research", f"{PL}tenant/acme") in delegation
    derived = relations(doc, "Derivation")
    assert (f"{PL}decision/{DECISION}", f"{PL}policy/eu-data-boundary/v1") in derived
    assert (f"{PL}cost/{seq}", f"{PL}price-list/list-2026/v1") in derived
    assert (inference, decide) in relations(doc, "Communication")


def test_elements_carry_their_entrys_seq_leaf_hash_and_checkpoint(ledger: Ledger) -> None:
    gathered = gather(ledger)
    checkpoint = gathered.checkpoint
    assert checkpoint is not None
    named = records(parsed(prov_json(gathered, ledger.catalogue)))
    by_seq = {e.entry.seq: e for e in gathered.entries}
    tied = {name: attrs(record) for name, record in named.items() if PL + "seq" in attrs(record)}
    assert len(tied) >= len(by_seq) * 2
    for proven in gathered.entries:
        assert f"{PL}entry/{proven.entry.seq}" in tied
    for name, values in tied.items():
        seq = values[PL + "seq"]
        entry = by_seq[seq].entry if seq in by_seq else ledger.store.entry(seq)
        assert values[PL + "leaf_hash"] == entry.leaf_hash.hex(), name
        if seq < checkpoint.tree_size:
            assert values[PL + "inclusion"] == "proven", name
            assert values[PL + "checkpoint_tree_size"] == checkpoint.tree_size, name
            assert values[PL + "checkpoint_root"] == checkpoint.root_hash.hex(), name
        else:
            assert values[PL + "inclusion"] == "pending", name
            assert PL + "checkpoint_root" not in values, name
    pending = [e for e in gathered.entries if e.proof is None]
    assert len(pending) == 1  # the inference appended after the checkpoint
    policy = tied[PL + "policy/eu-data-boundary/v1"]
    published = ledger.store.entry(policy[PL + "seq"])
    assert published.type == "PolicyPublished"
    assert published.stream == "policy:eu-data-boundary"
    prices = tied[PL + "price-list/list-2026/v1"]
    assert ledger.store.entry(prices[PL + "seq"]).type == "PriceListPublished"
    checkpoint_record = attrs(named[f"{PL}checkpoint/{checkpoint.tree_size}"])
    assert checkpoint_record[PL + "root_hash"] == checkpoint.root_hash.hex()
    assert checkpoint_record[PL + "origin"] == ORIGIN


def test_no_personal_field_reaches_the_document(ledger: Ledger) -> None:
    gathered = gather(ledger)
    assert any("end_user_ref" in e.entry.entry_bytes.decode() for e in gathered.entries)
    text = prov_json(gathered, ledger.catalogue)
    assert "end_user" not in text
    assert "ciphertext-of-the-end-user" not in text


def test_the_output_is_deterministic(ledger: Ledger) -> None:
    text = prov_json(gather(ledger), ledger.catalogue)
    assert prov_json(gather(ledger), ledger.catalogue) == text
    data = json.loads(text)
    assert json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text
    assert data["prefix"] == {"pactledger": PACTLEDGER.uri}


def test_without_a_checkpoint_every_element_is_pending() -> None:
    unsigned = Ledger(store=MemoryLogStore(ORIGIN))
    fill(unsigned, after_checkpoint=False)
    gathered = gather(unsigned)
    assert gathered.checkpoint is None
    named = records(parsed(prov_json(gathered, unsigned.catalogue)))
    assert not any(name.startswith(PL + "checkpoint/") for name in named)
    for record in named.values():
        values = attrs(record)
        if PL + "seq" in values:
            assert values[PL + "inclusion"] == "pending"
            assert PL + "checkpoint_tree_size" not in values


def test_the_json_answer_is_the_apis_shape(ledger: Ledger) -> None:
    body = gather(ledger).to_json()
    assert set(body) == {"request_id", "checkpoint", "entries"}
    assert body["request_id"] == REQUEST
    assert {e["stream"] for e in body["entries"]} == {f"request:{REQUEST}"}
    assert [e["inclusion_proof"] is None for e in body["entries"]] == [False, False, True]


def test_a_request_nobody_may_see_is_not_found(ledger: Ledger) -> None:
    with pytest.raises(NotFoundError, match="no request 'req-5'"):
        request_provenance(
            ledger.store, ledger.catalogue, request_id=REQUEST, sees=lambda t: t == "globex"
        )
    with pytest.raises(NotFoundError, match="no request 'req-404'"):
        gather(ledger, "req-404")
