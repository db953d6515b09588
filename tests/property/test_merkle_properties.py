"""Hypothesis properties of the Merkle tree, its proofs and the hash chain.

Proves, for random leaves stored the way a log stores them (each leaf hash plus every complete
subtree that CompactRange closes):

* every root equals the naive recursive MTH of RFC 9162 §2.1.1;
* every inclusion proof for every (index, size), and every consistency proof for every
  m <= n, equals the naive PATH / SUBPROOF of §2.1.3.1 / §2.1.4.1. Each proof verifies, and
  each is read with one reader call of O(log n) nodes;
* a flipped byte in a path element, the leaf or a root, or a removed or added path element,
  makes verification raise IntegrityError;
* for wrong indices and sizes, verification agrees with a reference verifier written
  directly from the recursive definitions (not the bit-twiddling algorithm under test);
* changing, removing or swapping entries changes both the Merkle root and the chain head.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from functools import reduce

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.errors import IntegrityError
from ledger.integrity.chain import GENESIS_CHAIN_HASH, chain_next
from ledger.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    Node,
    leaf_hash,
    node_hash,
    prove_consistency,
    prove_inclusion,
    root_from_leaves,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# --- naive RFC 9162 model -----------------------------------------------------------------


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2), by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class NaiveTree:
    """MTH, PATH and SUBPROOF exactly as RFC 9162 §2.1 defines them, over leaf hashes."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, start: int, end: int) -> bytes:
        key = (start, end)
        if key not in self._mth:
            n = end - start
            if n == 0:
                value = EMPTY_ROOT
            elif n == 1:
                value = self.leaves[start]
            else:
                k = split_point(n)
                value = node_hash(self.mth(start, start + k), self.mth(start + k, end))
            self._mth[key] = value
        return self._mth[key]

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = split_point(n)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.mth(start, end)]
        k = split_point(n)
        if m <= k:
            return [*self.subproof(m, start, start + k, complete), self.mth(start + k, end)]
        return [*self.subproof(m - k, start + k, end, False), self.mth(start, start + k)]


class _ShortProofError(Exception):
    """The proof ran out of elements before the recursion did."""


def _take(items: Iterator[bytes]) -> bytes:
    item = next(items, None)
    if item is None:
        raise _ShortProofError
    return item


def reference_inclusion_ok(
    index: int, size: int, leaf: bytes, path: list[bytes], root: bytes
) -> bool:
    """Rebuild the root along the PATH recursion, consuming proof elements deepest first."""
    if not 0 <= index < size:
        return False
    items = iter(path)

    def rebuild(m: int, n: int) -> bytes:
        if n == 1:
            return leaf
        k = split_point(n)
        if m < k:
            inner = rebuild(m, k)
            return node_hash(inner, _take(items))
        inner = rebuild(m - k, n - k)
        return node_hash(_take(items), inner)

    try:
        computed = rebuild(index, size)
    except _ShortProofError:
        return False
    return next(items, None) is None and computed == root


def reference_consistency_ok(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> bool:
    """Rebuild both roots along the SUBPROOF recursion, consuming elements deepest first."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path
    items = iter(path)

    def rebuild(m: int, n: int, complete: bool) -> tuple[bytes, bytes]:
        if m == n:
            digest = first_root if complete else _take(items)
            return digest, digest
        k = split_point(n)
        if m <= k:
            old, new = rebuild(m, k, complete)
            return old, node_hash(new, _take(items))
        old, new = rebuild(m - k, n - k, False)
        left = _take(items)
        return node_hash(left, old), node_hash(left, new)

    try:
        old, new = rebuild(first, second, True)
    except _ShortProofError:
        return False
    return next(items, None) is None and old == first_root and new == second_root


# --- the store under test -----------------------------------------------------------------


class CountingReader:
    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[Node, bytes] = {}
        compact = CompactRange()
        for index, leaf in enumerate(leaves):
            self.nodes[(0, index)] = leaf
            for level, node_index, digest in compact.append(leaf):
                self.nodes[(level, node_index)] = digest
        self.calls: list[int] = []

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        self.calls.append(len(set(nodes)))
        return {n: self.nodes[n] for n in nodes if n in self.nodes}


distinct_leaves = st.lists(st.binary(max_size=6), min_size=1, max_size=24, unique=True).map(
    lambda entries: [leaf_hash(e) for e in entries]
)


@st.composite
def salted_leaves(draw: st.DrawFn) -> list[bytes]:
    """1 to 48 distinct leaf hashes; the count is drawn directly so large trees are common."""
    count = draw(st.integers(1, 48))
    salt = draw(st.binary(max_size=8))
    return [leaf_hash(salt + i.to_bytes(2, "big")) for i in range(count)]


def check_all_proofs(leaves: list[bytes]) -> None:
    naive = NaiveTree(leaves)
    reader = CountingReader(leaves)
    assert root_from_leaves(leaves) == naive.mth(0, len(leaves))
    for size in range(1, len(leaves) + 1):
        root = naive.mth(0, size)
        assert root_of(reader, size) == root
        bound = 3 * size.bit_length()
        for index in range(size):
            reader.calls.clear()
            proof = prove_inclusion(reader, index=index, size=size)
            assert len(reader.calls) == 1
            assert reader.calls[0] <= bound
            assert proof.leaf_hash == leaves[index]
            assert proof.root_hash == root
            assert list(proof.audit_path) == naive.path(index, 0, size)
            proof.verify()
        for first in range(size + 1):
            reader.calls.clear()
            consistency = prove_consistency(reader, first=first, second=size)
            assert len(reader.calls) == 1
            assert reader.calls[0] <= bound + first.bit_length() + 1
            assert consistency.first_root == naive.mth(0, first)
            assert consistency.second_root == root
            expected = [] if first == 0 else naive.subproof(first, 0, size, True)
            assert list(consistency.consistency_path) == expected
            consistency.verify()


@settings(max_examples=20, deadline=None)
@given(salted_leaves())
def test_roots_and_proofs_match_naive_rfc9162(leaves: list[bytes]) -> None:
    check_all_proofs(leaves)


def test_all_proofs_of_every_tree_up_to_64_leaves() -> None:
    check_all_proofs([leaf_hash(i.to_bytes(1, "big")) for i in range(64)])


def flip(data: bytes, position: int, bit: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ (1 << bit)]) + data[position + 1 :]


@st.composite
def inclusion_case(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    leaves = draw(distinct_leaves)
    size = draw(st.integers(1, len(leaves)))
    index = draw(st.integers(0, size - 1))
    return leaves, index, size


@st.composite
def consistency_case(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    leaves = draw(distinct_leaves)
    second = draw(st.integers(2, max(2, len(leaves))))
    assume(second <= len(leaves))
    first = draw(st.integers(1, second - 1))
    return leaves, first, second


EDITS = ["path", "remove", "add_end", "add_front", "insert"]


@settings(max_examples=300, deadline=None)
@given(
    inclusion_case(),
    st.sampled_from([*EDITS, "leaf", "root"]),
    st.integers(0, 10**6),
    st.integers(0, 7),
    st.binary(min_size=32, max_size=32),
)
def test_tampered_inclusion_proof_is_refused(
    case: tuple[list[bytes], int, int], how: str, where: int, bit: int, extra: bytes
) -> None:
    leaves, index, size = case
    proof = prove_inclusion(CountingReader(leaves), index=index, size=size)
    leaf, path, root = proof.leaf_hash, list(proof.audit_path), proof.root_hash
    if how == "path":
        assume(path)
        i = where % len(path)
        path[i] = flip(path[i], where // len(path), bit)
    elif how == "leaf":
        leaf = flip(leaf, where, bit)
    elif how == "root":
        root = flip(root, where, bit)
    elif how == "remove":
        assume(path)
        del path[where % len(path)]
    elif how == "add_end":
        path.append(extra)
    elif how == "add_front":
        path.insert(0, extra)
    else:
        path.insert(where % (len(path) + 1), extra)
    try:
        verify_inclusion(leaf_index=index, tree_size=size, leaf=leaf, audit_path=path, root=root)
    except IntegrityError:
        return
    raise AssertionError(f"tampered ({how}) inclusion proof verified")


@settings(max_examples=300, deadline=None)
@given(
    consistency_case(),
    st.sampled_from([*EDITS, "first_root", "second_root", "swap_roots"]),
    st.integers(0, 10**6),
    st.integers(0, 7),
    st.binary(min_size=32, max_size=32),
)
def test_tampered_consistency_proof_is_refused(
    case: tuple[list[bytes], int, int], how: str, where: int, bit: int, extra: bytes
) -> None:
    leaves, first, second = case
    proof = prove_consistency(CountingReader(leaves), first=first, second=second)
    root1, root2, path = proof.first_root, proof.second_root, list(proof.consistency_path)
    if how == "path":
        i = where % len(path)
        path[i] = flip(path[i], where // len(path), bit)
    elif how == "first_root":
        root1 = flip(root1, where, bit)
    elif how == "second_root":
        root2 = flip(root2, where, bit)
    elif how == "remove":
        del path[where % len(path)]
    elif how == "add_end":
        path.append(extra)
    elif how == "add_front":
        path.insert(0, extra)
    elif how == "insert":
        path.insert(where % (len(path) + 1), extra)
    else:
        root1, root2 = root2, root1
    try:
        verify_consistency(
            first_size=first,
            second_size=second,
            first_root=root1,
            second_root=root2,
            consistency_path=path,
        )
    except IntegrityError:
        return
    raise AssertionError(f"tampered ({how}) consistency proof verified")


@settings(max_examples=400, deadline=None)
@given(inclusion_case(), st.integers(-2, 40), st.integers(-1, 40))
def test_wrong_index_or_size_agrees_with_reference(
    case: tuple[list[bytes], int, int], claimed_index: int, claimed_size: int
) -> None:
    leaves, index, size = case
    assume((claimed_index, claimed_size) != (index, size))
    proof = prove_inclusion(CountingReader(leaves), index=index, size=size)
    path = list(proof.audit_path)
    assert reference_inclusion_ok(index, size, proof.leaf_hash, path, proof.root_hash)
    expected = reference_inclusion_ok(
        claimed_index, claimed_size, proof.leaf_hash, path, proof.root_hash
    )
    try:
        verify_inclusion(
            leaf_index=claimed_index,
            tree_size=claimed_size,
            leaf=proof.leaf_hash,
            audit_path=path,
            root=proof.root_hash,
        )
    except IntegrityError:
        assert not expected
    else:
        assert expected, "verified a proof the reference refuses"
        assert claimed_size != size or claimed_index == index


@settings(max_examples=400, deadline=None)
@given(consistency_case(), st.integers(-1, 40), st.integers(-1, 40))
def test_wrong_sizes_agree_with_reference(
    case: tuple[list[bytes], int, int], claimed_first: int, claimed_second: int
) -> None:
    leaves, first, second = case
    assume((claimed_first, claimed_second) != (first, second))
    proof = prove_consistency(CountingReader(leaves), first=first, second=second)
    path = list(proof.consistency_path)
    root1, root2 = proof.first_root, proof.second_root
    assert reference_consistency_ok(first, second, root1, root2, path)
    expected = reference_consistency_ok(claimed_first, claimed_second, root1, root2, path)
    try:
        verify_consistency(
            first_size=claimed_first,
            second_size=claimed_second,
            first_root=root1,
            second_root=root2,
            consistency_path=path,
        )
    except IntegrityError:
        assert not expected
    else:
        assert expected, "verified a proof the reference refuses"


# --- entries: root and chain head --------------------------------------------------------------


def root_and_head(entries: list[bytes]) -> tuple[bytes, bytes]:
    leaves = [leaf_hash(e) for e in entries]
    return root_from_leaves(leaves), reduce(chain_next, leaves, GENESIS_CHAIN_HASH)


entry_lists = st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(entry_lists, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 255))
def test_changed_entry_changes_root_and_head(
    entries: list[bytes], which: int, position: int, delta: int
) -> None:
    root, head = root_and_head(entries)
    i = which % len(entries)
    entry = entries[i]
    p = position % len(entry)
    changed = [*entries]
    changed[i] = entry[:p] + bytes([(entry[p] + delta) % 256]) + entry[p + 1 :]
    new_root, new_head = root_and_head(changed)
    assert new_root != root
    assert new_head != head


@settings(max_examples=200, deadline=None)
@given(entry_lists, st.integers(0, 10**6))
def test_removed_entry_changes_root_and_head(entries: list[bytes], which: int) -> None:
    root, head = root_and_head(entries)
    shorter = [*entries]
    del shorter[which % len(entries)]
    new_root, new_head = root_and_head(shorter)
    assert new_root != root
    assert new_head != head


@settings(max_examples=200, deadline=None)
@given(entry_lists, st.integers(0, 10**6), st.integers(0, 10**6))
def test_swapped_entries_change_root_and_head(entries: list[bytes], a: int, b: int) -> None:
    i, j = a % len(entries), b % len(entries)
    assume(entries[i] != entries[j])
    root, head = root_and_head(entries)
    swapped = [*entries]
    swapped[i], swapped[j] = swapped[j], swapped[i]
    new_root, new_head = root_and_head(swapped)
    assert new_root != root
    assert new_head != head
