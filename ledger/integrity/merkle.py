"""The RFC 6962 / RFC 9162 §2.1 Merkle tree: hashing, roots, inclusion and consistency proofs.

Guarantees:

* ``leaf_hash = SHA-256(0x00 || data)``, ``node_hash = SHA-256(0x01 || left || right)``, and the
  tree over ``n`` leaves splits at the largest power of two below ``n`` (RFC 9162 §2.1.1).
* Proofs are built from *complete subtrees* only: a node ``(level, index)`` covers leaves
  ``[index * 2**level, (index + 1) * 2**level)`` and, once complete, never changes. A store that
  keeps these hashes answers :class:`NodeReader` and every proof for any ``(index, size)`` reads
  O(log n) of them in one call, never the leaves.
* Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 to the letter and raises
  :class:`~ledger.errors.IntegrityError` ("expected X, got Y") on any mismatch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from ledger.errors import IntegrityError

LEAF_PREFIX = b"\x00"  # RFC 6962 §2.1
NODE_PREFIX = b"\x01"  # RFC 6962 §2.1
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()

Node = tuple[int, int]
"""A complete subtree ``(level, index)``; level 0 nodes are the leaf hashes."""

Range = tuple[int, int]
"""A half-open leaf range ``[start, end)`` that is a node of the RFC 9162 tree shape."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


STORED_MIN_LEVEL = 4
"""Stores keep complete subtrees of 2**4 = 16 leaves and more. A smaller one is recomputed from
its at most 8 leaf hashes when a proof needs it, so a proof reads at most 14 extra leaves and
stored nodes cost 1/8 row per entry instead of 1."""


class NodeReader(Protocol):
    """Port: returns the hash of each requested complete subtree."""

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]: ...


def resolve_nodes(
    nodes: Collection[Node],
    *,
    read_stored: Callable[[Collection[Node]], Mapping[Node, bytes]],
    read_leaves: Callable[[Collection[int]], Mapping[int, bytes]],
) -> dict[Node, bytes]:
    """Answer a :class:`NodeReader` request from stored subtrees (level >= STORED_MIN_LEVEL)
    and leaf hashes, recomputing the small subtrees in between; missing inputs stay missing."""
    stored_levels, wanted_leaves = node_inputs(nodes)
    stored = read_stored(stored_levels) if stored_levels else {}
    leaves = read_leaves(wanted_leaves) if wanted_leaves else {}
    return assemble_nodes(nodes, stored, leaves)


def node_inputs(nodes: Collection[Node]) -> tuple[list[Node], set[int]]:
    """What answering ``nodes`` takes: the stored subtrees among them, and the leaf hashes
    they and the small subtrees (below STORED_MIN_LEVEL) are made from."""
    stored_levels = [n for n in nodes if n[0] >= STORED_MIN_LEVEL]
    wanted_leaves = {index for level, index in nodes if level == 0}
    for level, index in nodes:
        if 0 < level < STORED_MIN_LEVEL:
            wanted_leaves.update(range(index << level, (index + 1) << level))
    return stored_levels, wanted_leaves


def assemble_nodes(
    nodes: Collection[Node], stored: Mapping[Node, bytes], leaves: Mapping[int, bytes]
) -> dict[Node, bytes]:
    """``nodes`` from what :func:`node_inputs` asked for, as far as it was found."""
    result: dict[Node, bytes] = dict(stored)
    result.update({(0, index): digest for index, digest in leaves.items()})
    for level, index in nodes:
        if not 0 < level < STORED_MIN_LEVEL:
            continue
        span = range(index << level, (index + 1) << level)
        if all(i in leaves for i in span):
            result[(level, index)] = subtree_hash([leaves[i] for i in span])
    return {node: result[node] for node in nodes if node in result}


def subtree_hash(leaves: Sequence[bytes]) -> bytes:
    """The root of a complete subtree over a power-of-two number of leaf hashes."""
    level = list(leaves)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


# --- tree shape -----------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees, left to right, that make up the tree node ``[start, end)``.

    Valid for ranges that occur in the RFC 9162 recursion (``start`` a multiple of a power of
    two no smaller than the range); their hash is the right fold of these nodes.
    """
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from its complete-subtree hashes, left to right."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The audit path of leaf ``index`` in a tree of ``size`` leaves (RFC 9162 §2.1.3.1),
    as leaf ranges, bottom-up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = 1 << ((end - start - 1).bit_length() - 1)  # _split, inlined: proofs run hot
        if index - start < k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The consistency proof between sizes ``first`` and ``second`` (RFC 9162 §2.1.4.1),
    as leaf ranges, in proof order. Empty when ``first`` is 0 or equals ``second``."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    path: list[Range] = []
    start, end, complete = 0, second, True
    while True:
        n = end - start
        m = first - start
        if m == n:
            if not complete:
                path.append((start, end))
            break
        k = _split(n)
        if m <= k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
            complete = False
    path.reverse()
    return path


# --- proofs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    audit_path: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        """The DESIGN §2.4 JSON shape, hashes as lowercase hex."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "audit_path": [h.hex() for h in self.audit_path],
        }

    @classmethod
    def from_json(cls, data: object) -> InclusionProof:
        """Parse the DESIGN §2.4 JSON shape; IntegrityError names what is wrong."""
        data = _fields(data, "inclusion proof", cls.__slots__)
        path = data["audit_path"]
        if not isinstance(path, list):
            raise IntegrityError("inclusion proof: audit_path is not a list")
        return cls(
            leaf_index=_int(data, "leaf_index"),
            tree_size=_int(data, "tree_size"),
            leaf_hash=_hex(data["leaf_hash"], "leaf_hash"),
            root_hash=_hex(data["root_hash"], "root_hash"),
            audit_path=tuple(_hex(h, "audit_path") for h in path),
        )

    def verify(self) -> None:
        verify_inclusion(
            leaf_index=self.leaf_index,
            tree_size=self.tree_size,
            leaf=self.leaf_hash,
            audit_path=self.audit_path,
            root=self.root_hash,
        )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first_size: int
    second_size: int
    first_root: bytes
    second_root: bytes
    consistency_path: tuple[bytes, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "first_size": self.first_size,
            "second_size": self.second_size,
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "consistency_path": [h.hex() for h in self.consistency_path],
        }

    @classmethod
    def from_json(cls, data: object) -> ConsistencyProof:
        """Parse the DESIGN §2.4 JSON shape; IntegrityError names what is wrong."""
        data = _fields(data, "consistency proof", cls.__slots__)
        path = data["consistency_path"]
        if not isinstance(path, list):
            raise IntegrityError("consistency proof: consistency_path is not a list")
        return cls(
            first_size=_int(data, "first_size"),
            second_size=_int(data, "second_size"),
            first_root=_hex(data["first_root"], "first_root"),
            second_root=_hex(data["second_root"], "second_root"),
            consistency_path=tuple(_hex(h, "consistency_path") for h in path),
        )

    def verify(self) -> None:
        verify_consistency(
            first_size=self.first_size,
            second_size=self.second_size,
            first_root=self.first_root,
            second_root=self.second_root,
            consistency_path=self.consistency_path,
        )


class RangeReader(Protocol):
    """Optional, beside :class:`NodeReader`: the hashes of whole leaf ranges at once, or None
    where the reader cannot answer them so (a store's in-memory copy of the tree)."""

    def read_ranges(self, ranges: Sequence[Range]) -> Sequence[bytes] | None: ...


def _read_ranges(reader: NodeReader, ranges: Iterable[Range]) -> Sequence[bytes]:
    """The hash of each range: from the reader's ``read_ranges`` where it has one that
    answers, else from one ``read_nodes`` call."""
    ranges = list(ranges)
    read_ranges = getattr(reader, "read_ranges", None)  # a RangeReader (faster than isinstance)
    if read_ranges is not None and (found := read_ranges(ranges)) is not None:
        return cast(Sequence[bytes], found)
    per_range = [range_nodes(start, end) for start, end in ranges]
    wanted = {node for nodes in per_range for node in nodes}
    stored = reader.read_nodes(wanted)
    missing = wanted - stored.keys()
    if missing:
        level, index = min(missing)
        raise IntegrityError(f"stored Merkle node (level {level}, index {index}) is missing")
    return [fold_right([stored[n] for n in nodes]) for nodes in per_range]


def prove_inclusion(reader: NodeReader, *, index: int, size: int) -> InclusionProof:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves, with its root."""
    path = inclusion_ranges(index, size)
    hashes = _read_ranges(reader, [*path, (0, size), (index, index + 1)])
    return InclusionProof(
        leaf_index=index,
        tree_size=size,
        leaf_hash=hashes[-1],
        root_hash=hashes[-2],
        audit_path=tuple(hashes[:-2]),
    )


def prove_consistency(reader: NodeReader, *, first: int, second: int) -> ConsistencyProof:
    """The consistency proof from size ``first`` to size ``second``, with both roots."""
    path = consistency_ranges(first, second)
    hashes = _read_ranges(reader, [*path, (0, first), (0, second)])
    return ConsistencyProof(
        first_size=first,
        second_size=second,
        first_root=hashes[-2],
        second_root=hashes[-1],
        consistency_path=tuple(hashes[:-2]),
    )


def root_of(reader: NodeReader, size: int) -> bytes:
    """The Merkle root of the first ``size`` leaves."""
    hashes = _read_ranges(reader, [(0, size)])
    return hashes[0]


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------------------------


def verify_inclusion(
    *, leaf_index: int, tree_size: int, leaf: bytes, audit_path: Sequence[bytes], root: bytes
) -> None:
    """Raise IntegrityError unless ``audit_path`` proves ``leaf`` at ``leaf_index`` in ``root``."""
    if not 0 <= leaf_index < tree_size:
        raise IntegrityError(f"leaf index {leaf_index} is outside a tree of size {tree_size}")
    _check_hashes(leaf, root, *audit_path)
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in audit_path:
        if sn == 0:
            raise IntegrityError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise IntegrityError(
            f"inclusion proof of leaf {leaf_index} in tree size {tree_size}: "
            f"expected root {root.hex()}, got {r.hex()}"
        )


def verify_consistency(
    *,
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    consistency_path: Sequence[bytes],
) -> None:
    """Raise IntegrityError unless the tree of ``second_root`` extends that of ``first_root``."""
    if not 0 <= first_size <= second_size:
        raise IntegrityError(f"tree size went down from {first_size} to {second_size}")
    if first_size == second_size:
        if consistency_path:
            raise IntegrityError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise IntegrityError(
                f"two roots for tree size {first_size}: {first_root.hex()} and {second_root.hex()}"
            )
        return
    if first_size == 0:
        if consistency_path:
            raise IntegrityError("consistency proof from the empty tree must be empty")
        return
    if not consistency_path:
        raise IntegrityError("consistency proof is empty")
    _check_hashes(first_root, second_root, *consistency_path)
    path = list(consistency_path)
    if first_size & (first_size - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise IntegrityError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("consistency proof is shorter than the tree is deep")
    if fr != first_root:
        raise IntegrityError(
            f"consistency proof {first_size}->{second_size}: expected first root "
            f"{first_root.hex()}, got {fr.hex()}"
        )
    if sr != second_root:
        raise IntegrityError(
            f"consistency proof {first_size}->{second_size}: expected second root "
            f"{second_root.hex()}, got {sr.hex()}"
        )


# --- building the tree incrementally -----------------------------------------------------------


class CompactRange:
    """The right edge of the tree: one hash per set bit of ``size`` (largest subtree first).

    Appending a leaf returns every complete subtree it closes, so a store can keep all node
    hashes with O(1) amortised work per leaf and O(log n) memory.
    """

    __slots__ = ("_hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} holds {size.bit_count()} hashes")
        self.size = size
        self._hashes = list(hashes)

    @classmethod
    def from_bytes(cls, size: int, packed: bytes) -> CompactRange:
        hashes = [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)]
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> Sequence[tuple[int, int, bytes]]:
        """Add a leaf hash; return the complete subtrees it closes, ``(level, index, hash)``,
        from level 1 up."""
        index = self.size
        self.size += 1
        hashes = self._hashes
        hashes.append(leaf)
        if not index & 1:
            return ()  # half of all leaves close nothing
        closed: list[tuple[int, int, bytes]] = []
        level = 0
        while (index >> level) & 1:
            right = hashes.pop()
            merged = node_hash(hashes.pop(), right)
            hashes.append(merged)
            level += 1
            closed.append((level, index >> level, merged))
        return closed

    def root(self) -> bytes:
        return fold_right(self._hashes)


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """The Merkle root of the given leaf hashes, in O(log n) memory."""
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    return compact.root()


def _fields(data: object, what: str, names: Iterable[str]) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise IntegrityError(f"{what} is not a JSON object")
    missing = [name for name in names if name not in data]
    if missing:
        raise IntegrityError(f"{what} lacks {', '.join(missing)}")
    return data


def _int(data: Mapping[str, object], key: str) -> int:
    value = data[key]
    if type(value) is not int or value < 0:
        raise IntegrityError(f"proof field {key} is not a non-negative integer")
    return value


def _hex(value: object, key: str) -> bytes:
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise IntegrityError(f"proof field {key} is not a 64-digit hex hash")
    return bytes.fromhex(value)


_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")


def _check_hashes(*hashes: bytes) -> None:
    for digest in hashes:
        if len(digest) != HASH_SIZE:
            raise IntegrityError(f"a hash in the proof has {len(digest)} bytes, expected 32")
