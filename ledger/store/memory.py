"""An in-memory :class:`~ledger.log.ports.LogStore`: the reference the SQL store is tested
against, and a fake for the pure core's tests. Not durable; a lock serialises appends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime

from ledger.access import ApiKeyRecord
from ledger.errors import NotFoundError
from ledger.integrity.merkle import Node, resolve_nodes
from ledger.log.entry import EntryLike, Receipt, SealedEntry, utc_now
from ledger.log.ids import uuid7_batch
from ledger.log.ports import CheckpointRecord, check_seq, initial_head
from ledger.log.sequencer import Head, KeyedEntry, plan_append


class MemoryLogStore:
    def __init__(self, origin: str, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._head = initial_head(origin)
        self._clock = clock
        self._lock = threading.Lock()
        self.entries: list[SealedEntry] = []
        self.nodes: dict[Node, bytes] = {}
        self._checkpoints: list[CheckpointRecord] = []
        self._keyed: dict[tuple[str, str], KeyedEntry] = {}
        self._versions: dict[str, int] = {}

    def reading(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # every read is already consistent under the lock

    def head(self) -> Head:
        return self._head

    def append(self, inputs: Sequence[EntryLike]) -> list[Receipt]:
        with self._lock:
            now = self._clock()
            plan = plan_append(
                self._head,
                inputs,
                stream_versions=self._versions,
                keyed=self._keyed,
                recorded_at=now,
                event_ids=iter(uuid7_batch(len(inputs), now)),
            )
            for entry in plan.entries:
                self.entries.append(entry)
                self._versions[entry.stream] = entry.stream_version
                if entry.idempotency_key is not None and entry.request_digest is not None:
                    self._keyed[(entry.tenant, entry.idempotency_key)] = KeyedEntry(
                        seq=entry.seq,
                        event_id=entry.event_id,
                        stream=entry.stream,
                        stream_version=entry.stream_version,
                        leaf_hash=entry.leaf_hash,
                        chain_hash=entry.chain_hash,
                        request_digest=entry.request_digest,
                    )
            for level, index, digest in plan.nodes:
                self.nodes[(level, index)] = digest
            assert plan.head is not None
            self._head = plan.head
            return plan.receipts

    def entry(self, seq: int) -> SealedEntry:
        check_seq(seq, len(self.entries))
        return self.entries[seq]

    def iter_entries(self, *, start: int = 0, batch_size: int = 5000) -> Iterator[SealedEntry]:
        yield from self.entries[start:]

    def stream_entries(self, stream: str) -> list[SealedEntry]:
        return [entry for entry in self.entries if entry.stream == stream]

    def entries_in_streams(self, prefix: str) -> list[SealedEntry]:
        return [entry for entry in self.entries if entry.stream.startswith(prefix)]

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
        found = []
        for entry in self.entries[max(after + 1, 0) :]:
            if (
                entry.type == event_type
                and (tenants is None or entry.tenant in tenants)
                and (occurred_from is None or entry.occurred_at >= occurred_from)
                and (occurred_to is None or entry.occurred_at < occurred_to)
            ):
                found.append(entry)
                if len(found) == limit:
                    break
        return found

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        return resolve_nodes(
            nodes,
            read_stored=lambda wanted: {n: self.nodes[n] for n in wanted if n in self.nodes},
            read_leaves=lambda wanted: {
                i: self.entries[i].leaf_hash for i in wanted if 0 <= i < len(self.entries)
            },
        )

    def nodes_in(self, level: int, first: int, last: int) -> Mapping[int, bytes]:
        return {
            index: self.nodes[(level, index)]
            for index in range(first, last + 1)
            if (level, index) in self.nodes
        }

    def add_checkpoint(self, record: CheckpointRecord) -> CheckpointRecord:
        for existing in self._checkpoints:
            if (existing.key_id, existing.tree_size) == (record.key_id, record.tree_size):
                return existing
        self._checkpoints.append(record)
        self._checkpoints.sort(key=lambda r: (r.tree_size, r.created_at))
        return record

    def latest_checkpoint(self) -> CheckpointRecord | None:
        records = self.checkpoints()
        return records[-1] if records else None

    def checkpoints(self) -> list[CheckpointRecord]:
        return list(self._checkpoints)


class MemoryKeyStore:
    """API keys in a dict: the reference :class:`~ledger.access.KeyStore`."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKeyRecord] = {}

    def add_key(self, record: ApiKeyRecord) -> None:
        self.keys[record.key_id] = record

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return self.keys.get(key_id)

    def list_keys(self) -> list[ApiKeyRecord]:
        return sorted(self.keys.values(), key=lambda record: record.created_at)

    def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord:
        record = self.keys.get(key_id)
        if record is None:
            raise NotFoundError(f"no API key '{key_id}': see `pactledger keys list`")
        if record.revoked_at is None:
            record = self.keys[key_id] = replace(record, revoked_at=at)
        return record
