"""Audit queries over the log: recorded residency decisions and routed inferences, filtered and
paged with stable cursors.

Guarantees: results are in ``seq`` order and a cursor is the last ``seq`` looked at, so pages
never repeat or skip an entry, whatever is appended meanwhile (the log only grows at its end);
a page reads at most ``scan_budget`` entries of the type, so a selective filter returns a
short (even empty) page with a cursor to continue rather than scanning the whole log in one
request; only the caller's tenants are read. The filters on payload fields are applied to the
payload as the catalogue reads it (current version, upcast).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.app.published import read_event
from ledger.errors import ValidationError
from ledger.events import Catalogue, Event, InferenceRouted, ResidencyDecided
from ledger.log.entry import SealedEntry, format_time
from ledger.log.ports import LogStore

MAX_PAGE = 1000
SCAN_FACTOR = 20  # a page reads at most SCAN_FACTOR × limit entries of the type


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    scanned: int

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor, "scanned": self.scanned}


def parse_cursor(cursor: str | None) -> int:
    """The seq a cursor continues after (-1: from the start)."""
    if cursor is None or cursor == "":
        return -1
    if not cursor.startswith("s") or not cursor[1:].isdigit():
        raise ValidationError("is not a cursor this API returned", field="cursor")
    return int(cursor[1:])


def decisions(
    store: LogStore,
    catalogue: Catalogue,
    *,
    tenants: Collection[str] | None,
    cursor: str | None = None,
    limit: int = 100,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
    outcome: str | None = None,
    policy: str | None = None,
    region: str | None = None,
) -> Page:
    """Recorded ``ResidencyDecided`` entries. ``policy`` is ``ID``, ``ID@VERSION`` or a digest;
    ``region`` matches the candidate or the chosen region."""

    def keep(event: Event) -> bool:
        assert isinstance(event, ResidencyDecided)
        if outcome is not None and event.outcome != outcome:
            return False
        if region is not None and region not in (event.candidate_region, event.chosen_region):
            return False
        return policy is None or any(
            policy in (c.policy_id, f"{c.policy_id}@{c.version}", c.digest) for c in event.policies
        )

    return _page(
        store, catalogue, ResidencyDecided.TYPE, keep, tenants, cursor, limit,
        occurred_from, occurred_to,
    )  # fmt: skip


def inferences(
    store: LogStore,
    catalogue: Catalogue,
    *,
    tenants: Collection[str] | None,
    cursor: str | None = None,
    limit: int = 100,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
    business_unit: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    region: str | None = None,
) -> Page:
    """Recorded ``InferenceRouted`` entries."""
    wanted = {
        "business_unit": business_unit,
        "model": model,
        "provider": provider,
        "region": region,
    }
    filters = {name: value for name, value in wanted.items() if value is not None}

    def keep(event: Event) -> bool:
        return all(getattr(event, name) == value for name, value in filters.items())

    return _page(
        store, catalogue, InferenceRouted.TYPE, keep, tenants, cursor, limit,
        occurred_from, occurred_to,
    )  # fmt: skip


def _page(
    store: LogStore,
    catalogue: Catalogue,
    event_type: str,
    keep: Callable[[Event], bool],
    tenants: Collection[str] | None,
    cursor: str | None,
    limit: int,
    occurred_from: datetime | None,
    occurred_to: datetime | None,
) -> Page:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"must be between 1 and {MAX_PAGE}", field="limit")
    occurred_from = utc_instant(occurred_from, "from")
    occurred_to = utc_instant(occurred_to, "to")
    if occurred_from and occurred_to and occurred_from >= occurred_to:
        raise ValidationError("must be after 'from'", field="to")
    after = parse_cursor(cursor)
    budget = SCAN_FACTOR * limit
    items: list[dict[str, Any]] = []
    scanned = 0
    exhausted = False
    while len(items) < limit and scanned < budget:
        chunk = store.find_entries(
            event_type=event_type,
            after=after,
            limit=min(budget - scanned, max(limit, 200)),
            tenants=tenants,
            occurred_from=occurred_from,
            occurred_to=occurred_to,
        )
        if not chunk:
            exhausted = True
            break
        for entry in chunk:
            scanned += 1
            after = entry.seq
            event = read_event(catalogue, entry)
            if keep(event):
                items.append(_item(entry, event))
                if len(items) == limit:
                    break
    # Unless the log ran out, say where to continue: after a full page or a spent scan budget
    # more may match (so the last page can be empty; its null cursor says it is the last).
    return Page(items, None if exhausted else f"s{after}", scanned)


def _item(entry: SealedEntry, event: Event) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "tenant": entry.tenant,
        "stream": entry.stream,
        "occurred_at": format_time(entry.occurred_at),
        **event.payload(),
    }


def utc_instant(moment: datetime | None, field: str) -> datetime | None:
    """``moment`` in UTC; a ValidationError naming ``field`` when it has no zone or its UTC
    time falls outside the years 1-9999 (``0001-01-01T00:00:00+01:00``)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValidationError("a time needs a zone, e.g. 2026-11-01T00:00:00Z", field=field)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            "is outside the years 1-9999 once converted to UTC", field=field
        ) from None
