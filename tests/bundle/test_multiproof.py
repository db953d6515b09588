"""The bundle multiproof (ledger.bundle.multiproof), by property.

Proves, for random tree sizes and random exported subsets, that the exported leaf hashes and
the gap nodes tile the tree and fold to the RFC 9162 root (the same root as
ledger.integrity.merkle computes from all leaves and as a store's stored nodes give); that the
gap nodes are the fewest aligned complete subtrees; that any flipped leaf or node, a dropped
or duplicated item, or a node past the tree size is refused; and that the audit path derived
for one exported leaf is the standard RFC 9162 inclusion proof.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.bundle.multiproof import (
    RootFolder,
    aligned_nodes,
    audit_nodes,
    audit_path,
    gap_nodes,
)
from ledger.errors import IntegrityError
from ledger.integrity.merkle import Node, leaf_hash, prove_inclusion, root_from_leaves, subtree_hash

Item = tuple[int, int, bytes]


def leaves_of(size: int) -> list[bytes]:
    return [leaf_hash(b"entry %d" % i) for i in range(size)]


def items_for(leaves: list[bytes], exported: list[int]) -> list[Item]:
    size = len(leaves)
    nodes = [
        (level, index, subtree_hash(leaves[index << level : (index + 1) << level]))
        for level, index in gap_nodes(exported, size)
    ]
    items = [(0, seq, leaves[seq]) for seq in exported] + nodes
    return sorted(items, key=lambda item: item[1] << item[0])


def fold(size: int, items: list[Item]) -> bytes:
    folder = RootFolder(size)
    for level, index, digest in items:
        folder.add(level, index, digest, where="test")
    return folder.root()


@st.composite
def trees(draw: st.DrawFn) -> tuple[int, list[int]]:
    size = draw(st.integers(min_value=1, max_value=600))
    exported = draw(
        st.lists(st.integers(0, size - 1), min_size=1, max_size=min(size, 40), unique=True)
    )
    return size, sorted(exported)


@settings(max_examples=300, deadline=None)
@given(trees())
def test_exported_leaves_and_gap_nodes_fold_to_the_root(tree: tuple[int, list[int]]) -> None:
    size, exported = tree
    leaves = leaves_of(size)
    assert fold(size, items_for(leaves, exported)) == root_from_leaves(leaves)


@settings(max_examples=200, deadline=None)
@given(trees(), st.data())
def test_any_flipped_leaf_or_node_is_refused(
    tree: tuple[int, list[int]], data: st.DataObject
) -> None:
    size, exported = tree
    leaves = leaves_of(size)
    items = items_for(leaves, exported)
    at = data.draw(st.integers(0, len(items) - 1))
    bit = data.draw(st.integers(0, 255))
    level, index, digest = items[at]
    flipped = bytearray(digest)
    flipped[bit // 8] ^= 1 << (bit % 8)
    items[at] = (level, index, bytes(flipped))
    assert fold(size, items) != root_from_leaves(leaves)


@settings(max_examples=200, deadline=None)
@given(trees(), st.data())
def test_a_dropped_or_repeated_item_is_refused(
    tree: tuple[int, list[int]], data: st.DataObject
) -> None:
    size, exported = tree
    items = items_for(leaves_of(size), exported)
    at = data.draw(st.integers(0, len(items) - 1))
    dropped = items[:at] + items[at + 1 :]
    repeated = items[: at + 1] + items[at:]
    for broken in (dropped, repeated):
        with pytest.raises(IntegrityError):
            fold(size, broken)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 5000))
def test_aligned_nodes_are_the_fewest_aligned_subtrees(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    nodes = list(aligned_nodes(start, end))
    position = start
    for level, index in nodes:
        assert index << level == position  # contiguous and aligned
        position += 1 << level
    assert position == end
    # No two neighbours could merge into one aligned parent.
    for (l1, i1), (l2, i2) in itertools.pairwise(nodes):
        assert not (l1 == l2 and i1 % 2 == 0 and i2 == i1 + 1)


@settings(max_examples=150, deadline=None)
@given(trees(), st.data())
def test_the_audit_path_of_one_leaf_is_rfc9162(
    tree: tuple[int, list[int]], data: st.DataObject
) -> None:
    size, exported = tree
    leaves = leaves_of(size)
    wanted = data.draw(st.sampled_from(exported))
    folder = RootFolder(size, remember=audit_nodes(wanted, size))
    for level, index, digest in items_for(leaves, exported):
        folder.add(level, index, digest, where="test")
    root = folder.root()
    proof = audit_path(folder, index=wanted, leaf=leaves[wanted], root=root)
    proof.verify()
    reference = prove_inclusion(_Reader(leaves), index=wanted, size=size)
    assert proof == reference


class _Reader:
    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    def read_nodes(self, nodes: Collection[Node]) -> dict[Node, bytes]:
        return {
            (level, index): subtree_hash(self.leaves[index << level : (index + 1) << level])
            for level, index in nodes
        }


def test_a_node_past_the_tree_size_is_refused() -> None:
    folder = RootFolder(5)
    folder.add(2, 0, hashlib.sha256(b"a").digest(), where="test")
    with pytest.raises(IntegrityError, match="past the tree size 5"):
        folder.add(1, 2, hashlib.sha256(b"b").digest(), where="test")


def test_a_short_tiling_is_refused() -> None:
    folder = RootFolder(3)
    folder.add(1, 0, hashlib.sha256(b"a").digest(), where="test")
    with pytest.raises(IntegrityError, match="cover 2 of the tree's 3 leaves"):
        folder.root()
