"""The storage port of the log. The in-memory and SQL stores implement it and pass one contract
suite (tests/contract); everything above the store (use cases, CLI, API) depends only on this.

Store guarantees: :meth:`LogStore.append` is atomic (the whole batch or nothing) and serialised
by a lock the storage holds, so commit order equals ``seq`` order; the entries, node and
checkpoint tables are append-only; reads never block the writer for long.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ledger.errors import NotFoundError
from ledger.integrity.chain import GENESIS_CHAIN_HASH
from ledger.integrity.merkle import EMPTY_ROOT, Node
from ledger.log.entry import EntryLike, Receipt, SealedEntry
from ledger.log.sequencer import Head


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signed checkpoint as the ledger keeps it."""

    tree_size: int
    root_hash: bytes
    key_name: str
    key_id: bytes
    note: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VerificationRun:
    """One full verification of the log: when, over what, and what it found."""

    started_at: datetime
    finished_at: datetime
    tree_size: int
    root_hash: bytes | None  # None when it failed before reaching the end
    ok: bool
    kind: str | None  # the failure's kind (TamperedLogError.kind), or "error"
    error: str | None
    source: str  # "cli", "dashboard:<key id>", …


class VerificationLog(Protocol):
    """Port: where verification runs are recorded."""

    def record(self, run: VerificationRun) -> None: ...

    def latest(self) -> VerificationRun | None: ...


class LogStore(Protocol):
    def reading(self) -> AbstractContextManager[None]:
        """Reads made inside the block by this thread share one transaction (on SQL, one
        connection checkout and one round trip to begin and end it instead of one per read):
        for an answer built from several reads, such as a provenance lookup."""
        ...

    def head(self) -> Head:
        """The log's end; raises ConfigurationError if the ledger was never initialised."""
        ...

    def append(self, inputs: Sequence[EntryLike]) -> list[Receipt]:
        """Append a batch atomically; one receipt per input, in order. Raw entry objects are
        validated inside the write (a refused one aborts the batch, its error carries
        ``.index``), so a store may overlap validation with the database's work."""
        ...

    def entry(self, seq: int) -> SealedEntry:
        """One entry; NotFoundError if ``seq`` is not in the log."""
        ...

    def iter_entries(self, *, start: int = 0, batch_size: int = 5000) -> Iterator[SealedEntry]:
        """Every stored entry from ``start`` in ``seq`` order, read in batches (bounded memory)."""
        ...

    def stream_entries(self, stream: str) -> list[SealedEntry]:
        """Every entry of one stream, in order (the (stream, stream_version) index)."""
        ...

    def entries_in_streams(self, prefix: str) -> list[SealedEntry]:
        """Every entry whose stream name starts with ``prefix``, in ``seq`` order (an index
        range scan: meant for the small governance streams such as ``policy:``)."""
        ...

    def find_entries(
        self,
        *,
        event_type: str,
        after: int,
        limit: int,
        tenants: Collection[str] | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
    ) -> list[SealedEntry]:
        """Up to ``limit`` entries of one type with ``seq > after``, in ``seq`` order, of the
        given tenants (None: all) and occurred in ``[occurred_from, occurred_to)``."""
        ...

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        """Complete-subtree hashes: level 0 is the leaf hash of entry ``index``; levels below
        merkle.STORED_MIN_LEVEL are recomputed from leaves, the others are read as stored."""
        ...

    def nodes_in(self, level: int, first: int, last: int) -> Mapping[int, bytes]:
        """Stored hashes of level ``level`` (>= STORED_MIN_LEVEL) with index in [first, last]."""
        ...

    def add_checkpoint(self, record: CheckpointRecord) -> CheckpointRecord:
        """Store a checkpoint; if one by the same key at the same size exists, return that."""
        ...

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The checkpoint of the largest tree size (the newest), or None."""
        ...

    def checkpoints(self) -> list[CheckpointRecord]:
        """All stored checkpoints, by tree size."""
        ...


def initial_head(origin: str) -> Head:
    return Head(
        origin=origin, size=0, chain_head=GENESIS_CHAIN_HASH, frontier=b"", root_hash=EMPTY_ROOT
    )


def check_seq(seq: int, size: int) -> None:
    if size == 0:
        raise NotFoundError(f"no entry at seq {seq}: the log is empty")
    if not 0 <= seq < size:
        raise NotFoundError(f"no entry at seq {seq}: the log holds seq 0 to {size - 1}")
