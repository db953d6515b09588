"""Tests of ledger.integrity.chain, the 0x02-prefixed hash chain over leaf hashes.

Proves that a chain link is SHA-256(0x02 || previous || leaf) starting from 32 zero bytes,
that it cannot be confused with an RFC 6962 leaf (0x00) or interior node (0x01) hash of the
same bytes, and that the chain head depends on every leaf and on their order.
"""

from __future__ import annotations

import hashlib
from functools import reduce

from ledger.integrity.chain import CHAIN_PREFIX, GENESIS_CHAIN_HASH, chain_next
from ledger.integrity.merkle import leaf_hash, node_hash


def head(leaves: list[bytes]) -> bytes:
    return reduce(chain_next, leaves, GENESIS_CHAIN_HASH)


def test_genesis_is_32_zero_bytes() -> None:
    assert GENESIS_CHAIN_HASH == b"\x00" * 32
    assert CHAIN_PREFIX == b"\x02"


def test_link_is_sha256_of_prefix_previous_leaf() -> None:
    leaf = leaf_hash(b"entry 0")
    expected = hashlib.sha256(b"\x02" + b"\x00" * 32 + leaf).digest()
    assert chain_next(GENESIS_CHAIN_HASH, leaf) == expected
    second = leaf_hash(b"entry 1")
    assert chain_next(expected, second) == hashlib.sha256(b"\x02" + expected + second).digest()


def test_link_is_domain_separated_from_tree_hashes() -> None:
    previous, leaf = leaf_hash(b"a"), leaf_hash(b"b")
    link = chain_next(previous, leaf)
    assert link != node_hash(previous, leaf)
    assert link != leaf_hash(previous + leaf)
    assert link != hashlib.sha256(previous + leaf).digest()


def test_head_depends_on_every_leaf_and_order() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    reference = head(leaves)
    assert len(reference) == 32
    assert head(leaves[::-1]) != reference
    assert head(leaves[:-1]) != reference
    assert head(leaves[1:]) != reference
    for i in range(len(leaves)):
        changed = [*leaves]
        changed[i] = leaf_hash(b"other")
        assert head(changed) != reference


def test_chain_is_incremental() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(4)]
    assert chain_next(head(leaves[:3]), leaves[3]) == head(leaves)
