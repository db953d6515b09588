"""Sealing a batch of inputs onto the end of the log: the one append algorithm every store runs.

A store takes its single-writer lock, reads the head, the current version of each stream in the
batch and the entries already holding the batch's idempotency keys, and calls
:func:`plan_append`. The plan is pure and all-or-nothing: it either raises (and the store writes
nothing) or returns every row to write. Invariants it enforces:

* ``seq`` continues the head's size without gaps; each new entry's ``prev_hash`` is the previous
  ``chain_hash``; every complete Merkle subtree the batch closes is returned for storage.
* An idempotency key already used by the tenant with the same request returns the original
  receipt (``duplicate=True``) and appends nothing; with a different request it is an
  :class:`~ledger.errors.IdempotencyConflictError`. The same holds inside one batch.
* ``expected_version`` must equal the stream's version just before that entry
  (:class:`~ledger.errors.ConcurrencyError` otherwise).
* Every entry is canonical JSON of at most 64 KiB, occurred no later than 5 minutes after
  ``recorded_at``; failures are :class:`~ledger.errors.ValidationError` with ``index`` set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.errors import (
    ConcurrencyError,
    IdempotencyConflictError,
    LedgerError,
    ValidationError,
)
from ledger.integrity.canonical import canonical_bytes
from ledger.integrity.chain import chain_next
from ledger.integrity.merkle import CompactRange, leaf_hash
from ledger.log.entry import (
    MAX_ENTRY_BYTES,
    EntryInput,
    Receipt,
    SealedEntry,
    entry_object,
    format_time,
)

MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Head:
    """The log's current end: size, chain head and the Merkle compact range."""

    origin: str
    size: int
    chain_head: bytes
    frontier: bytes
    root_hash: bytes

    def compact_range(self) -> CompactRange:
        return CompactRange.from_bytes(self.size, self.frontier)


@dataclass(frozen=True, slots=True)
class KeyedEntry:
    """What the log already holds for one (tenant, idempotency key)."""

    seq: int
    event_id: str
    stream: str
    stream_version: int
    leaf_hash: bytes
    chain_hash: bytes
    request_digest: bytes


@dataclass(slots=True)
class AppendPlan:
    entries: list[SealedEntry] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    head: Head | None = None


def plan_append(
    head: Head,
    inputs: Sequence[EntryInput],
    *,
    stream_versions: Mapping[str, int],
    keyed: Mapping[tuple[str, str], KeyedEntry],
    recorded_at: datetime,
    new_event_id: Callable[[], str],
) -> AppendPlan:
    """Seal ``inputs`` after ``head``; raise a LedgerError (with ``.index``) and plan nothing
    if any input is refused."""
    plan = AppendPlan()
    versions = dict(stream_versions)
    compact = head.compact_range()
    chain = head.chain_head
    seen: dict[tuple[str, str], tuple[bytes, int]] = {}  # key -> (digest, position in found)
    found: list[_ReceiptFields] = []  # one per input; Receipts are built once the size is known
    latest_allowed = recorded_at + MAX_CLOCK_SKEW
    recorded_text = format_time(recorded_at)
    for index, inp in enumerate(inputs):
        try:
            digest = None
            if inp.idempotency_key is not None:
                key = (inp.tenant, inp.idempotency_key)
                digest = inp.request_digest()
                if key in seen:
                    first_digest, position = seen[key]
                    if first_digest != digest:
                        raise IdempotencyConflictError(
                            tenant=inp.tenant, key=inp.idempotency_key, seq=None
                        )
                    found.append((*found[position][:6], True))
                    continue
                existing = keyed.get(key)
                if existing is not None:
                    if existing.request_digest != digest:
                        raise IdempotencyConflictError(
                            tenant=inp.tenant, key=inp.idempotency_key, seq=existing.seq
                        )
                    found.append(_receipt_fields(existing))
                    seen[key] = (digest, len(found) - 1)
                    continue
                seen[key] = (digest, len(found))
            current = versions.get(inp.stream, 0)
            if inp.expected_version is not None and inp.expected_version != current:
                raise ConcurrencyError(
                    stream=inp.stream, expected=inp.expected_version, actual=current
                )
            if inp.occurred_at is not None and inp.occurred_at > latest_allowed:
                raise ValidationError(
                    "occurred_at is more than 5 minutes in the future of the ledger clock",
                    field="occurred_at",
                )
            seq = compact.size
            event_id = new_event_id()
            obj = entry_object(
                inp,
                seq=seq,
                event_id=event_id,
                stream_version=current + 1,
                recorded_at=recorded_text,
            )
            try:
                data = canonical_bytes(obj)
            except ValidationError as exc:
                raise ValidationError(exc.reason, field=_payload_field(exc.field)) from None
            if len(data) > MAX_ENTRY_BYTES:
                raise ValidationError(
                    f"entry is {len(data)} bytes canonical, over the {MAX_ENTRY_BYTES}-byte limit",
                    field="payload",
                )
        except LedgerError as exc:
            exc.index = index  # type: ignore[attr-defined]
            raise
        leaf = leaf_hash(data)
        prev = chain
        chain = chain_next(prev, leaf)
        versions[inp.stream] = current + 1
        plan.nodes.extend(compact.append(leaf))
        plan.entries.append(
            SealedEntry(
                seq=seq,
                event_id=event_id,
                stream=inp.stream,
                stream_version=current + 1,
                type=inp.type,
                schema_version=inp.schema_version,
                tenant=inp.tenant,
                occurred_at=inp.occurred_at or recorded_at,
                recorded_at=recorded_at,
                idempotency_key=inp.idempotency_key,
                request_digest=digest,
                entry_bytes=data,
                leaf_hash=leaf,
                prev_hash=prev,
                chain_hash=chain,
            )
        )
        found.append((seq, event_id, inp.stream, current + 1, leaf, chain, False))
    size = compact.size
    plan.receipts = [Receipt(*fields[:6], tree_size=size, duplicate=fields[6]) for fields in found]
    plan.head = Head(
        origin=head.origin,
        size=size,
        chain_head=chain,
        frontier=compact.to_bytes(),
        root_hash=compact.root(),
    )
    return plan


def _payload_field(path: str | None) -> str:
    """Turn the canonicalizer's JSON path ($.payload.x) into the input's field name."""
    if not path:
        return "payload"
    return path.removeprefix("$.") if path.startswith("$.") else path


_ReceiptFields = tuple[int, str, str, int, bytes, bytes, bool]


def _receipt_fields(existing: KeyedEntry) -> _ReceiptFields:
    return (
        existing.seq,
        existing.event_id,
        existing.stream,
        existing.stream_version,
        existing.leaf_hash,
        existing.chain_hash,
        True,
    )
