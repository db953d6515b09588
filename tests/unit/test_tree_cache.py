"""The in-memory copy of the Merkle hashes answers exactly what the stored rows would, grows
with the log, and declines (rather than guesses) beyond its limit or over a gap."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence

import pytest

from ledger.integrity.merkle import (
    STORED_MIN_LEVEL,
    CompactRange,
    Node,
    consistency_ranges,
    fold_right,
    inclusion_ranges,
    leaf_hash,
    range_nodes,
    resolve_nodes,
)
from ledger.store.tree_cache import TreeCache


class Rows:
    """What a store holds after appending ``count`` leaves: leaf hashes and stored subtrees."""

    def __init__(self, count: int = 0) -> None:
        self.leaves: list[bytes] = []
        self.stored: dict[Node, bytes] = {}
        self.compact = CompactRange()
        self.reads = 0
        self.grow(count)

    def grow(self, count: int) -> None:
        for _ in range(count):
            leaf = leaf_hash(len(self.leaves).to_bytes(8, "big"))
            self.leaves.append(leaf)
            for level, index, digest in self.compact.append(leaf):
                if level >= STORED_MIN_LEVEL:
                    self.stored[(level, index)] = digest

    def read_leaves(self, first: int, end: int) -> Sequence[bytes]:
        self.reads += 1
        return self.leaves[first:end]

    def read_level(self, level: int, first: int, end: int) -> Sequence[bytes]:
        self.reads += 1
        return [self.stored[(level, i)] for i in range(first, end) if (level, i) in self.stored]

    def truth(self, nodes: Sequence[Node]) -> dict[Node, bytes]:
        return resolve_nodes(
            nodes,
            read_stored=lambda wanted: {n: self.stored[n] for n in wanted if n in self.stored},
            read_leaves=lambda wanted: {i: self.leaves[i] for i in wanted if i < len(self.leaves)},
        )


def cache_over(rows: Rows, limit: int = 1 << 20) -> TreeCache:
    return TreeCache(limit, read_leaves=rows.read_leaves, read_level=rows.read_level)


def proof_nodes(index: int, size: int) -> list[Node]:
    ranges = [*inclusion_ranges(index, size), (0, size), (index, index + 1)]
    return sorted({node for start, end in ranges for node in range_nodes(start, end)})


def test_every_proofs_nodes_equal_the_rows_as_the_log_grows() -> None:
    rows = Rows()
    cache = cache_over(rows)
    rng = random.Random(9162)
    for step in (1, 2, 13, 16, 17, 100, 400, 500):
        rows.grow(step)
        size = len(rows.leaves)
        for _ in range(40):
            nodes = proof_nodes(rng.randrange(size), size)
            assert cache.nodes(nodes) == rows.truth(nodes)
        first = rng.randrange(size + 1)
        nodes = sorted({n for s, e in consistency_ranges(first, size) for n in range_nodes(s, e)})
        assert cache.nodes(nodes) == rows.truth(nodes)
        assert cache.size == size  # grown exactly to what was asked, never beyond the log


def test_held_hashes_are_not_read_again() -> None:
    rows = Rows(1000)
    cache = cache_over(rows)
    cache.nodes(proof_nodes(999, 1000))
    reads = rows.reads
    for index in range(0, 1000, 7):
        cache.nodes(proof_nodes(index, 1000))
    assert rows.reads == reads


def test_beyond_the_limit_it_declines_and_holds_nothing_new() -> None:
    rows = Rows(300)
    cache = cache_over(rows, limit=256)
    assert cache.nodes(proof_nodes(3, 256)) is not None
    assert cache.nodes(proof_nodes(3, 257)) is None
    assert cache.size == 256


@pytest.mark.parametrize("missing", ["leaf", "node"])
def test_a_gap_in_the_rows_declines_and_keeps_the_copy_as_it_was(missing: str) -> None:
    rows = Rows(64)
    cache = cache_over(rows)
    assert cache.nodes(proof_nodes(5, 32)) is not None
    held = cache.size
    if missing == "leaf":
        del rows.leaves[40:]  # entries from seq 40 removed
    else:
        del rows.stored[(4, 2)]  # the subtree over seq 32..47 removed
    assert cache.nodes(proof_nodes(1, 48)) is None
    assert cache.size == held
    assert cache.nodes(proof_nodes(1, 32)) == rows.truth(proof_nodes(1, 32))


def test_concurrent_readers_see_only_complete_hashes() -> None:
    rows = Rows(5000)
    cache = cache_over(rows)
    failures: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            size = rng.randrange(1, 5001)
            nodes = proof_nodes(rng.randrange(size), size)
            if cache.nodes(nodes) != rows.truth(nodes):
                failures.append(f"size {size}")

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_whole_ranges_equal_the_folded_rows_as_the_log_grows() -> None:
    rows = Rows()
    cache = cache_over(rows)
    rng = random.Random(6962)
    for step in (3, 5, 8, 1, 40, 250, 700):
        rows.grow(step)
        size = len(rows.leaves)
        for _ in range(30):
            index, first = rng.randrange(size), rng.randrange(size + 1)
            for ranges in (
                [*inclusion_ranges(index, size), (0, size), (index, index + 1)],
                [*consistency_ranges(first, size), (0, first), (0, size)],
            ):
                expected = [
                    fold_right(list(rows.truth(range_nodes(start, end)).values()))
                    for start, end in ranges
                ]
                assert cache.ranges(ranges) == expected
                assert cache.ranges(ranges) == expected  # the remembered right edges too
