"""Governance use cases: publish policies, decide (and record) residency, replay decisions.

Guarantees: only a set that loads and compiles is published, each document as one
``PolicyPublished`` entry holding its full text (re-publishing an unchanged version appends
nothing); a recorded decision cites every document of the set it was made with, and every one
must have been published with exactly that text; ``replay_decisions`` re-evaluates every
recorded decision with the policy texts the ledger itself holds *before* that decision and
reports each one whose recorded outcome, placement, rules or reasons differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ledger.app.published import PolicyRegistry, read_event, read_policies
from ledger.app.service import Ledger
from ledger.errors import LedgerError, PolicyError, ValidationError
from ledger.events import PolicyPublished, ResidencyDecided
from ledger.log.entry import EntryInput, Receipt
from ledger.log.ids import uuid7_batch
from ledger.policy import Decision, Facts, PolicyRef, PolicySet, policy_set_from_texts

GOVERNANCE_TENANT = "governance"
"""The tenant of ledger-wide entries (policies, price lists)."""


@dataclass(frozen=True)
class PublishedDocument:
    file: str
    kind: str
    ref: PolicyRef
    status: Literal["published", "already-published"]
    seq: int | None


def publish_policies(ledger: Ledger, policy_set: PolicySet) -> list[PublishedDocument]:
    """Append a ``PolicyPublished`` for every document of the set not yet published, in one
    batch (all or nothing)."""
    registry = read_policies(ledger.store, ledger.catalogue)
    fresh = [s for s in policy_set.sources if not registry.is_published(s.ref)]
    entries = [
        EntryInput(
            type=PolicyPublished.TYPE,
            stream=f"policy:{source.ref.policy_id}",
            tenant=GOVERNANCE_TENANT,
            idempotency_key=f"policy:{source.ref.policy_id}:v{source.ref.version}",
            payload=PolicyPublished(
                policy_id=source.ref.policy_id,
                version=source.ref.version,
                kind=source.document.kind,
                text=source.text,
                digest=source.digest,
                description=_label(source.document.description),
            ).payload(),
        )
        for source in fresh
    ]
    try:
        receipts = ledger.append(entries) if entries else []
    except LedgerError as exc:
        index = getattr(exc, "index", None)
        file = fresh[index].file if index is not None else None
        raise PolicyError(getattr(exc, "reason", str(exc)), file=file) from None
    seqs = {source.ref: receipt.seq for source, receipt in zip(fresh, receipts, strict=True)}
    return [
        PublishedDocument(
            file=source.file,
            kind=source.document.kind,
            ref=source.ref,
            status="published" if source.ref in seqs else "already-published",
            seq=seqs[source.ref] if source.ref in seqs else registry.versions[_key(source.ref)].seq,
        )
        for source in policy_set.sources
    ]


def published_policy_set(ledger: Ledger) -> PolicySet:
    """The newest published version of every policy id, compiled: what the API decides with."""
    return read_policies(ledger.store, ledger.catalogue).latest_set()


@dataclass(frozen=True)
class RecordedDecision:
    decision: Decision
    decision_id: str
    request_id: str
    receipt: Receipt | None

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"decision_id": self.decision_id, "request_id": self.request_id}
        result.update(self.decision.to_json())
        result["recorded"] = (
            {"seq": self.receipt.seq, "tree_size": self.receipt.tree_size} if self.receipt else None
        )
        return result


def decide(
    ledger: Ledger,
    policy_set: PolicySet,
    facts: Facts,
    *,
    request_id: str,
    decision_id: str | None = None,
    record: bool,
) -> RecordedDecision:
    """Decide a request's placement; with ``record``, append it as ``ResidencyDecided`` on the
    request's stream (its idempotency key is the decision id, so a retry appends nothing)."""
    decision = policy_set.decide(facts)
    decision_id = decision_id or f"dec-{uuid7_batch(1, ledger.clock())[0]}"
    if not record:
        return RecordedDecision(decision, decision_id, request_id, None)
    read_policies(ledger.store, ledger.catalogue).require_published(decision.policies)
    entry = decision_entry(facts, decision, request_id=request_id, decision_id=decision_id)
    (receipt,) = ledger.append([entry])
    return RecordedDecision(decision, decision_id, request_id, receipt)


def decision_entry(
    facts: Facts,
    decision: Decision,
    *,
    request_id: str,
    decision_id: str,
    occurred_at: datetime | str | None = None,
) -> dict[str, Any]:
    """The ``ResidencyDecided`` entry of a decision, as ``Ledger.append`` takes it: on the
    request's stream, keyed by the decision id. Admission validates it like any other entry,
    so odd facts (a malformed region name) are refused with the field named."""
    payload = {
        "decision_id": decision_id,
        "request_id": request_id,
        "data_classes": list(facts.data_classes),
        "candidate_provider": facts.provider,
        "candidate_region": facts.region,
        "outcome": decision.outcome,
        "chosen_provider": decision.chosen_provider,
        "chosen_region": decision.chosen_region,
        "matched_rules": list(decision.matched_rules),
        "reasons": list(decision.reasons),
        "policies": [
            {"policy_id": ref.policy_id, "version": ref.version, "digest": ref.digest}
            for ref in decision.policies
        ],
        "transfer_basis": facts.transfer_basis,
        "model_tier": facts.model_tier,
    }
    entry: dict[str, Any] = {
        "type": ResidencyDecided.TYPE,
        "stream": f"request:{request_id}",
        "tenant": facts.tenant,
        "idempotency_key": f"decision:{decision_id}",
        "payload": {name: value for name, value in payload.items() if value is not None},
    }
    if occurred_at is not None:
        entry["occurred_at"] = occurred_at
    return entry


TIERS = ("opus", "sonnet", "haiku")


def model_tier_for(
    policy_set: PolicySet,
    *,
    model: str | None,
    capability: str | None,
    tenant: str,
    data_classes: Sequence[str],
) -> str | None:
    """The model tier a request asks for: named by ``model`` (a tier, or a model id that
    names one such as claude-sonnet-4-5), or chosen for ``capability`` by the routing policy.
    """
    if model and capability:
        raise ValidationError("give a model or a capability, not both", field="capability")
    if capability:
        route = policy_set.route(tenant=tenant, data_classes=data_classes, capability=capability)
        if route is None:
            raise ValidationError(
                f"no routing rule matches capability '{capability}' (the shipped routing knows "
                "deep_reasoning, agentic, high_volume_low_latency)",
                field="capability",
            )
        return route.model_tier
    if model is None:
        return None
    named = [tier for tier in TIERS if tier in model.lower().split("-")]
    if len(named) != 1:
        raise ValidationError(
            f"cannot tell the tier of '{model}'; give opus, sonnet, haiku or a model id that "
            "names one, such as claude-sonnet-4-5",
            field="model",
        )
    return named[0]


# --- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    """A recorded decision that its own policies do not reproduce."""

    seq: int
    decision_id: str
    request_id: str
    problem: str
    recorded: dict[str, Any]
    replayed: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "decision_id": self.decision_id,
            "request_id": self.request_id,
            "problem": self.problem,
            "recorded": self.recorded,
            "replayed": self.replayed,
        }


@dataclass
class ReplayReport:
    entries: int = 0
    decisions: int = 0
    policy_sets: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "entries_read": self.entries,
            "decisions": self.decisions,
            "matching": self.decisions - len(self.discrepancies),
            "policy_sets": self.policy_sets,
            "discrepancies": [d.to_json() for d in self.discrepancies],
        }


def replay_decisions(
    ledger: Ledger, *, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    """Re-evaluate every recorded ``ResidencyDecided`` with the policy texts recorded before it."""
    registry = PolicyRegistry()
    compiled: dict[tuple[str, ...], PolicySet | str] = {}
    report = ReplayReport()
    for entry in ledger.store.iter_entries():
        report.entries += 1
        if progress is not None and report.entries % 5000 == 0:
            progress(5000)
        if entry.type == PolicyPublished.TYPE:
            published = read_event(ledger.catalogue, entry)
            assert isinstance(published, PolicyPublished)
            try:
                registry.add(published, entry.seq)
            except LedgerError:
                continue  # a conflicting re-publication: decisions citing it show up below
        elif entry.type == ResidencyDecided.TYPE:
            event = read_event(ledger.catalogue, entry)
            assert isinstance(event, ResidencyDecided)
            report.decisions += 1
            problem = _replay_one(entry.tenant, event, registry, compiled)
            if problem is not None:
                text, replayed = problem
                report.discrepancies.append(
                    Discrepancy(
                        entry.seq,
                        event.decision_id,
                        event.request_id,
                        text,
                        _recorded(event),
                        replayed,
                    )
                )
    if progress is not None:
        progress(report.entries % 5000)
    report.policy_sets = len(compiled)
    return report


def _replay_one(
    tenant: str,
    event: ResidencyDecided,
    registry: PolicyRegistry,
    compiled: dict[tuple[str, ...], PolicySet | str],
) -> tuple[str, dict[str, Any] | None] | None:
    texts = [registry.text_of(citation) for citation in event.policies]
    missing = [c for c, text in zip(event.policies, texts, strict=True) if text is None]
    if missing:
        names = ", ".join(f"{c.policy_id} v{c.version}" for c in missing)
        return f"cites policy text the ledger did not hold before it: {names}", None
    key = tuple(c.digest for c in event.policies)
    policy_set = compiled.get(key)
    if policy_set is None:
        try:
            policy_set = policy_set_from_texts(
                (f"{c.policy_id} v{c.version}", text)
                for c, text in zip(event.policies, texts, strict=True)
                if text is not None
            )
        except PolicyError as exc:
            policy_set = f"its policy set does not compile: {exc}"
        compiled[key] = policy_set
    if isinstance(policy_set, str):
        return policy_set, None
    facts = Facts(
        tenant=tenant,
        data_classes=tuple(event.data_classes),
        provider=event.candidate_provider,
        region=event.candidate_region,
        model_tier=event.model_tier,
        transfer_basis=event.transfer_basis,
    )
    replayed = _outcome_of(policy_set.decide(facts))
    recorded = _recorded(event)
    differing = [name for name in recorded if recorded[name] != replayed[name]]
    if differing:
        return f"recorded {', '.join(differing)} differ from the replay", replayed
    return None


def _recorded(event: ResidencyDecided) -> dict[str, Any]:
    return {
        "outcome": event.outcome,
        "chosen_provider": event.chosen_provider,
        "chosen_region": event.chosen_region,
        "matched_rules": list(event.matched_rules),
        "reasons": list(event.reasons),
    }


def _outcome_of(decision: Decision) -> dict[str, Any]:
    return {
        "outcome": decision.outcome,
        "chosen_provider": decision.chosen_provider,
        "chosen_region": decision.chosen_region,
        "matched_rules": list(decision.matched_rules),
        "reasons": list(decision.reasons),
    }


def _key(ref: PolicyRef) -> tuple[str, int]:
    return (ref.policy_id, ref.version)


def _label(text: str) -> str:
    """A description short enough for the event's label field."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 200 else flat[:199] + "…"
