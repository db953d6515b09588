"""pactledger's Merkle trees equal an independent RFC 6962 implementation's (pymerkle).

The benchmarks compare proof speed against pymerkle on the same leaves; this pins that both
build the same tree, for every size up to a few hundred leaves (every shape of the right
spine), so a root, and therefore a checkpoint, means the same thing to both.
"""

from __future__ import annotations

import random

import pytest

pymerkle = pytest.importorskip("pymerkle")

from ledger.integrity.merkle import (  # noqa: E402
    CompactRange,
    leaf_hash,
    root_from_leaves,
    verify_inclusion,
)


def _entries(count: int) -> list[bytes]:
    rng = random.Random(count)
    return [rng.randbytes(rng.randrange(0, 80)) for _ in range(count)]


def test_roots_equal_pymerkle_for_every_size_up_to_300() -> None:
    entries = _entries(300)
    tree = pymerkle.InmemoryTree()
    compact = CompactRange()
    for size, data in enumerate(entries, start=1):
        tree.append_entry(data)
        compact.append(leaf_hash(data))
        assert compact.root() == tree.get_root(), f"size {size}"
    leaves = [leaf_hash(data) for data in entries]
    for size in (1, 2, 3, 7, 64, 65, 127, 300):
        assert root_from_leaves(leaves[:size]) == tree.get_root(size)


def test_pymerkle_inclusion_paths_verify_with_our_verifier() -> None:
    entries = _entries(97)
    tree = pymerkle.InmemoryTree()
    for data in entries:
        tree.append_entry(data)
    root = tree.get_root()
    for index in (0, 1, 31, 64, 95, 96):
        proof = tree.prove_inclusion(index + 1)
        path = [bytes(digest) for digest in proof.path]
        # pymerkle's path starts with the leaf itself; RFC 9162's audit path does not.
        assert path[0] == leaf_hash(entries[index])
        verify_inclusion(
            leaf_index=index,
            tree_size=len(entries),
            leaf=leaf_hash(entries[index]),
            audit_path=path[1:],
            root=root,
        )
