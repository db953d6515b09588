"""The LogStore contract: one suite that the in-memory, SQLite and PostgreSQL stores all pass.

It pins what every store must guarantee: gapless seq, hashes that recompute from the stored
bytes, all-or-nothing batches, idempotency, expected_version, O(log n) proof reads, checkpoint
storage, and that a refused batch writes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785

from ledger.errors import (
    ConcurrencyError,
    IdempotencyConflictError,
    LedgerError,
    NotFoundError,
    ValidationError,
)
from ledger.integrity.chain import GENESIS_CHAIN_HASH, chain_next
from ledger.integrity.merkle import (
    Node,
    leaf_hash,
    prove_consistency,
    prove_inclusion,
    root_from_leaves,
)
from ledger.log.entry import EntryInput
from ledger.log.ports import CheckpointRecord, LogStore


def entry(n: int, **fields: Any) -> EntryInput:
    data: dict[str, Any] = {
        "type": "InferenceRouted",
        "stream": f"request:{n}",
        "tenant": "acme",
        "payload": {"n": n, "model": "claude-sonnet-4-5", "cost": "0.0042"},
    }
    data.update(fields)
    return EntryInput.model_validate(data)


def all_entries(store: LogStore) -> list[Any]:
    return list(store.iter_entries(batch_size=7))


def assert_unchanged(store: LogStore, size: int, root: bytes) -> None:
    head = store.head()
    assert (head.size, head.root_hash) == (size, root)
    assert len(all_entries(store)) == size


def test_a_new_log_is_empty(store: LogStore) -> None:
    head = store.head()
    assert head.size == 0
    assert head.chain_head == GENESIS_CHAIN_HASH
    assert head.root_hash == root_from_leaves([])
    assert all_entries(store) == []


def test_batches_get_gapless_seq_and_hashes_that_recompute(store: LogStore) -> None:
    receipts = []
    for size in (1, 5, 13, 2):
        receipts += store.append([entry(1000 * size + i) for i in range(size)])
    assert [r.seq for r in receipts] == list(range(21))
    stored = all_entries(store)
    assert [e.seq for e in stored] == list(range(21))
    chain = GENESIS_CHAIN_HASH
    for receipt, sealed in zip(receipts, stored, strict=True):
        assert sealed.leaf_hash == leaf_hash(sealed.entry_bytes) == receipt.leaf_hash
        assert sealed.prev_hash == chain
        chain = chain_next(chain, sealed.leaf_hash)
        assert sealed.chain_hash == chain == receipt.chain_hash
        assert sealed.event_id == receipt.event_id
    head = store.head()
    assert head.size == 21
    assert head.chain_head == chain
    assert head.root_hash == root_from_leaves(e.leaf_hash for e in stored)
    assert receipts[-1].tree_size == 21


def test_entry_bytes_are_the_rfc8785_form_of_the_entry(store: LogStore) -> None:
    occurred = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    [receipt] = store.append(
        [entry(7, occurred_at=occurred, payload={"ratio": 0.5, "€": "x", "a": [1, None, True]})]
    )
    sealed = store.entry(receipt.seq)
    obj = {
        "seq": 0,
        "event_id": receipt.event_id,
        "stream": "request:7",
        "stream_version": 1,
        "type": "InferenceRouted",
        "schema_version": 1,
        "tenant": "acme",
        "occurred_at": "2026-11-24T09:30:00.000000Z",
        "recorded_at": sealed.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "payload": {"ratio": 0.5, "€": "x", "a": [1, None, True]},
    }
    assert sealed.entry_bytes == rfc8785.dumps(obj)
    assert sealed.occurred_at == occurred


def test_stream_versions_count_per_stream(store: LogStore) -> None:
    receipts = store.append([entry(1), entry(2), entry(1, stream="request:1")])
    receipts += store.append([entry(1, stream="request:1")])
    assert [r.stream_version for r in receipts] == [1, 1, 2, 3]


def test_expected_version_is_checked_per_entry(store: LogStore) -> None:
    store.append([entry(1, expected_version=0), entry(1, expected_version=1)])
    head = store.head()
    with pytest.raises(ConcurrencyError) as caught:
        store.append([entry(2), entry(1, expected_version=1)])
    assert caught.value.actual == 2
    assert caught.value.expected == 1
    assert getattr(caught.value, "index", None) == 1
    assert_unchanged(store, head.size, head.root_hash)
    [receipt] = store.append([entry(1, expected_version=2)])
    assert receipt.stream_version == 3


def test_an_idempotent_retry_returns_the_original_receipt(store: LogStore) -> None:
    [first] = store.append([entry(1, idempotency_key="req-1")])
    store.append([entry(2)])
    [again] = store.append([entry(1, idempotency_key="req-1")])
    assert again.duplicate
    assert (again.seq, again.event_id, again.leaf_hash) == (
        first.seq,
        first.event_id,
        first.leaf_hash,
    )
    assert store.head().size == 2


def test_idempotency_keys_are_per_tenant(store: LogStore) -> None:
    receipts = store.append(
        [entry(1, idempotency_key="k"), entry(1, idempotency_key="k", tenant="globex")]
    )
    assert [r.seq for r in receipts] == [0, 1]
    assert not any(r.duplicate for r in receipts)


def test_a_key_reused_with_other_content_is_a_conflict_and_writes_nothing(store: LogStore) -> None:
    store.append([entry(1, idempotency_key="k")])
    head = store.head()
    with pytest.raises(IdempotencyConflictError) as caught:
        store.append([entry(3), entry(2, idempotency_key="k")])
    assert caught.value.seq == 0
    assert_unchanged(store, head.size, head.root_hash)


def test_duplicates_inside_one_batch(store: LogStore) -> None:
    receipts = store.append(
        [entry(1, idempotency_key="k"), entry(2), entry(1, idempotency_key="k")]
    )
    assert [r.seq for r in receipts] == [0, 1, 0]
    assert [r.duplicate for r in receipts] == [False, False, True]
    assert store.head().size == 2
    with pytest.raises(IdempotencyConflictError):
        store.append([entry(5, idempotency_key="x"), entry(6, idempotency_key="x")])
    assert store.head().size == 2


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"payload": {"big": 2**60}}, "payload.big"),
        ({"payload": {"pad": "x" * 70_000}}, "payload"),
        ({"occurred_at": datetime.now(UTC) + timedelta(hours=1)}, "occurred_at"),
    ],
)
def test_a_bad_entry_refuses_the_whole_batch(
    store: LogStore, bad: dict[str, Any], field: str
) -> None:
    store.append([entry(1)])
    head = store.head()
    with pytest.raises(ValidationError) as caught:
        store.append([entry(2), entry(3), entry(4, **bad)])
    assert caught.value.field == field
    assert getattr(caught.value, "index", None) == 2
    assert_unchanged(store, head.size, head.root_hash)


def test_every_proof_verifies_and_reads_log_n_nodes(store: LogStore) -> None:
    for size in (3, 8, 1, 11, 6, 7):
        store.append([entry(100 * size + i) for i in range(size)])
    leaves = [e.leaf_hash for e in all_entries(store)]
    n = len(leaves)
    counting = CountingReader(store)
    for size in range(1, n + 1):
        root = root_from_leaves(leaves[:size])
        for index in range(size):
            proof = prove_inclusion(counting, index=index, size=size)
            assert proof.root_hash == root
            assert proof.leaf_hash == leaves[index]
            proof.verify()
            assert counting.last <= 3 * size.bit_length() + 2
        for first in range(size + 1):
            consistency = prove_consistency(counting, first=first, second=size)
            assert consistency.second_root == root
            consistency.verify()
            assert counting.last <= 4 * size.bit_length() + 2


class CountingReader:
    """Wraps a store's node reader and records how many hashes one proof asked for."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.last = 0

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        self.last = len(nodes)
        return self.store.read_nodes(nodes)


def test_entry_lookup(store: LogStore) -> None:
    store.append([entry(1), entry(2)])
    assert store.entry(1).stream == "request:2"
    for seq in (2, -1, 10**9):
        with pytest.raises(NotFoundError):
            store.entry(seq)


def test_iter_entries_from_a_position(store: LogStore) -> None:
    store.append([entry(i) for i in range(12)])
    assert [e.seq for e in store.iter_entries(start=5, batch_size=3)] == list(range(5, 12))


def test_entries_in_streams_selects_by_prefix_in_seq_order(store: LogStore) -> None:
    names = ["policy:b", "request:1", "policy:a", "policy-x:1", "polic:y", "policy:a", "policyx:1"]
    store.append([entry(i, stream=name) for i, name in enumerate(names)])
    found = store.entries_in_streams("policy:")
    assert [(e.seq, e.stream) for e in found] == [(0, "policy:b"), (2, "policy:a"), (5, "policy:a")]
    assert store.entries_in_streams("audit:") == []
    assert [e.seq for e in store.stream_entries("policy:a")] == [2, 5]
    assert store.stream_entries("policy:") == []


def test_find_entries_pages_one_type_by_tenant_and_time(store: LogStore) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    store.append(
        [
            entry(
                i,
                type="A" if i % 3 else "B",
                tenant=f"t{i % 2}",
                occurred_at=start + timedelta(hours=i),
            )
            for i in range(30)
        ]
    )
    a_seqs = [i for i in range(30) if i % 3]
    page = store.find_entries(event_type="A", after=-1, limit=5)
    assert [e.seq for e in page] == a_seqs[:5]
    rest = store.find_entries(event_type="A", after=page[-1].seq, limit=100)
    assert [e.seq for e in page + rest] == a_seqs
    mine = store.find_entries(event_type="A", after=-1, limit=100, tenants=["t1"])
    assert [e.seq for e in mine] == [i for i in a_seqs if i % 2]
    assert store.find_entries(event_type="A", after=-1, limit=100, tenants=[]) == []
    window = store.find_entries(
        event_type="B",
        after=-1,
        limit=100,
        occurred_from=start + timedelta(hours=6),
        occurred_to=start + timedelta(hours=15),
    )
    assert [e.seq for e in window] == [6, 9, 12]
    assert store.find_entries(event_type="C", after=-1, limit=10) == []


def test_only_subtrees_of_16_leaves_or_more_are_stored(store: LogStore) -> None:
    store.append([entry(i) for i in range(64)])
    assert sorted(store.nodes_in(4, 0, 9)) == [0, 1, 2, 3]
    assert store.nodes_in(6, 0, 0)[0] == store.head().root_hash
    assert store.nodes_in(6, 1, 5) == {}
    assert store.nodes_in(3, 0, 7) == {}  # recomputed from leaves when a proof needs them
    leaves = [e.leaf_hash for e in all_entries(store)]
    assert store.read_nodes([(3, 2)]) == {(3, 2): root_from_leaves(leaves[16:24])}


def test_checkpoints_are_kept_once_per_key_and_size(store: LogStore) -> None:
    store.append([entry(1)])
    now = datetime(2026, 11, 25, tzinfo=UTC)
    record = CheckpointRecord(1, store.head().root_hash, "k", b"\x01\x02\x03\x04", "note\n", now)
    assert store.add_checkpoint(record) == record
    again = CheckpointRecord(1, record.root_hash, "k", record.key_id, "other\n", now)
    assert store.add_checkpoint(again).note == "note\n"
    store.add_checkpoint(CheckpointRecord(0, b"\x00" * 32, "k", record.key_id, "zero\n", now))
    assert [c.tree_size for c in store.checkpoints()] == [0, 1]


def test_errors_are_ledger_errors(store: LogStore) -> None:
    with pytest.raises(LedgerError):
        store.entry(0)


def raw(n: int, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "InferenceRouted",
        "stream": f"request:{n}",
        "tenant": "acme",
        "payload": {"n": n},
    }
    data.update(fields)
    return data


def test_raw_entry_objects_are_validated_inside_the_append(store: LogStore) -> None:
    receipts = store.append([raw(1), raw(2, occurred_at="2026-11-24T10:00:00+01:00"), entry(3)])
    assert [r.seq for r in receipts] == [0, 1, 2]
    assert store.entry(1).occurred_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert store.entry(2).entry_bytes == all_entries(store)[2].entry_bytes


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"stream": 42}, "stream"),
        ({"stream": "request:has space"}, "stream"),
        ({"colour": "red"}, "colour"),
        ({"payload": ["not", "an", "object"]}, "payload"),
        ({"occurred_at": "2026-11-24T10:00:00"}, "occurred_at"),
        ({"idempotency_key": "k k"}, "idempotency_key"),
    ],
)
def test_a_bad_raw_entry_refuses_the_whole_batch(
    store: LogStore, bad: dict[str, Any], field: str
) -> None:
    store.append([raw(1)])
    head = store.head()
    with pytest.raises(ValidationError) as caught:
        store.append([raw(2), raw(3, idempotency_key="fine"), raw(4, **bad)])
    assert caught.value.field == field
    assert getattr(caught.value, "index", None) == 2
    assert_unchanged(store, head.size, head.root_hash)
    assert [r.seq for r in store.append([raw(5)])] == [1]  # the store is still usable


def test_a_scan_given_up_part_way_closes_cleanly_from_any_thread(store: LogStore) -> None:
    """An audit that stops at a changed entry leaves its scan unfinished; the garbage collector
    may close it on any thread, the PostgreSQL store's read-ahead thread included. Closing must
    neither raise (joining the thread it runs on would) nor leave a reader thread behind."""
    store.append([entry(i) for i in range(30)])
    before = {t.ident for t in threading.enumerate()}
    for closer in ("this thread", "another thread", "the read-ahead thread"):
        scan = store.iter_entries(batch_size=4)
        assert [next(scan).seq for _ in range(6)] == list(range(6))
        frame = getattr(scan, "gi_frame", None)
        helper = None if frame is None else frame.f_locals.get("pool")
        if closer == "this thread":
            scan.close()
        elif closer == "another thread":
            with ThreadPoolExecutor(1) as other:
                other.submit(scan.close).result()
        elif helper is not None:  # only a store that reads ahead has one
            helper.submit(scan.close).result()
        else:
            scan.close()
    deadline = time.monotonic() + 5
    while {t.ident for t in threading.enumerate()} - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {t.ident for t in threading.enumerate()} - before == set()
