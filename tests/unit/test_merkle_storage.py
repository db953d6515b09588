"""Tile-like storage: proofs answered from subtrees of 16+ leaves plus leaf hashes (what the
stores keep) are identical to proofs from a reader that holds every node."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ledger.integrity.merkle import (
    STORED_MIN_LEVEL,
    CompactRange,
    Node,
    leaf_hash,
    prove_consistency,
    prove_inclusion,
    resolve_nodes,
)

SIZE = 100


class FullReader:
    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[Node, bytes] = {(0, i): leaf for i, leaf in enumerate(leaves)}
        compact = CompactRange()
        for leaf in leaves:
            for level, index, digest in compact.append(leaf):
                self.nodes[(level, index)] = digest

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        return {n: self.nodes[n] for n in nodes if n in self.nodes}


class TileReader:
    """Keeps only what a store keeps, and counts the hashes it reads."""

    def __init__(self, full: FullReader) -> None:
        self.stored = {n: h for n, h in full.nodes.items() if n[0] >= STORED_MIN_LEVEL}
        self.leaves = {i: h for (level, i), h in full.nodes.items() if level == 0}
        self.reads = 0

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        def stored(wanted: Collection[Node]) -> dict[Node, bytes]:
            self.reads += len(wanted)
            return {n: self.stored[n] for n in wanted if n in self.stored}

        def leaves(wanted: Collection[int]) -> dict[int, bytes]:
            self.reads += len(wanted)
            return {i: self.leaves[i] for i in wanted if i in self.leaves}

        return resolve_nodes(nodes, read_stored=stored, read_leaves=leaves)


def test_tile_storage_gives_the_same_proofs_with_bounded_reads() -> None:
    full = FullReader([leaf_hash(n.to_bytes(2, "big")) for n in range(SIZE)])
    tiles = TileReader(full)
    for size in range(1, SIZE + 1):
        for index in range(size):
            before = tiles.reads
            assert prove_inclusion(tiles, index=index, size=size) == prove_inclusion(
                full, index=index, size=size
            )
            assert tiles.reads - before <= 3 * size.bit_length() + 2 + 14 * 3
        for first in range(0, size + 1, 7):
            assert prove_consistency(tiles, first=first, second=size) == prove_consistency(
                full, first=first, second=size
            )


def test_missing_leaves_leave_the_small_subtree_missing() -> None:
    full = FullReader([leaf_hash(bytes([n])) for n in range(8)])
    tiles = TileReader(full)
    del tiles.leaves[5]
    found = tiles.read_nodes([(2, 1), (2, 0), (0, 5)])
    assert set(found) == {(2, 0)}
