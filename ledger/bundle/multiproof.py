"""One Merkle multiproof for many leaves: the inclusion of every exported entry at once.

Per-entry RFC 9162 audit paths for a million entries would be ~1 GB; instead a bundle stores
the hashes of the *maximal complete aligned subtrees* that cover every leaf it does **not**
export (each gap between exported leaves, and up to the tree size). Exported leaves and these
nodes tile ``[0, tree_size)`` left to right; :class:`RootFolder` merges them on a stack (two
equal-level neighbours are always siblings, as in binary addition), then folds the right edge
as RFC 9162 §2.1.1 shapes a tree whose size is not a power of two. If the result equals the
signed checkpoint's root, every exported leaf is proven at its index.

Guarantees:

* :func:`aligned_nodes` of ``[start, end)`` yields the fewest complete subtrees
  ``(level, index)`` covering exactly that range, left to right; each lies inside the RFC 9162
  tree of any size >= ``end`` (a complete aligned subtree below the size is one of its nodes).
* :class:`RootFolder` refuses (IntegrityError naming the place) an item that does not start
  where the previous one ended, a node past the tree size, and a root over fewer leaves than
  the size; memory is O(log n) plus the nodes it is asked to remember.
* :func:`audit_path` turns the hashes remembered during one pass into the standard RFC 9162
  inclusion proof of one exported leaf (ledger.integrity.merkle's JSON), so one request can be
  checked by any RFC 9162 verifier.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from ledger.errors import IntegrityError
from ledger.integrity.merkle import (
    InclusionProof,
    Node,
    fold_right,
    inclusion_ranges,
    node_hash,
    range_nodes,
)


def aligned_nodes(start: int, end: int) -> Iterator[Node]:
    """The maximal complete aligned subtrees covering ``[start, end)``, left to right."""
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        yield level, start >> level
        start += 1 << level


def gap_nodes(exported: Iterable[int], size: int) -> Iterator[Node]:
    """The nodes covering every leaf of ``[0, size)`` not in ``exported`` (increasing)."""
    position = 0
    for seq in exported:
        yield from aligned_nodes(position, seq)
        position = seq + 1
    yield from aligned_nodes(position, size)


class RootFolder:
    """Recompute a tree's root from a left-to-right tiling of leaves and complete subtrees."""

    def __init__(self, size: int, *, remember: Collection[Node] = ()) -> None:
        if size < 1:
            raise ValueError("a multiproof needs a tree of at least one leaf")
        self.size = size
        self.position = 0
        self._stack: list[tuple[int, bytes]] = []
        self._remember = frozenset(remember)
        self.remembered: dict[Node, bytes] = {}

    def add(self, level: int, index: int, digest: bytes, *, where: str) -> None:
        """Add the complete subtree ``(level, index)`` with hash ``digest``."""
        start = index << level
        if start != self.position:
            raise IntegrityError(
                f"{where}: expected the tiling to continue at leaf {self.position}, "
                f"got (level {level}, index {index}) starting at leaf {start}"
            )
        if start + (1 << level) > self.size:
            raise IntegrityError(
                f"{where}: (level {level}, index {index}) ends past the tree size {self.size}"
            )
        if len(digest) != 32:
            raise IntegrityError(f"{where}: a hash has {len(digest)} bytes, expected 32")
        self.position = start + (1 << level)
        self._keep(level, index, digest)
        stack = self._stack
        while stack and stack[-1][0] == level:
            digest = node_hash(stack.pop()[1], digest)
            level += 1
            index >>= 1
            self._keep(level, index, digest)
        stack.append((level, digest))

    def root(self) -> bytes:
        if self.position != self.size:
            raise IntegrityError(
                f"the leaves and nodes cover {self.position} of the tree's {self.size} leaves"
            )
        return fold_right([digest for _, digest in self._stack])

    def _keep(self, level: int, index: int, digest: bytes) -> None:
        if (level, index) in self._remember:
            self.remembered[(level, index)] = digest


def audit_nodes(index: int, size: int) -> set[Node]:
    """What a :class:`RootFolder` must remember to give :func:`audit_path` of leaf ``index``."""
    return {
        node for start, end in inclusion_ranges(index, size) for node in range_nodes(start, end)
    }


def audit_path(folder: RootFolder, *, index: int, leaf: bytes, root: bytes) -> InclusionProof:
    """The RFC 9162 inclusion proof of leaf ``index`` from the hashes ``folder`` remembered
    (built with ``remember=audit_nodes(index, size)``)."""
    path = []
    for start, end in inclusion_ranges(index, folder.size):
        try:
            path.append(fold_right([folder.remembered[n] for n in range_nodes(start, end)]))
        except KeyError as missing:
            raise IntegrityError(
                f"the multiproof does not determine node {missing.args[0]} of leaf {index}'s "
                "audit path"
            ) from None
    return InclusionProof(
        leaf_index=index,
        tree_size=folder.size,
        leaf_hash=leaf,
        root_hash=root,
        audit_path=tuple(path),
    )
