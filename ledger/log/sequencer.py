"""Sealing a batch of inputs onto the end of the log: the one append algorithm every store runs.

A store takes its single-writer lock, reads the head, the current version of each stream in the
batch and the entries already holding the batch's idempotency keys, then seals the inputs one by
one with a :class:`Sealer` (streaming each sealed row to the database) or all at once with
:func:`plan_append`. Either raises at the first refused input, and the store rolls its
transaction back: nothing of the batch is written. Invariants enforced:

* ``seq`` continues the head's size without gaps; each new entry's ``prev_hash`` is the previous
  ``chain_hash``; every complete Merkle subtree of 16 leaves or more that the batch closes is
  returned for storage (smaller ones are recomputed from leaves, see merkle.STORED_MIN_LEVEL).
* An idempotency key already used by the tenant with the same request returns the original
  receipt (``duplicate=True``) and appends nothing; with a different request it is an
  :class:`~ledger.errors.IdempotencyConflictError`. The same holds inside one batch.
* ``expected_version`` must equal the stream's version just before that entry
  (:class:`~ledger.errors.ConcurrencyError` otherwise).
* Every entry is canonical JSON of at most 64 KiB, occurred no later than 5 minutes after
  ``recorded_at``; failures are :class:`~ledger.errors.ValidationError` with ``index`` set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256

from ledger.errors import (
    ConcurrencyError,
    IdempotencyConflictError,
    LedgerError,
    ValidationError,
)
from ledger.integrity.chain import CHAIN_PREFIX
from ledger.integrity.merkle import LEAF_PREFIX, STORED_MIN_LEVEL, CompactRange
from ledger.log.entry import (
    MAX_ENTRY_BYTES,
    EntryInput,
    EntryLike,
    Receipt,
    SealedEntry,
    entry_bytes,
    format_time,
    parse_entry,
    payload_bytes,
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


class Sealer:
    """Seals inputs one at a time onto the end of the log, so a store can stream each sealed
    entry to the database while the next is being sealed. Raising leaves the caller to roll
    back what it wrote; :func:`plan_append` is the all-at-once form."""

    def __init__(
        self,
        head: Head,
        *,
        stream_versions: Mapping[str, int],
        keyed: Mapping[tuple[str, str], KeyedEntry],
        recorded_at: datetime,
        event_ids: Iterator[str],
    ) -> None:
        self._origin = head.origin
        self._versions = dict(stream_versions)
        self._keyed = keyed
        self._compact = head.compact_range()
        self._chain = head.chain_head
        self._recorded_at = recorded_at
        self._recorded_text = format_time(recorded_at)
        self._latest_allowed = recorded_at + MAX_CLOCK_SKEW
        self._event_ids = event_ids
        self._seen: dict[tuple[str, str], tuple[bytes, int]] = {}  # key -> (digest, position)
        self._found: list[_ReceiptFields] = []  # one per input, in order
        self.nodes: list[tuple[int, int, bytes]] = []  # closed subtrees the store keeps
        self.occurred_text = ""  # the hashed text of the last sealed entry's occurred_at

    def seal(self, index: int, inp: EntryInput) -> SealedEntry | None:
        """Seal one input; None when it is an idempotent duplicate. Errors carry ``.index``."""
        try:
            return self._seal(inp, payload_bytes(inp))
        except LedgerError as exc:
            exc.index = index  # type: ignore[attr-defined]
            raise

    def _seal(self, inp: EntryInput, payload: bytes) -> SealedEntry | None:
        found = self._found
        digest = None
        if inp.idempotency_key is not None:
            key = (inp.tenant, inp.idempotency_key)
            digest = inp.request_digest(payload)
            if key in self._seen:
                first_digest, position = self._seen[key]
                if first_digest != digest:
                    raise IdempotencyConflictError(
                        tenant=inp.tenant, key=inp.idempotency_key, seq=None
                    )
                found.append((*found[position][:6], True))
                return None
            existing = self._keyed.get(key)
            if existing is not None:
                if existing.request_digest != digest:
                    raise IdempotencyConflictError(
                        tenant=inp.tenant, key=inp.idempotency_key, seq=existing.seq
                    )
                self._seen[key] = (digest, len(found))
                found.append(_receipt_fields(existing))
                return None
            self._seen[key] = (digest, len(found))
        current = self._versions.get(inp.stream, 0)
        if inp.expected_version is not None and inp.expected_version != current:
            raise ConcurrencyError(stream=inp.stream, expected=inp.expected_version, actual=current)
        occurred = inp.occurred_at
        if occurred is None:
            self.occurred_text = self._recorded_text
        else:
            if occurred > self._latest_allowed:
                raise ValidationError(
                    "occurred_at is more than 5 minutes in the future of the ledger clock",
                    field="occurred_at",
                )
            self.occurred_text = format_time(occurred)
        compact = self._compact
        seq = compact.size
        event_id = next(self._event_ids)
        data = entry_bytes(
            inp,
            payload,
            seq=seq,
            event_id=event_id,
            stream_version=current + 1,
            recorded_at=self._recorded_text,
            occurred_at=self.occurred_text,
        )
        if len(data) > MAX_ENTRY_BYTES:
            raise ValidationError(
                f"entry is {len(data)} bytes canonical, over the {MAX_ENTRY_BYTES}-byte limit",
                field="payload",
            )
        leaf = sha256(LEAF_PREFIX + data).digest()  # merkle.leaf_hash, inlined: hot path
        prev = self._chain
        chain = self._chain = sha256(CHAIN_PREFIX + prev + leaf).digest()  # chain.chain_next
        self._versions[inp.stream] = current + 1
        closed = compact.append(leaf)
        if len(closed) >= STORED_MIN_LEVEL:
            self.nodes.extend(closed[STORED_MIN_LEVEL - 1 :])
        found.append((seq, event_id, inp.stream, current + 1, leaf, chain, False))
        return SealedEntry(
            seq,
            event_id,
            inp.stream,
            current + 1,
            inp.type,
            inp.schema_version,
            inp.tenant,
            occurred or self._recorded_at,
            self._recorded_at,
            inp.idempotency_key,
            digest,
            data,
            leaf,
            prev,
            chain,
        )

    def finish(self) -> tuple[list[Receipt], Head]:
        """The receipts, one per input in order, and the new head."""
        compact = self._compact
        size = compact.size
        receipts = [Receipt(*f[:6], tree_size=size, duplicate=f[6]) for f in self._found]
        head = Head(
            origin=self._origin,
            size=size,
            chain_head=self._chain,
            frontier=compact.to_bytes(),
            root_hash=compact.root(),
        )
        return receipts, head


def plan_append(
    head: Head,
    inputs: Sequence[EntryLike],
    *,
    stream_versions: Mapping[str, int],
    keyed: Mapping[tuple[str, str], KeyedEntry],
    recorded_at: datetime,
    event_ids: Iterator[str],
) -> AppendPlan:
    """Seal ``inputs`` after ``head``; raise a LedgerError (with ``.index``) and plan nothing
    if any input is refused."""
    sealer = Sealer(
        head,
        stream_versions=stream_versions,
        keyed=keyed,
        recorded_at=recorded_at,
        event_ids=event_ids,
    )
    entries = []
    for index, inp in enumerate(parse_entries(inputs)):
        sealed = sealer.seal(index, inp)
        if sealed is not None:
            entries.append(sealed)
    receipts, new_head = sealer.finish()
    return AppendPlan(entries=entries, nodes=sealer.nodes, receipts=receipts, head=new_head)


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


def parse_entries(inputs: Sequence[EntryLike]) -> list[EntryInput]:
    """Validate every raw input (validated ones pass through). Errors carry ``.index``."""
    parsed = []
    for index, data in enumerate(inputs):
        try:
            parsed.append(parse_entry(data))
        except LedgerError as exc:
            exc.index = index  # type: ignore[attr-defined]
            raise
    return parsed
