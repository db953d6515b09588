"""A request's provenance as a W3C PROV document (PROV-JSON, https://www.w3.org/Submission/prov-json/),
built with the ``prov`` library from what :func:`ledger.app.provenance.request_provenance`
gathered. The mapping, element by element, is in docs/provenance.md.

Rules this module keeps:

* every element made from a log entry carries that entry's ``pactledger:seq`` and
  ``pactledger:leaf_hash`` (lowercase hex) and, when a checkpoint is signed, the
  ``pactledger:checkpoint_tree_size`` and ``pactledger:checkpoint_root`` its inclusion proof
  is against (``pactledger:inclusion`` says ``proven``; an entry newer than the checkpoint
  says ``pending`` and names no checkpoint);
* personal fields never appear: ``end_user_ref`` and any field whose name starts with
  ``end_user`` are dropped, whatever the event type (even their ciphertext);
* the output is deterministic: identifiers are derived from ids and seqs
  (``pactledger:request/<id>``, ``pactledger:entry/<seq>`` …), records are added in seq order,
  every attribute has one value (lists are written as JSON text, because ``prov`` keeps
  multiple values in an unordered set) and the JSON is written with sorted keys.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from prov.constants import PROV
from prov.identifier import Namespace, QualifiedName
from prov.model import ProvDocument

from ledger.app.provenance import RequestProvenance
from ledger.app.published import read_event
from ledger.events import Catalogue, InferenceRouted, ResidencyDecided
from ledger.log.entry import SealedEntry

PACTLEDGER = Namespace("pactledger", "urn:pactledger:")
PERSONAL_PREFIX = "end_user"

__all__ = ["PACTLEDGER", "prov_document", "prov_json"]


def prov_json(provenance: RequestProvenance, catalogue: Catalogue) -> str:
    """The PROV-JSON text of the request's provenance: sorted keys, two-space indent."""
    text = prov_document(provenance, catalogue).serialize(format="json")
    assert text is not None  # serialize returns the text when no destination is given
    return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def prov_document(provenance: RequestProvenance, catalogue: Catalogue) -> ProvDocument:
    return _Builder(provenance, catalogue).build()


def _attrs(**fields: Any) -> dict[QualifiedName, Any]:
    """``pactledger:``-named attributes, without empty values and without personal fields."""
    return {
        PACTLEDGER[name]: _value(value)
        for name, value in fields.items()
        if value is not None and not name.startswith(PERSONAL_PREFIX)
    }


def _value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, QualifiedName | int | str | datetime):
        return value
    return str(value)  # Decimal and the like: exact text


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Builder:
    def __init__(self, provenance: RequestProvenance, catalogue: Catalogue) -> None:
        self.provenance = provenance
        self.catalogue = catalogue
        self.doc = ProvDocument()
        self.doc.add_namespace(PACTLEDGER)
        self.made: set[QualifiedName] = set()
        self.related: set[tuple[str, ...]] = set()
        checkpoint = provenance.checkpoint
        self.checkpoint_attrs = (
            {}
            if checkpoint is None
            else _attrs(
                checkpoint_tree_size=checkpoint.tree_size,
                checkpoint_root=checkpoint.root_hash.hex(),
            )
        )
        self.request = PACTLEDGER[f"request/{provenance.request_id}"]

    # --- the document ---------------------------------------------------------------------

    def build(self) -> ProvDocument:
        self._checkpoint()
        tenants = sorted({p.entry.tenant for p in self.provenance.entries})
        self._element(
            "entity",
            self.request,
            _attrs(request_id=self.provenance.request_id, tenant=", ".join(tenants)),
            "Request",
        )
        for tenant in tenants:
            self._relation("wasAttributedTo", self.request, self._tenant(tenant))
        decisions = self._decision_ids()
        for proven in self.provenance.entries:
            entry = proven.entry
            record = self._entry(entry, proven=proven.proof is not None)
            event = read_event(self.catalogue, entry)
            if isinstance(event, ResidencyDecided):
                self._decision(entry, event, record)
            elif isinstance(event, InferenceRouted):
                self._inference(entry, event, record, decisions)
        return self.doc

    def _checkpoint(self) -> None:
        checkpoint = self.provenance.checkpoint
        if checkpoint is None:
            return
        origin = checkpoint.note.split("\n", 1)[0]
        self._element(
            "entity",
            PACTLEDGER[f"checkpoint/{checkpoint.tree_size}"],
            {
                **_attrs(
                    tree_size=checkpoint.tree_size,
                    root_hash=checkpoint.root_hash.hex(),
                    origin=origin,
                    key_name=checkpoint.key_name,
                    key_id=checkpoint.key_id.hex(),
                ),
                PROV["generatedAtTime"]: checkpoint.created_at,
            },
            "Checkpoint",
        )

    def _entry(self, entry: SealedEntry, *, proven: bool) -> QualifiedName:
        data = json.loads(entry.entry_bytes)
        name = PACTLEDGER[f"entry/{entry.seq}"]
        checkpoint = self.provenance.checkpoint
        attrs = _attrs(
            type=entry.type,
            schema_version=entry.schema_version,
            stream=entry.stream,
            stream_version=entry.stream_version,
            tenant=entry.tenant,
            occurred_at=data["occurred_at"],
            recorded_at=data["recorded_at"],
            chain_hash=entry.chain_hash.hex(),
            checkpoint=(
                PACTLEDGER[f"checkpoint/{checkpoint.tree_size}"] if checkpoint and proven else None
            ),
        )
        self._element("entity", name, {**attrs, **self._logged(entry, proven=proven)}, "LogEntry")
        self._relation("wasAttributedTo", name, self._tenant(entry.tenant))
        return name

    def _logged(self, entry: SealedEntry, *, proven: bool = True) -> dict[QualifiedName, Any]:
        """What ties an element to the log: its entry's seq and leaf hash, and the checkpoint."""
        proven = proven and bool(self.checkpoint_attrs)
        return {
            **_attrs(
                seq=entry.seq,
                leaf_hash=entry.leaf_hash.hex(),
                inclusion="proven" if proven else "pending",
            ),
            **(self.checkpoint_attrs if proven else {}),
        }

    def _proven(self, entry: SealedEntry) -> bool:
        checkpoint = self.provenance.checkpoint
        return checkpoint is not None and entry.seq < checkpoint.tree_size

    # --- residency decisions --------------------------------------------------------------

    def _decision_ids(self) -> set[str]:
        ids = set()
        for proven in self.provenance.entries:
            event = read_event(self.catalogue, proven.entry)
            if isinstance(event, ResidencyDecided):
                ids.add(event.decision_id)
        return ids

    def _decision(self, entry: SealedEntry, event: ResidencyDecided, record: QualifiedName) -> None:
        logged = self._logged(entry, proven=self._proven(entry))
        when = _time(json.loads(entry.entry_bytes)["occurred_at"])
        decision = PACTLEDGER[f"decision/{event.decision_id}"]
        decide = PACTLEDGER[f"decide/{event.decision_id}"]
        self._element(
            "activity",
            decide,
            {**_attrs(decision_id=event.decision_id), **logged},
            "ResidencyDecision",
            start=when,
        )
        self._element(
            "entity",
            decision,
            {
                **_attrs(
                    decision_id=event.decision_id,
                    outcome=event.outcome,
                    data_classes=event.data_classes,
                    candidate_provider=event.candidate_provider,
                    candidate_region=event.candidate_region,
                    chosen_provider=event.chosen_provider,
                    chosen_region=event.chosen_region,
                    matched_rules=event.matched_rules,
                    reasons=event.reasons,
                    transfer_basis=event.transfer_basis,
                    model_tier=event.model_tier,
                ),
                **logged,
            },
            "ResidencyDecision",
        )
        tenant = self._tenant(entry.tenant)
        self._relation("used", decide, self.request)
        self._relation("wasGeneratedBy", decision, decide, time=when)
        self._relation("wasGeneratedBy", record, decide)
        self._relation("wasAssociatedWith", decide, tenant)
        self._relation("wasAttributedTo", decision, tenant)
        for cited in event.policies:
            policy = self._source(
                "policy",
                cited.policy_id,
                cited.version,
                _attrs(policy_id=cited.policy_id, version=cited.version, digest=cited.digest),
                "PolicyVersion",
            )
            self._relation("used", decide, policy)
            self._relation("wasDerivedFrom", decision, policy)

    # --- routed inferences ----------------------------------------------------------------

    def _inference(
        self,
        entry: SealedEntry,
        event: InferenceRouted,
        record: QualifiedName,
        decisions: set[str],
    ) -> None:
        logged = self._logged(entry, proven=self._proven(entry))
        start = _time(json.loads(entry.entry_bytes)["occurred_at"])
        end = start + timedelta(milliseconds=event.latency_ms) if event.latency_ms else None
        inference = PACTLEDGER[f"inference/{entry.seq}"]
        fields = {
            k: v
            for k, v in event.model_dump(mode="json").items()
            if not k.startswith(PERSONAL_PREFIX)
        }
        self._element(
            "activity", inference, {**_attrs(**fields), **logged}, "Inference", start, end
        )
        tenant = self._tenant(entry.tenant)
        unit = self._agent(
            f"business-unit/{entry.tenant}/{event.business_unit}",
            {**_attrs(business_unit=event.business_unit, cost_center=event.cost_center), **logged},
            PROV["Organization"],
        )
        application = self._agent(
            f"application/{entry.tenant}/{event.application}",
            {**_attrs(application=event.application), **logged},
            PROV["SoftwareAgent"],
        )
        self._relation("actedOnBehalfOf", application, unit)
        self._relation("actedOnBehalfOf", unit, tenant)
        self._relation("wasAssociatedWith", inference, application)
        self._relation("wasAttributedTo", self.request, application)
        self._relation("used", inference, self.request)
        self._relation("wasGeneratedBy", record, inference)

        deployment = PACTLEDGER[
            f"deployment/{event.provider}/{event.region}/{event.deployment or event.model}"
        ]
        self._element(
            "entity",
            deployment,
            {
                **_attrs(
                    provider=event.provider,
                    region=event.region,
                    model=event.model,
                    deployment=event.deployment,
                    rack_family=event.rack_family,
                ),
                **logged,
            },
            "Deployment",
        )
        self._relation("used", inference, deployment)
        capacity = self._capacity(event, logged)
        if capacity is not None:
            self._relation("used", inference, capacity)
        if event.decision_id is not None and event.decision_id in decisions:
            self._relation("used", inference, PACTLEDGER[f"decision/{event.decision_id}"])
            self._relation("wasInformedBy", inference, PACTLEDGER[f"decide/{event.decision_id}"])

        cost = PACTLEDGER[f"cost/{entry.seq}"]
        self._element(
            "entity",
            cost,
            {
                **_attrs(
                    cost=event.cost,
                    currency=event.currency,
                    input_tokens=event.input_tokens,
                    output_tokens=event.output_tokens,
                    cached_tokens=event.cached_tokens,
                    business_unit=event.business_unit,
                    cost_center=event.cost_center,
                    price_list_id=event.price_list_id,
                    price_list_version=event.price_list_version,
                ),
                **logged,
            },
            "CostLine",
        )
        self._relation("wasGeneratedBy", cost, inference)
        self._relation("wasAttributedTo", cost, unit)
        if event.price_list_id is not None and event.price_list_version is not None:
            prices = self._source(
                "price-list",
                event.price_list_id,
                event.price_list_version,
                _attrs(price_list_id=event.price_list_id, version=event.price_list_version),
                "PriceList",
            )
            self._relation("used", inference, prices)
            self._relation("wasDerivedFrom", cost, prices)

    def _capacity(
        self, event: InferenceRouted, logged: dict[QualifiedName, Any]
    ) -> QualifiedName | None:
        """The tranche the inference ran on, else its rack family, else nothing."""
        if event.tranche_id is not None:
            name = PACTLEDGER[f"tranche/{event.tranche_id}"]
            attrs = _attrs(tranche_id=event.tranche_id, rack_family=event.rack_family)
            self._element("entity", name, {**attrs, **logged}, "Tranche")
            return name
        if event.rack_family is not None:
            name = PACTLEDGER[f"rack-family/{event.rack_family}"]
            attrs = _attrs(rack_family=event.rack_family)
            self._element("entity", name, {**attrs, **logged}, "RackFamily")
            return name
        return None

    # --- shared elements ------------------------------------------------------------------

    def _source(
        self, kind: str, ident: str, version: int, attrs: dict[QualifiedName, Any], type_: str
    ) -> QualifiedName:
        """A published policy or price list version, tied to its publication entry when the
        gathering found it."""
        name = PACTLEDGER[f"{kind}/{ident}/v{version}"]
        published = self.provenance.sources.get((kind, ident, version))
        if published is not None:
            attrs = {**attrs, **self._logged(published, proven=self._proven(published))}
        self._element("entity", name, attrs, type_)
        return name

    def _tenant(self, tenant: str) -> QualifiedName:
        return self._agent(f"tenant/{tenant}", _attrs(tenant=tenant), PROV["Organization"])

    def _agent(self, local: str, attrs: dict[QualifiedName, Any], type_: Any) -> QualifiedName:
        name = PACTLEDGER[local]
        if name not in self.made:
            self.made.add(name)
            attributes: dict[Any, Any] = {**attrs, PROV["type"]: type_}
            self.doc.agent(name, attributes)
        return name

    def _element(
        self,
        kind: str,
        name: QualifiedName,
        attrs: dict[QualifiedName, Any],
        type_: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        if name in self.made:
            return
        self.made.add(name)
        attributes: dict[Any, Any] = {**attrs, PROV["type"]: PACTLEDGER[type_]}
        if kind == "activity":
            self.doc.activity(name, start, end, attributes)
        else:
            self.doc.entity(name, attributes)

    def _relation(self, kind: str, subject: QualifiedName, obj: QualifiedName, **kw: Any) -> None:
        key = (kind, str(subject), str(obj))
        if key in self.related:
            return
        self.related.add(key)
        getattr(self.doc, kind)(subject, obj, **kw)
