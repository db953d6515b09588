"""Governance use cases over every store: publishing the shipped policies, deciding and
recording residency decisions that cite them, and replaying every recorded decision with the
policy texts the ledger held before it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ledger.app import governance
from ledger.app.governance import (
    GOVERNANCE_TENANT,
    decide,
    publish_policies,
    published_policy_set,
    replay_decisions,
)
from ledger.app.published import read_event
from ledger.app.service import Ledger
from ledger.errors import PolicyError, ValidationError
from ledger.events import Catalogue
from ledger.log.ports import LogStore
from ledger.policy import (
    Decision,
    Facts,
    PolicySet,
    load_policy_set,
    shipped_policy_dir,
)
from tests.conftest import TickingClock
from tests.unit.test_events import NoteV1, NoteV2

EU_TO_EU = Facts("acme", ("eu_personal",), "aws", "eu-central-1", model_tier="sonnet")
EU_TO_US = Facts("acme", ("eu_personal",), "aws", "us-east-1", model_tier="sonnet")
FEDERAL_TO_COMMERCIAL = Facts("us-federal", ("public",), "aws", "us-east-1", model_tier="sonnet")
UNKNOWN_REGION = Facts("acme", ("public",), "aws", "mars-1", model_tier="sonnet")

KEEP_IN_BOUNDARY = "EU personal data without a Chapter V transfer basis must stay in the EU/EEA."


@pytest.fixture
def ledger(store: LogStore) -> Ledger:
    return Ledger(store=store, clock=TickingClock())


@pytest.fixture
def shipped() -> PolicySet:
    return load_policy_set()


def edited_policies(tmp_path: Path, old: str, new: str, *, version: int = 1) -> PolicySet:
    """The shipped policies, with eu-data-boundary.yaml's text edited (and its version set)."""
    directory = tmp_path / f"policies-{version}"
    directory.mkdir()
    for path in shipped_policy_dir().glob("*.yaml"):
        shutil.copy(path, directory / path.name)
    target = directory / "eu-data-boundary.yaml"
    text = target.read_text(encoding="utf-8")
    assert old in text
    assert "\nversion: 1\n" in text
    text = text.replace(old, new).replace("\nversion: 1\n", f"\nversion: {version}\n")
    target.write_bytes(text.encode())
    return load_policy_set(directory)


def size_and_root(ledger: Ledger) -> tuple[int, bytes]:
    head = ledger.head()
    return head.size, head.root_hash


def decision_payload(
    decision: Decision, facts: Facts, *, decision_id: str, request_id: str, **changes: Any
) -> dict[str, Any]:
    """A ResidencyDecided payload for a decision, as decide() records it, with changes."""
    recorded = governance.decision_entry(
        facts, decision, request_id=request_id, decision_id=decision_id
    )
    payload: dict[str, Any] = {**recorded["payload"], **changes}
    return {k: v for k, v in payload.items() if v is not None}


def decision_entry(payload: dict[str, Any], *, tenant: str = "acme") -> dict[str, Any]:
    return {
        "type": "ResidencyDecided",
        "stream": f"request:{payload['request_id']}",
        "tenant": tenant,
        "payload": payload,
    }


# --- publishing -----------------------------------------------------------------------------


def test_publish_appends_one_entry_per_document(ledger: Ledger, shipped: PolicySet) -> None:
    report = publish_policies(ledger, shipped)
    assert [(d.file, d.kind, d.ref, d.status) for d in report] == [
        (s.file, s.document.kind, s.ref, "published") for s in shipped.sources
    ]
    assert [d.seq for d in report] == [0, 1, 2, 3, 4]
    assert ledger.head().size == 5
    entries = ledger.store.entries_in_streams("policy:")
    assert [(e.seq, e.type, e.stream, e.tenant) for e in entries] == [
        (seq, "PolicyPublished", f"policy:{s.ref.policy_id}", GOVERNANCE_TENANT)
        for seq, s in enumerate(shipped.sources)
    ]
    for entry, source in zip(entries, shipped.sources, strict=True):
        payload = json.loads(entry.entry_bytes)["payload"]
        assert (payload["text"], payload["digest"]) == (source.text, source.digest)
    assert published_policy_set(ledger).refs == shipped.refs


def test_publishing_an_already_published_set_appends_nothing(
    ledger: Ledger, shipped: PolicySet
) -> None:
    first = publish_policies(ledger, shipped)
    before = size_and_root(ledger)
    again = publish_policies(ledger, shipped)
    assert size_and_root(ledger) == before
    assert [d.status for d in again] == ["already-published"] * 5
    assert [(d.file, d.ref, d.seq) for d in again] == [(d.file, d.ref, d.seq) for d in first]
    assert published_policy_set(ledger).refs == shipped.refs


def test_published_policy_set_needs_a_publication(ledger: Ledger) -> None:
    with pytest.raises(PolicyError, match="pactledger policy publish"):
        published_policy_set(ledger)


def test_a_changed_document_under_the_same_version_is_refused(
    ledger: Ledger, shipped: PolicySet, tmp_path: Path
) -> None:
    publish_policies(ledger, shipped)
    before = size_and_root(ledger)
    changed = edited_policies(tmp_path, "must stay in the EU/EEA", "must remain in the EU/EEA")
    with pytest.raises(PolicyError, match="publish the change as version 2") as refused:
        publish_policies(ledger, changed)
    assert refused.value.file == "eu-data-boundary.yaml"
    assert str(refused.value).startswith("eu-data-boundary.yaml: ")
    assert size_and_root(ledger) == before
    assert published_policy_set(ledger).refs == shipped.refs


def test_bumping_the_version_publishes_only_the_changed_document(
    ledger: Ledger, shipped: PolicySet, tmp_path: Path
) -> None:
    first = publish_policies(ledger, shipped)
    bumped = edited_policies(
        tmp_path, "must stay in the EU/EEA", "must remain in the EU/EEA", version=2
    )
    report = publish_policies(ledger, bumped)
    assert [(d.ref.policy_id, d.ref.version, d.status, d.seq) for d in report] == [
        ("capability-routing", 1, "already-published", first[0].seq),
        ("default-residency", 1, "already-published", first[1].seq),
        ("eu-data-boundary", 2, "published", 5),
        ("region-catalogue", 1, "already-published", first[3].seq),
        ("sovereign-government", 1, "already-published", first[4].seq),
    ]
    assert ledger.head().size == 6
    assert ledger.entry(5).stream == "policy:eu-data-boundary"

    current = published_policy_set(ledger)
    assert current.refs == bumped.refs
    assert {r.policy_id: r.version for r in current.refs} == {
        "capability-routing": 1,
        "default-residency": 1,
        "eu-data-boundary": 2,
        "region-catalogue": 1,
        "sovereign-government": 1,
    }
    assert current.decide(EU_TO_US).reasons[0] == KEEP_IN_BOUNDARY.replace("stay", "remain")


# --- deciding -------------------------------------------------------------------------------


def test_an_unrecorded_decision_appends_nothing(ledger: Ledger, shipped: PolicySet) -> None:
    result = decide(ledger, shipped, EU_TO_US, request_id="req-1", record=False)
    assert result.receipt is None
    assert result.decision.outcome == "reroute"
    assert result.decision_id.startswith("dec-")
    assert ledger.head().size == 0


def test_recording_needs_the_policies_published(ledger: Ledger, shipped: PolicySet) -> None:
    with pytest.raises(PolicyError, match="pactledger policy publish"):
        decide(ledger, shipped, EU_TO_US, request_id="req-1", record=True)
    assert ledger.head().size == 0


def test_recording_needs_the_exact_published_text(
    ledger: Ledger, shipped: PolicySet, tmp_path: Path
) -> None:
    publish_policies(ledger, shipped)
    before = size_and_root(ledger)
    changed = edited_policies(tmp_path, "must stay in the EU/EEA", "must remain in the EU/EEA")
    with pytest.raises(PolicyError, match="published with another text"):
        decide(ledger, changed, EU_TO_US, request_id="req-1", record=True)
    assert size_and_root(ledger) == before


def test_a_recorded_decision_cites_every_document(ledger: Ledger, shipped: PolicySet) -> None:
    publish_policies(ledger, shipped)
    result = decide(ledger, shipped, EU_TO_US, request_id="req-1", decision_id="dec-1", record=True)
    assert result.receipt is not None
    assert not result.receipt.duplicate
    assert ledger.head().size == 6
    sealed = ledger.entry(result.receipt.seq)
    assert (sealed.type, sealed.stream, sealed.tenant) == (
        "ResidencyDecided",
        "request:req-1",
        EU_TO_US.tenant,
    )
    assert sealed.idempotency_key == "decision:dec-1"
    payload = json.loads(sealed.entry_bytes)["payload"]
    assert payload["policies"] == [
        {"policy_id": r.policy_id, "version": r.version, "digest": r.digest} for r in shipped.refs
    ]
    assert len(payload["policies"]) == 5
    assert (payload["outcome"], payload["chosen_provider"], payload["chosen_region"]) == (
        "reroute",
        "aws",
        "eu-central-1",
    )
    assert payload["candidate_region"] == "us-east-1"
    assert payload["matched_rules"] == list(result.decision.matched_rules)
    assert result.to_json()["recorded"] == {"seq": 5, "tree_size": 6}

    again = decide(ledger, shipped, EU_TO_US, request_id="req-1", decision_id="dec-1", record=True)
    assert again.receipt is not None
    assert again.receipt.duplicate
    assert again.receipt.seq == result.receipt.seq
    assert ledger.head().size == 6


# --- replay ---------------------------------------------------------------------------------


def record_realistic_decisions(ledger: Ledger, policy_set: PolicySet) -> list[str]:
    outcomes = []
    for n, facts in enumerate((EU_TO_EU, EU_TO_US, FEDERAL_TO_COMMERCIAL, UNKNOWN_REGION)):
        result = decide(ledger, policy_set, facts, request_id=f"req-{n}", record=True)
        outcomes.append(result.decision.outcome)
    return outcomes


def test_recorded_decisions_replay_without_discrepancies(
    ledger: Ledger, shipped: PolicySet
) -> None:
    publish_policies(ledger, shipped)
    assert record_realistic_decisions(ledger, shipped) == ["allow", "reroute", "deny", "deny"]
    report = replay_decisions(ledger)
    assert report.decisions == 4
    assert report.discrepancies == []
    assert report.entries == 9
    assert report.policy_sets == 1
    assert report.to_json()["matching"] == 4


def test_a_forged_decision_is_the_one_discrepancy(ledger: Ledger, shipped: PolicySet) -> None:
    publish_policies(ledger, shipped)
    record_realistic_decisions(ledger, shipped)
    genuine = shipped.decide(EU_TO_US)
    assert genuine.outcome == "reroute"
    forged = decision_payload(
        genuine,
        EU_TO_US,
        decision_id="dec-forged",
        request_id="req-forged",
        outcome="allow",
        chosen_provider="aws",
        chosen_region="us-east-1",
    )
    (receipt,) = ledger.append([decision_entry(forged)])  # it cites published texts: admitted
    record_realistic_decisions(ledger, shipped)

    report = replay_decisions(ledger)
    assert report.decisions == 9
    assert len(report.discrepancies) == 1
    (found,) = report.discrepancies
    assert (found.seq, found.decision_id, found.request_id) == (
        receipt.seq,
        "dec-forged",
        "req-forged",
    )
    assert "outcome" in found.problem
    assert "chosen_region" in found.problem
    assert "matched_rules" not in found.problem
    assert found.recorded["outcome"] == "allow"
    assert found.recorded["chosen_region"] == "us-east-1"
    assert found.replayed is not None
    assert found.replayed["outcome"] == "reroute"
    assert found.replayed["chosen_region"] == "eu-central-1"


def test_a_decision_citing_text_published_after_it_is_reported(
    ledger: Ledger, shipped: PolicySet, tmp_path: Path
) -> None:
    publish_policies(ledger, shipped)
    bumped = edited_policies(
        tmp_path, "must stay in the EU/EEA", "must remain in the EU/EEA", version=2
    )
    early = decision_payload(
        bumped.decide(EU_TO_US), EU_TO_US, decision_id="dec-early", request_id="req-early"
    )
    # The store takes any payload (no admission): a decision citing v2 before v2 exists.
    (receipt,) = ledger.store.append([decision_entry(early)])
    publish_policies(ledger, bumped)
    decide(ledger, bumped, EU_TO_US, request_id="req-late", record=True)  # now it is admitted

    report = replay_decisions(ledger)
    assert report.decisions == 2
    (found,) = report.discrepancies
    assert (found.seq, found.decision_id) == (receipt.seq, "dec-early")
    assert found.problem == (
        "cites policy text the ledger did not hold before it: eu-data-boundary v2"
    )
    assert found.replayed is None


def test_a_decision_citing_a_digest_never_published_is_reported(
    ledger: Ledger, shipped: PolicySet
) -> None:
    publish_policies(ledger, shipped)
    payload = decision_payload(
        shipped.decide(EU_TO_EU), EU_TO_EU, decision_id="dec-x", request_id="req-x"
    )
    payload["policies"][2] = {"policy_id": "eu-data-boundary", "version": 1, "digest": "0" * 64}
    ledger.store.append([decision_entry(payload)])
    (found,) = replay_decisions(ledger).discrepancies
    assert "did not hold before it: eu-data-boundary v1" in found.problem


def test_a_decision_under_version_1_replays_after_version_2(
    ledger: Ledger, shipped: PolicySet, tmp_path: Path
) -> None:
    publish_policies(ledger, shipped)
    under_v1 = decide(ledger, shipped, EU_TO_US, request_id="req-1", record=True)
    bumped = edited_policies(
        tmp_path, "must stay in the EU/EEA", "must remain in the EU/EEA", version=2
    )
    publish_policies(ledger, bumped)
    under_v2 = decide(ledger, bumped, EU_TO_US, request_id="req-2", record=True)
    # The two versions give the same facts different reasons, so replaying v1's decision
    # with v2 would not match: replay must use the text each decision cites.
    assert under_v1.decision.reasons[0] == KEEP_IN_BOUNDARY
    assert under_v2.decision.reasons[0] != KEEP_IN_BOUNDARY

    report = replay_decisions(ledger)
    assert report.decisions == 2
    assert report.discrepancies == []
    assert report.policy_sets == 2


def test_an_entry_appended_as_v1_reads_as_v2_once_v2_exists(store: LogStore) -> None:
    """Stored bytes never change: the v1 entry is read through the upcaster after v2 ships,
    and both versions can still be appended (each validated as written)."""
    today = Catalogue()
    today.register(NoteV1)
    note = {"type": "Note", "stream": "note:1", "tenant": "acme", "payload": {"text": "hello"}}
    (receipt,) = Ledger(store=store, catalogue=today).append([note])
    stored = store.entry(receipt.seq).entry_bytes

    tomorrow = Catalogue()
    tomorrow.register(NoteV1)
    tomorrow.register(
        NoteV2, upcast_from_previous=lambda old: {"body": old["text"], "language": "en"}
    )
    read = read_event(tomorrow, store.entry(receipt.seq))
    assert isinstance(read, NoteV2)
    assert read.payload() == {"body": "hello", "language": "en"}
    assert store.entry(receipt.seq).entry_bytes == stored

    ledger = Ledger(store=store, catalogue=tomorrow)
    v2 = {**note, "schema_version": 2, "payload": {"body": "hej", "language": "sv"}}
    ledger.append([v2, {**note, "payload": {"text": "still v1"}}])
    with pytest.raises(ValidationError) as caught:
        ledger.append([{**note, "schema_version": 2, "payload": {"text": "v1 shape"}}])
    assert caught.value.field is not None
    assert caught.value.field.startswith("payload.")
