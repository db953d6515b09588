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
* Memory: 32 bytes per leaf plus about 4 per leaf for the stored subtrees (1,000,000
  entries: about 36 MB), never more than for ``limit`` leaves.
* Safe for concurrent readers: growth happens under a lock and the copy's size is raised only
  after every level holds its new hashes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence

from ledger.integrity.merkle import STORED_MIN_LEVEL, Node, subtree_hash

HASH = 32
LOAD_CHUNK = 100_000  # rows per read while growing

ReadLeaves = Callable[[int, int], Sequence[bytes]]
"""``(first, end)``: the leaf hashes of seq ``first .. end-1`` in order (fewer on a gap)."""
ReadLevel = Callable[[int, int, int], Sequence[bytes]]
"""``(level, first, end)``: the stored subtree hashes of that level, ``first .. end-1``."""


class TreeCache:
    def __init__(self, limit: int, *, read_leaves: ReadLeaves, read_level: ReadLevel) -> None:
        self.limit = limit
        self._read_leaves = read_leaves
        self._read_level = read_level
        self._leaves = bytearray()
        self._levels: dict[int, bytearray] = {}
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
        leaves = self._leaves
        found: dict[Node, bytes] = {}
        for level, index in nodes:
            if level >= STORED_MIN_LEVEL:
                found[(level, index)] = bytes(
                    self._levels[level][index * HASH : (index + 1) * HASH]
                )
            elif level == 0:
                found[(0, index)] = bytes(leaves[index * HASH : (index + 1) * HASH])
            else:
                first, end = index << level, (index + 1) << level
                block = leaves[first * HASH : end * HASH]
                found[(level, index)] = subtree_hash(
                    [bytes(block[i : i + HASH]) for i in range(0, len(block), HASH)]
                )
        return found

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
            grown: dict[int, bytearray] = {}
            level = STORED_MIN_LEVEL
            while extent >> level:
                have, want = start >> level, extent >> level
                hashes = self._read_level(level, have, want) if want > have else ()
                if len(hashes) != want - have:
                    return False
                grown[level] = bytearray(b"".join(hashes))
                level += 1
            self._leaves += leaves
            for level, packed in grown.items():
                self._levels.setdefault(level, bytearray()).extend(packed)
            self._size = extent
            return True
