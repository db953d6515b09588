"""What the ledger has published: policy texts and price lists, read back from their streams.

Guarantees: policies live on stream ``policy:<policy_id>`` and price lists on
``price-list:<price_list_id>`` (admission enforces it), so both are read with one index range
scan, never a scan of the log; a (policy id, version) names exactly one text, and a
(price list id, version) exactly one price list — re-publishing either with other content is
refused, re-publishing it unchanged is harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.errors import PolicyError, ValidationError
from ledger.events import Catalogue, Event, PolicyPublished, PriceListPublished
from ledger.events.governance import PolicyCitation
from ledger.events.pricing import PriceBook
from ledger.log.entry import SealedEntry
from ledger.log.ports import LogStore
from ledger.policy import PolicyRef, PolicySet, policy_set_from_texts

POLICY_STREAM = "policy:"
PRICE_LIST_STREAM = "price-list:"


def read_event(catalogue: Catalogue, entry: SealedEntry) -> Event:
    """The entry's payload read as the current version of its type."""
    payload: dict[str, Any] = orjson.loads(entry.entry_bytes)["payload"]
    return catalogue.read(entry.type, entry.schema_version, payload)


@dataclass(frozen=True)
class PublishedPolicy:
    event: PolicyPublished
    seq: int | None  # None while it is still in the batch being admitted

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(self.event.policy_id, self.event.version, self.event.digest)


@dataclass
class PolicyRegistry:
    """Every published policy version, by (policy id, version)."""

    versions: dict[tuple[str, int], PublishedPolicy] = field(default_factory=dict)

    def copy(self) -> PolicyRegistry:
        return PolicyRegistry(dict(self.versions))

    def add(self, event: PolicyPublished, seq: int | None) -> None:
        key = (event.policy_id, event.version)
        known = self.versions.get(key)
        if known is None:
            self.versions[key] = PublishedPolicy(event, seq)
        elif known.event.digest != event.digest:
            where = f" at seq {known.seq}" if known.seq is not None else " earlier in this batch"
            raise ValidationError(
                f"policy {event.policy_id} v{event.version} was already published{where} with "
                f"another text (digest {known.event.digest[:12]}…); publish the change as "
                f"version {self.next_version(event.policy_id)}",
                field="payload.text",
            )

    def next_version(self, policy_id: str) -> int:
        return 1 + max((v for p, v in self.versions if p == policy_id), default=0)

    def is_published(self, ref: PolicyRef | PolicyCitation) -> bool:
        version = ref.version
        known = self.versions.get((ref.policy_id, version))
        return known is not None and known.event.digest == ref.digest

    def require_published(self, refs: Iterable[PolicyRef]) -> None:
        """PolicyError for the first ref that was never published with that exact text."""
        for ref in refs:
            if not self.is_published(ref):
                known = self.versions.get((ref.policy_id, ref.version))
                detail = (
                    f"; v{ref.version} was published with another text "
                    f"(digest {known.event.digest[:12]}…)"
                    if known
                    else ""
                )
                raise PolicyError(
                    f"policy {ref.policy_id} v{ref.version} (digest {ref.digest[:12]}…) was never "
                    f"published{detail}: run `pactledger policy publish` on the policy directory "
                    "you decide with first"
                )

    def text_of(self, ref: PolicyRef | PolicyCitation) -> str | None:
        known = self.versions.get((ref.policy_id, ref.version))
        return known.event.text if known and known.event.digest == ref.digest else None

    def latest(self) -> list[PublishedPolicy]:
        """The newest version of every published policy id."""
        newest: dict[str, PublishedPolicy] = {}
        for (policy_id, version), published in sorted(self.versions.items()):
            if policy_id not in newest or version > newest[policy_id].event.version:
                newest[policy_id] = published
        return list(newest.values())

    def latest_set(self) -> PolicySet:
        """The newest published version of every policy, compiled."""
        latest = self.latest()
        if not latest:
            raise PolicyError("no policy is published yet: run `pactledger policy publish`")
        return policy_set_from_texts(
            (f"{p.event.policy_id} v{p.event.version} (seq {p.seq})", p.event.text) for p in latest
        )


def read_policies(store: LogStore, catalogue: Catalogue) -> PolicyRegistry:
    registry = PolicyRegistry()
    for entry in store.entries_in_streams(POLICY_STREAM):
        event = read_event(catalogue, entry)
        if isinstance(event, PolicyPublished):
            registry.add(event, entry.seq)
    return registry


@dataclass
class PriceLists:
    """Every published price list version, and the book that prices requests with them."""

    book: PriceBook = field(default_factory=PriceBook)
    versions: dict[tuple[str, int], PriceListPublished] = field(default_factory=dict)

    def copy(self) -> PriceLists:
        copied = PriceLists()
        for event in self.versions.values():
            copied.add(event)
        return copied

    def add(self, event: PriceListPublished) -> None:
        key = (event.price_list_id, event.version)
        known = self.versions.get(key)
        if known is None:
            self.versions[key] = event
            self.book.add(event)
        elif known != event:
            raise ValidationError(
                f"price list {event.price_list_id} v{event.version} was already published "
                "with other content; publish the change as a new version",
                field="payload.version",
            )


def read_price_lists(store: LogStore, catalogue: Catalogue) -> PriceLists:
    lists = PriceLists()
    for entry in store.entries_in_streams(PRICE_LIST_STREAM):
        event = read_event(catalogue, entry)
        if isinstance(event, PriceListPublished):
            lists.add(event)
    return lists


class PublishedCache:
    """Policies and price lists as last read, re-read when older than ``max_age`` seconds.

    Appends by this process invalidate it at once (:meth:`invalidate`); what another process
    publishes is seen within ``max_age``. Readers get their own copies to extend.
    """

    def __init__(self, store: LogStore, catalogue: Catalogue, *, max_age: float = 1.0) -> None:
        self._store, self._catalogue, self._max_age = store, catalogue, max_age
        self._lock = threading.Lock()
        self._policies: tuple[float, PolicyRegistry] | None = None
        self._prices: tuple[float, PriceLists] | None = None

    def policies(self, *, fresh: bool = False) -> PolicyRegistry:
        with self._lock:
            held = self._policies
        if held is None or fresh or time.monotonic() - held[0] > self._max_age:
            held = (time.monotonic(), read_policies(self._store, self._catalogue))
            with self._lock:
                self._policies = held
        return held[1].copy()

    def prices(self, *, fresh: bool = False) -> PriceLists:
        with self._lock:
            held = self._prices
        if held is None or fresh or time.monotonic() - held[0] > self._max_age:
            held = (time.monotonic(), read_price_lists(self._store, self._catalogue))
            with self._lock:
                self._prices = held
        return held[1].copy()

    def invalidate(self) -> None:
        with self._lock:
            self._policies = self._prices = None
