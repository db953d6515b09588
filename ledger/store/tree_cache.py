"""An in-memory copy of a log's Merkle hashes, so a long-running server proves without a
database round trip.

A proof at a million entries needs about 20 hashes, spread over every level of the tree; read
from the database each one costs a round trip (about 1.5 ms here). The hashes never change
once written (the log is append-only and its tables refuse UPDATE and DELETE), so a copy
held in memory never goes stale. This module holds such a copy and grows it on demand.

Guarantees:

* It holds only hashes read from the store's own rows: the leaf hashes of entries ``0 .. n-1``
  and every stored subtree (level >= :data:`~ledger.integrity.merkle.STORED_MIN_LEVEL`)
  complete within them, each level contiguous from index 0. Smaller subtrees are recomputed
  from their leaves, as the database path does.
* A request whose nodes reach beyond ``limit`` leaves, or whose rows turn out to have a gap
  (a removed entry or node), is not answered here (:meth:`TreeCache.nodes` returns None) and
  the caller reads the database, which names what is missing. Nothing partial is kept: a
  failed growth leaves the copy as it was.
* ``pactledger verify`` never reads it: an audit recomputes everything from the rows.
* Memory: 64 bytes per leaf: its hash (32), the levels 1 to 3 that are not stored but
  hashed here at load (28), the stored subtrees (4); 1,000,000 entries take 64 MB, and
  never more than ``limit`` leaves are held.
* Safe for concurrent readers: growth happens under a lock and the copy's size is raised only
  after every level holds its new hashes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection, Sequence

from ledger.integrity.merkle import (
    NODE_PREFIX,
    STORED_MIN_LEVEL,
    Node,
    Range,
    fold_right,
    range_nodes,
)

HASH = 32
LOAD_CHUNK = 100_000  # rows per read while growing
RIGHT_EDGE_MEMO = 4_096  # hashes of incomplete ranges kept (a tree size has log2(size) of them)

ReadLeaves = Callable[[int, int], Sequence[bytes]]
"""``(first, end)``: the leaf hashes of seq ``first .. end-1`` in order (fewer on a gap)."""
ReadLevel = Callable[[int, int, int], Sequence[bytes]]
"""``(level, first, end)``: the stored subtree hashes of that level, ``first .. end-1``."""


class TreeCache:
    def __init__(self, limit: int, *, read_leaves: ReadLeaves, read_level: ReadLevel) -> None:
        self.limit = limit
        self._read_leaves = read_leaves
        self._read_level = read_level
        # level -> the hashes of its complete subtrees from index 0, packed; level 0: leaves
        self._levels: dict[int, bytearray] = {0: bytearray()}
        self._right_edge: dict[Range, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Leaves held."""
        return self._size

    def nodes(self, nodes: Collection[Node]) -> dict[Node, bytes] | None:
        """The hash of each of ``nodes``, from memory, after growing the copy to cover them;
        None when they reach beyond ``limit`` or the rows have a gap."""
        if not nodes:
            return {}
        extent = max((index + 1) << level for level, index in nodes)
        if extent > self._size and not self._grow(extent):
            return None
        return {(level, index): self._node(level, index) for level, index in nodes}

    def ranges(self, ranges: Sequence[Range]) -> list[bytes] | None:
        """The hash of each leaf range (ranges of the RFC 9162 recursion, as proofs ask for
        them), or None as for :meth:`nodes`. A complete subtree is one lookup; an incomplete
        range (it ends at a tree size) is folded once and remembered."""
        extent = max([end for _, end in ranges])
        if extent > self._size and not self._grow(extent):
            return None
        levels = self._levels
        hashes = []
        for start, end in ranges:
            width = end - start
            if width and width & (width - 1) == 0:  # a power of two: aligned in the recursion
                level = width.bit_length() - 1
                offset = (start >> level) * HASH
                hashes.append(bytes(levels[level][offset : offset + HASH]))
                continue
            folded = self._right_edge.get((start, end))
            if folded is None:
                folded = fold_right([self._node(*node) for node in range_nodes(start, end)])
                if len(self._right_edge) >= RIGHT_EDGE_MEMO:
                    self._right_edge.clear()
                self._right_edge[(start, end)] = folded
            hashes.append(folded)
        return hashes

    def _node(self, level: int, index: int) -> bytes:
        return bytes(self._levels[level][index * HASH : (index + 1) * HASH])

    def _grow(self, extent: int) -> bool:
        if extent > self.limit:
            return False
        with self._lock:
            start = self._size
            if extent <= start:
                return True
            leaves = bytearray()
            for first in range(start, extent, LOAD_CHUNK):
                end = min(extent, first + LOAD_CHUNK)
                chunk = self._read_leaves(first, end)
                if len(chunk) != end - first:
                    return False
                leaves += b"".join(chunk)
            grown: dict[int, bytearray] = {0: leaves}
            # Levels 1 to 3 are not stored (ledger.integrity.merkle.STORED_MIN_LEVEL): hash
            # them here, each from the level below, old and new hashes alike.
            below = bytes(self._levels[0][(start >> 3 << 3) * HASH :]) + leaves
            offset = start >> 3 << 3
            for level in range(1, STORED_MIN_LEVEL):
                have, want = start >> level, extent >> level
                first_child = 2 * have - offset
                grown[level] = bytearray(
                    b"".join(
                        hashlib.sha256(
                            NODE_PREFIX + below[child * HASH : (child + 2) * HASH]
                        ).digest()
                        for child in range(first_child, 2 * want - offset, 2)
                    )
                )
                offset >>= 1
                below = bytes(self._levels.get(level, bytearray())[offset * HASH :]) + bytes(
                    grown[level]
                )
            level = STORED_MIN_LEVEL
            while extent >> level:
                have, want = start >> level, extent >> level
                hashes = self._read_level(level, have, want) if want > have else ()
                if len(hashes) != want - have:
                    return False
                grown[level] = bytearray(b"".join(hashes))
                level += 1
            for level, packed in grown.items():
                self._levels.setdefault(level, bytearray()).extend(packed)
            self._size = extent
            return True
