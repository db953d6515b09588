"""Admission: the domain rules an entry must meet before the log takes it.

Guarantees, checked for every entry of a batch before anything is written (a refusal names
the field, carries ``.index``, and the batch appends nothing):

* the payload is a valid payload of a catalogued (type, schema_version) — unknown types,
  missing fields, wrong types, naive datetimes and floats where money goes are refused — and
  it is stored in the model's one dumped form (decimals and times as fixed text);
* ``PolicyPublished`` goes on stream ``policy:<policy_id>``; its text parses as a policy
  document of that id, version and kind, and a version is never re-published with other text;
* ``PriceListPublished`` goes on stream ``price-list:<price_list_id>``, one content per version;
* ``ResidencyDecided`` cites only policy versions published with exactly that text;
* ``InferenceRouted`` gets its cost, currency and price list version from the price list in
  force at ``occurred_at`` (admission time when absent); values a client sent must agree;
* personal fields (the catalogue's ``PERSONAL``) are stored only sealed with their subject's
  data key (``ledger/privacy``), and blinded in the request digest; without a vault (no
  key-encryption key configured) an entry carrying them is refused.

Entries earlier in the same batch count: a batch may publish a price list and then use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ledger.app.published import (
    POLICY_STREAM,
    PRICE_LIST_STREAM,
    PolicyRegistry,
    PriceLists,
    PublishedCache,
    read_policies,
    read_price_lists,
)
from ledger.errors import LedgerError, PolicyError, ValidationError
from ledger.events import (
    Catalogue,
    Event,
    InferenceRouted,
    PolicyPublished,
    PriceListPublished,
    ResidencyDecided,
)
from ledger.log.entry import EntryInput, EntryLike
from ledger.log.ports import LogStore
from ledger.log.sequencer import parse_entries
from ledger.policy import parse_document
from ledger.privacy import PersonalFields, Vault
from ledger.privacy.vault import Protection


@dataclass
class Admission:
    store: LogStore
    catalogue: Catalogue
    clock: Callable[[], datetime]
    cache: PublishedCache | None = None
    vault: Vault | None = None
    _protection: Protection | None = None
    _policies: PolicyRegistry | None = None
    _prices: PriceLists | None = None
    _published_here: list[PolicyPublished | PriceListPublished] = field(default_factory=list)

    def admit(self, inputs: Sequence[EntryLike]) -> list[EntryInput]:
        """Validate a batch against the catalogue and the domain rules; the entries to append."""
        entries = parse_entries(inputs)
        self._prefetch_subject_keys(entries)
        admitted = []
        for index, entry in enumerate(entries):
            try:
                admitted.append(self._admit(entry))
            except LedgerError as exc:
                exc.index = index  # type: ignore[attr-defined]
                raise
        return admitted

    def _admit(self, entry: EntryInput) -> EntryInput:
        event = self.catalogue.validate(entry.type, entry.schema_version, entry.payload)
        if isinstance(event, InferenceRouted):
            at = entry.occurred_at or self.clock()
            try:
                event = self.prices.book.price(event, at)
            except ValidationError:
                self._reload()  # perhaps published a moment ago by another process
                event = self.prices.book.price(event, at)
        elif isinstance(event, ResidencyDecided):
            self._check_citations(event)
        elif isinstance(event, PolicyPublished):
            _require_stream(entry, POLICY_STREAM + event.policy_id)
            _check_policy_text(event)
            self.policies.add(event, None)
            self._published_here.append(event)
        elif isinstance(event, PriceListPublished):
            _require_stream(entry, PRICE_LIST_STREAM + event.price_list_id)
            self.prices.add(event)
            self._published_here.append(event)
        personal = self.catalogue.personal(entry.type)
        if personal is not None:
            return self._protected(entry, event, PersonalFields(entry.type, *personal))
        return _with_payload(entry, event)

    def _protected(self, entry: EntryInput, event: Event, spec: PersonalFields) -> EntryInput:
        stored = event.payload()
        present = [name for name in spec.fields if name in stored]
        if not present:
            return _with_payload(entry, event)
        if self.vault is None:
            raise ValidationError(
                "is personal data, which the ledger stores only encrypted, and no "
                "key-encryption key is configured: run `pactledger init` or set PACTLEDGER_KEK",
                field=f"payload.{present[0]}",
            )
        if self._protection is None:
            self._protection = self.vault.batch()
        sealed, said = self._protection.protect(
            spec, tenant=entry.tenant, stored=stored, said=dict(entry.payload)
        )
        return entry.rewritten(sealed, said=said)

    def save_subject_keys(self) -> bool:
        """Store the subject keys this batch created and record the use of the others (one
        transaction); False if another process created one of them first, and the batch
        must be admitted again."""
        return self._protection is None or self._protection.save()

    def _prefetch_subject_keys(self, entries: Sequence[EntryInput]) -> None:
        if self.vault is None:
            return
        subjects = set()
        for entry in entries:
            personal = self.catalogue.personal(entry.type)
            if personal is not None and isinstance(entry.payload.get(personal[1]), str):
                subjects.add((entry.tenant, entry.payload[personal[1]]))
        if subjects:
            self._protection = self.vault.batch()
            self._protection.prefetch(subjects)

    @property
    def policies(self) -> PolicyRegistry:
        if self._policies is None:
            self._policies = (
                self.cache.policies() if self.cache else read_policies(self.store, self.catalogue)
            )
        return self._policies

    @property
    def prices(self) -> PriceLists:
        if self._prices is None:
            self._prices = (
                self.cache.prices() if self.cache else read_price_lists(self.store, self.catalogue)
            )
        return self._prices

    @property
    def publishes(self) -> bool:
        """Whether the admitted batch publishes a policy or a price list."""
        return bool(self._published_here)

    def _reload(self) -> None:
        """Read policies and price lists again, fresh, keeping what this batch publishes."""
        if self.cache is None:
            return
        self._policies, self._prices = (
            self.cache.policies(fresh=True),
            self.cache.prices(fresh=True),
        )
        for event in self._published_here:
            if isinstance(event, PolicyPublished):
                self._policies.add(event, None)
            else:
                self._prices.add(event)

    def _check_citations(self, event: ResidencyDecided) -> None:
        if not all(self.policies.is_published(c) for c in event.policies):
            self._reload()
        for index, citation in enumerate(event.policies):
            if not self.policies.is_published(citation):
                raise ValidationError(
                    f"cites policy {citation.policy_id} v{citation.version} "
                    f"(digest {citation.digest[:12]}…), which was never published with that text; "
                    "run `pactledger policy publish` first",
                    field=f"payload.policies.{index}",
                )


def _with_payload(entry: EntryInput, event: Event) -> EntryInput:
    payload = event.payload()
    return entry if payload == entry.payload else entry.rewritten(payload)


def _require_stream(entry: EntryInput, stream: str) -> None:
    if entry.stream != stream:
        raise ValidationError(
            f"a {entry.type} entry goes on stream '{stream}', not '{entry.stream}'",
            field="stream",
        )


def _check_policy_text(event: PolicyPublished) -> None:
    try:
        document = parse_document(event.text, file=f"{event.policy_id} v{event.version}")
    except PolicyError as exc:
        raise ValidationError(
            f"is not a valid policy document: {exc}", field="payload.text"
        ) from None
    said = (event.policy_id, event.version, event.kind)
    written = (document.document.id, document.document.version, document.document.kind)
    if said != written:
        raise ValidationError(
            f"the text is {written[2]} policy {written[0]} v{written[1]}, but the entry says "
            f"{said[2]} policy {said[0]} v{said[1]}",
            field="payload.text",
        )
