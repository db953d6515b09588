"""Known-answer and failure tests of ledger.integrity.merkle.

Proves that hashing, roots, proof shapes and proofs equal the published RFC 6962 test data of
transparency-dev/merkle (tests/vectors/rfc6962.json), that a proof built from stored nodes is
the published one, and that every corruption probe of the Go reference tests (and each
malformed JSON proof) is refused with IntegrityError.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import IntegrityError
from ledger.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ConsistencyProof,
    InclusionProof,
    Node,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    prove_consistency,
    prove_inclusion,
    range_nodes,
    root_from_leaves,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "rfc6962.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(h)) for h in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["roots_hex"]]
SOME_HASH = bytes.fromhex(VECTORS["hasher"]["some_hash"])
INCLUSION = [
    (v["leaf_index"], v["tree_size"], tuple(bytes.fromhex(h) for h in v["path"]))
    for v in VECTORS["inclusion_proofs"]
]
CONSISTENCY = [
    (v["first"], v["second"], tuple(bytes.fromhex(h) for h in v["path"]))
    for v in VECTORS["consistency_proofs"]
]


class DictReader:
    """A NodeReader over a dict; counts calls so tests can check the one-read promise."""

    def __init__(self, nodes: Mapping[Node, bytes]) -> None:
        self.nodes = dict(nodes)
        self.calls: list[set[Node]] = []

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        self.calls.append(set(nodes))
        return {n: self.nodes[n] for n in nodes if n in self.nodes}


def reader_for(leaves: list[bytes]) -> DictReader:
    compact = CompactRange()
    stored: dict[Node, bytes] = {}
    for index, leaf in enumerate(leaves):
        stored[(0, index)] = leaf
        for level, node_index, digest in compact.append(leaf):
            stored[(level, node_index)] = digest
    return DictReader(stored)


# --- hashing and roots ---------------------------------------------------------------------


def test_hasher_vectors() -> None:
    hasher = VECTORS["hasher"]
    assert bytes.fromhex(hasher["empty_root"]) == EMPTY_ROOT
    assert leaf_hash(b"") == bytes.fromhex(hasher["empty_leaf"])
    assert leaf_hash(hasher["leaf"]["data_ascii"].encode()) == bytes.fromhex(hasher["leaf"]["hash"])
    node = hasher["node"]
    assert node_hash(node["left_ascii"].encode(), node["right_ascii"].encode()) == bytes.fromhex(
        node["hash"]
    )


def test_empty_tree_root() -> None:
    assert root_from_leaves([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert root_of(reader_for(LEAVES), 0) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_published_leaves(size: int) -> None:
    assert root_from_leaves(LEAVES[:size]) == ROOTS[size - 1]
    assert root_of(reader_for(LEAVES), size) == ROOTS[size - 1]


def test_compact_range_closes_published_subtrees() -> None:
    compact = CompactRange()
    closed = [compact.append(leaf) for leaf in LEAVES]
    assert list(closed[0]) == []
    assert list(closed[1]) == [(1, 0, ROOTS[1])]
    assert list(closed[2]) == []
    assert [(level, index) for level, index, _ in closed[3]] == [(1, 1), (2, 0)]
    assert closed[3][1][2] == ROOTS[3]
    assert [(level, index) for level, index, _ in closed[7]] == [(1, 3), (2, 1), (3, 0)]
    assert closed[7][2][2] == ROOTS[7]
    assert compact.size == 8
    assert compact.hashes == (ROOTS[7],)


def test_compact_range_bytes_round_trip() -> None:
    compact = CompactRange()
    for leaf in LEAVES[:7]:
        compact.append(leaf)
    restored = CompactRange.from_bytes(7, compact.to_bytes())
    assert restored.hashes == compact.hashes
    assert restored.root() == ROOTS[6]
    restored.append(LEAVES[7])
    assert restored.root() == ROOTS[7]


def test_compact_range_refuses_wrong_hash_count() -> None:
    with pytest.raises(ValueError, match="holds"):
        CompactRange(3, [ROOTS[0]])


# --- proof shapes (transparency-dev/merkle proof_test.go) ------------------------------------


def _go_elements(case: dict[str, Any]) -> list[set[Node]]:
    """Go's node list as proof elements; a rehash span is one element made of several nodes."""
    nodes = [tuple(n) for n in case["nodes"]]
    begin, end = case.get("rehash", (0, 0))
    elements: list[set[Node]] = []
    index = 0
    while index < len(nodes):
        if index == begin and end > begin:
            elements.append(set(nodes[begin:end]))
            index = end
        else:
            elements.append({nodes[index]})
            index += 1
    return elements


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_node_shapes"], ids=lambda c: f"{c['index']}@{c['size']}"
)
def test_inclusion_shapes(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(ValueError, match="outside"):
            inclusion_ranges(case["index"], case["size"])
        return
    ranges = inclusion_ranges(case["index"], case["size"])
    assert [set(range_nodes(*r)) for r in ranges] == _go_elements(case)


@pytest.mark.parametrize(
    "case", VECTORS["consistency_node_shapes"], ids=lambda c: f"{c['size1']}-{c['size2']}"
)
def test_consistency_shapes(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(ValueError, match="no consistency proof"):
            consistency_ranges(case["size1"], case["size2"])
        return
    ranges = consistency_ranges(case["size1"], case["size2"])
    assert [set(range_nodes(*r)) for r in ranges] == _go_elements(case)


# --- inclusion proofs -------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proof_from_stored_nodes_is_published(
    index: int, size: int, path: tuple[bytes, ...]
) -> None:
    reader = reader_for(LEAVES)
    proof = prove_inclusion(reader, index=index, size=size)
    assert proof == InclusionProof(index, size, LEAVES[index], ROOTS[size - 1], path)
    assert len(reader.calls) == 1
    proof.verify()
    assert InclusionProof.from_json(json.loads(json.dumps(proof.to_json()))) == proof


def _inclusion_probes(
    index: int, size: int, path: tuple[bytes, ...], root: bytes, leaf: bytes
) -> list[tuple[str, int, int, bytes, tuple[bytes, ...], bytes]]:
    """corruptInclusionProof of transparency-dev/merkle proof/verify_test.go."""
    probes = [
        ("leafIndex - 1", index - 1, size, leaf, path, root),
        ("leafIndex + 1", index + 1, size, leaf, path, root),
        ("leafIndex ^ 2", index ^ 2, size, leaf, path, root),
        ("treeSize * 2", index, size * 2, leaf, path, root),
        ("treeSize / 2", index, size // 2, leaf, path, root),
        ("wrong leaf", index, size, b"WrongLeaf", path, root),
        ("empty root", index, size, leaf, path, EMPTY_ROOT),
        ("random root", index, size, leaf, path, SOME_HASH),
        ("trailing garbage", index, size, leaf, (*path, b""), root),
        ("trailing root", index, size, leaf, (*path, root), root),
        ("preceding garbage", index, size, leaf, (b"", *path), root),
        ("preceding root", index, size, leaf, (root, *path), root),
    ]
    for i in range(len(path)):
        flipped = bytes([path[i][0] ^ 8]) + path[i][1:]
        wrong = (*path[:i], flipped, *path[i + 1 :])
        probes.append((f"modified proof[{i}] bit 3", index, size, leaf, wrong, root))
    if path:
        probes.append(("removed component", index, size, leaf, path[:-1], root))
    if len(path) > 1:
        inserted = (path[0], SOME_HASH, *path[1:])
        probes.append(("inserted component", index, size, leaf, inserted, root))
    return probes


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_corruptions_are_refused(index: int, size: int, path: tuple[bytes, ...]) -> None:
    root, leaf = ROOTS[size - 1], LEAVES[index]
    verify_inclusion(leaf_index=index, tree_size=size, leaf=leaf, audit_path=path, root=root)
    accepted = []
    for name, p_index, p_size, p_leaf, p_path, p_root in _inclusion_probes(
        index, size, path, root, leaf
    ):
        try:
            verify_inclusion(
                leaf_index=p_index, tree_size=p_size, leaf=p_leaf, audit_path=p_path, root=p_root
            )
        except IntegrityError:
            continue
        accepted.append(name)
    assert accepted == []


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_go_bad_probes(index: int, size: int) -> None:
    """TestVerifyInclusion: empty proofs with mismatched or empty leaf and root."""
    for leaf, root in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
        with pytest.raises(IntegrityError):
            verify_inclusion(leaf_index=index, tree_size=size, leaf=leaf, audit_path=(), root=root)


def test_inclusion_single_entry() -> None:
    """TestVerifyInclusionSingleEntry: a one-leaf tree's root is its leaf hash."""
    digest = leaf_hash(b"data")
    verify_inclusion(leaf_index=0, tree_size=1, leaf=digest, audit_path=(), root=digest)
    for leaf, root in [(digest, b""), (b"", digest)]:
        with pytest.raises(IntegrityError):
            verify_inclusion(leaf_index=0, tree_size=1, leaf=leaf, audit_path=(), root=root)


def test_inclusion_single_entry_wrong_hash_size() -> None:
    with pytest.raises(IntegrityError):
        verify_inclusion(leaf_index=0, tree_size=1, leaf=b"", audit_path=(), root=b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (8, 8), (9, 8), (-1, 8)])
def test_inclusion_index_outside_tree(index: int, size: int) -> None:
    with pytest.raises(IntegrityError, match="outside"):
        verify_inclusion(
            leaf_index=index, tree_size=size, leaf=LEAVES[0], audit_path=(), root=ROOTS[0]
        )


@pytest.mark.parametrize(("index", "size"), [(0, 0), (8, 8), (3, 2), (-1, 4)])
def test_prove_inclusion_refuses_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        prove_inclusion(reader_for(LEAVES), index=index, size=size)


def test_prove_refuses_missing_stored_node() -> None:
    reader = reader_for(LEAVES)
    del reader.nodes[(2, 1)]
    with pytest.raises(IntegrityError, match=r"level 2, index 1\) is missing"):
        prove_inclusion(reader, index=0, size=8)
    with pytest.raises(IntegrityError, match="missing"):
        prove_consistency(reader, first=4, second=8)


# --- consistency proofs -----------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proof_from_stored_nodes_is_published(
    first: int, second: int, path: tuple[bytes, ...]
) -> None:
    reader = reader_for(LEAVES)
    proof = prove_consistency(reader, first=first, second=second)
    assert proof == ConsistencyProof(first, second, ROOTS[first - 1], ROOTS[second - 1], path)
    assert len(reader.calls) == 1
    proof.verify()
    assert ConsistencyProof.from_json(json.loads(json.dumps(proof.to_json()))) == proof


def _consistency_probes(
    first: int, second: int, root1: bytes, root2: bytes, path: tuple[bytes, ...]
) -> list[tuple[str, int, int, bytes, bytes, tuple[bytes, ...]]]:
    """corruptConsistencyProof of transparency-dev/merkle proof/verify_test.go."""
    probes = [
        ("size1 - 1", first - 1, second, root1, root2, path),
        ("size1 + 1", first + 1, second, root1, root2, path),
        ("size1 ^ 2", first ^ 2, second, root1, root2, path),
        ("size2 * 2", first, second * 2, root1, root2, path),
        ("size2 / 2", first, second // 2, root1, root2, path),
        ("wrong root1", first, second, b"WrongRoot", root2, path),
        ("wrong root2", first, second, root1, b"WrongRoot", path),
        ("swapped roots", first, second, root2, root1, path),
        ("empty proof", first, second, root1, root2, ()),
        ("trailing garbage", first, second, root1, root2, (*path, b"")),
        ("trailing root1", first, second, root1, root2, (*path, root1)),
        ("trailing root2", first, second, root1, root2, (*path, root2)),
        ("preceding garbage", first, second, root1, root2, (b"", *path)),
        ("preceding root1", first, second, root1, root2, (root1, *path)),
        ("preceding root2", first, second, root1, root2, (root2, *path)),
        ("preceding proof[0]", first, second, root1, root2, (path[0], *path)),
        ("truncated proof", first, second, root1, root2, path[:-1]),
    ]
    for i in range(len(path)):
        flipped = bytes([path[i][0] ^ 16]) + path[i][1:]
        wrong = (*path[:i], flipped, *path[i + 1 :])
        probes.append((f"modified proof[{i}] bit 4", first, second, root1, root2, wrong))
    return probes


@pytest.mark.parametrize(("first", "second", "path"), [c for c in CONSISTENCY if c[2]])
def test_consistency_corruptions_are_refused(
    first: int, second: int, path: tuple[bytes, ...]
) -> None:
    root1, root2 = ROOTS[first - 1], ROOTS[second - 1]
    verify_consistency(
        first_size=first,
        second_size=second,
        first_root=root1,
        second_root=root2,
        consistency_path=path,
    )
    accepted = []
    for name, size1, size2, r1, r2, p in _consistency_probes(first, second, root1, root2, path):
        try:
            verify_consistency(
                first_size=size1,
                second_size=size2,
                first_root=r1,
                second_root=r2,
                consistency_path=p,
            )
        except IntegrityError:
            continue
        accepted.append(name)
    assert accepted == []


DONT_CARE_1, DONT_CARE_2 = b"don't care 1", b"don't care 2"


@pytest.mark.parametrize(
    ("first", "second", "root1", "root2", "path", "ok"),
    [
        (0, 0, DONT_CARE_1, DONT_CARE_2, (), False),
        (1, 1, DONT_CARE_1, DONT_CARE_2, (), False),
        (0, 0, DONT_CARE_1, DONT_CARE_1, (), True),
        (0, 1, DONT_CARE_1, DONT_CARE_2, (), True),
        (1, 1, DONT_CARE_2, DONT_CARE_2, (), True),
        (1, 0, DONT_CARE_1, DONT_CARE_2, (), False),
        (2, 1, DONT_CARE_1, DONT_CARE_2, (), False),
        (1, 2, DONT_CARE_1, DONT_CARE_2, (), False),
        (0, 0, EMPTY_ROOT, DONT_CARE_2, (), False),
        (1, 1, EMPTY_ROOT, DONT_CARE_2, (), False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, (EMPTY_ROOT,), False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, (EMPTY_ROOT,), False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, (EMPTY_ROOT,), False),
    ],
)
def test_consistency_go_edge_cases(
    first: int, second: int, root1: bytes, root2: bytes, path: tuple[bytes, ...], ok: bool
) -> None:
    """The table of TestVerifyConsistency in transparency-dev/merkle proof/verify_test.go."""

    def run() -> None:
        verify_consistency(
            first_size=first,
            second_size=second,
            first_root=root1,
            second_root=root2,
            consistency_path=path,
        )

    if ok:
        run()
    else:
        with pytest.raises(IntegrityError):
            run()


@pytest.mark.parametrize(("first", "second"), [(5, 0), (9, 8), (-1, 3)])
def test_prove_consistency_refuses_bad_sizes(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        prove_consistency(reader_for(LEAVES), first=first, second=second)


def test_consistency_size_went_down() -> None:
    with pytest.raises(IntegrityError, match="went down"):
        verify_consistency(
            first_size=8,
            second_size=7,
            first_root=ROOTS[7],
            second_root=ROOTS[6],
            consistency_path=CONSISTENCY[-1][2],
        )


# --- JSON form --------------------------------------------------------------------------------


def _inclusion_json() -> dict[str, object]:
    index, size, path = INCLUSION[2]
    return InclusionProof(index, size, LEAVES[index], ROOTS[size - 1], path).to_json()


def _consistency_json() -> dict[str, object]:
    first, second, path = CONSISTENCY[2]
    return ConsistencyProof(first, second, ROOTS[first - 1], ROOTS[second - 1], path).to_json()


def test_json_shapes() -> None:
    data = _inclusion_json()
    assert data == {
        "leaf_index": 5,
        "tree_size": 8,
        "leaf_hash": LEAVES[5].hex(),
        "root_hash": VECTORS["roots_hex"][7],
        "audit_path": VECTORS["inclusion_proofs"][2]["path"],
    }
    assert _consistency_json()["consistency_path"] == VECTORS["consistency_proofs"][2]["path"]


HASH_FIELD_JUNK: list[object] = [
    "",
    "00" * 31,
    "00" * 33,
    "zz" * 32,
    ("00" * 32)[:-1] + "g",
    None,
    32,
    ["00" * 32],
]
INT_FIELD_JUNK: list[object] = [-1, "5", 5.0, True, None, [5]]


@pytest.mark.parametrize("junk", HASH_FIELD_JUNK, ids=repr)
@pytest.mark.parametrize("key", ["leaf_hash", "root_hash"])
def test_inclusion_json_refuses_bad_hash(key: str, junk: object) -> None:
    with pytest.raises(IntegrityError, match=key):
        InclusionProof.from_json({**_inclusion_json(), key: junk})


@pytest.mark.parametrize("junk", INT_FIELD_JUNK, ids=repr)
@pytest.mark.parametrize("key", ["leaf_index", "tree_size"])
def test_inclusion_json_refuses_bad_int(key: str, junk: object) -> None:
    with pytest.raises(IntegrityError, match=key):
        InclusionProof.from_json({**_inclusion_json(), key: junk})


@pytest.mark.parametrize("junk", ["ab", None, {"0": "00" * 32}, [*["00" * 32], "nothex"]], ids=repr)
def test_inclusion_json_refuses_bad_path(junk: object) -> None:
    with pytest.raises(IntegrityError, match="audit_path"):
        InclusionProof.from_json({**_inclusion_json(), "audit_path": junk})


@pytest.mark.parametrize("junk", HASH_FIELD_JUNK, ids=repr)
@pytest.mark.parametrize("key", ["first_root", "second_root"])
def test_consistency_json_refuses_bad_hash(key: str, junk: object) -> None:
    with pytest.raises(IntegrityError, match=key):
        ConsistencyProof.from_json({**_consistency_json(), key: junk})


@pytest.mark.parametrize("junk", INT_FIELD_JUNK, ids=repr)
@pytest.mark.parametrize("key", ["first_size", "second_size"])
def test_consistency_json_refuses_bad_int(key: str, junk: object) -> None:
    with pytest.raises(IntegrityError, match=key):
        ConsistencyProof.from_json({**_consistency_json(), key: junk})


@pytest.mark.parametrize("junk", ["ab", None, [*["00" * 32], 7]], ids=repr)
def test_consistency_json_refuses_bad_path(junk: object) -> None:
    with pytest.raises(IntegrityError, match="consistency_path"):
        ConsistencyProof.from_json({**_consistency_json(), "consistency_path": junk})


def test_json_proof_with_tampered_value_does_not_verify() -> None:
    data = _inclusion_json()
    data["leaf_index"] = 4
    with pytest.raises(IntegrityError):
        InclusionProof.from_json(data).verify()
    data = _consistency_json()
    data["second_root"] = VECTORS["roots_hex"][6]
    with pytest.raises(IntegrityError, match="second root"):
        ConsistencyProof.from_json(data).verify()


@pytest.mark.parametrize("key", ["leaf_index", "tree_size", "leaf_hash", "root_hash", "audit_path"])
def test_inclusion_json_missing_field(key: str) -> None:
    data = _inclusion_json()
    del data[key]
    with pytest.raises(IntegrityError):
        InclusionProof.from_json(data)


@pytest.mark.parametrize(
    "key", ["first_size", "second_size", "first_root", "second_root", "consistency_path"]
)
def test_consistency_json_missing_field(key: str) -> None:
    data = _consistency_json()
    del data[key]
    with pytest.raises(IntegrityError):
        ConsistencyProof.from_json(data)


def test_json_hash_with_spaces_is_refused() -> None:
    spaced = "00 11 " + "22" * 29  # 64 characters, 31 bytes
    data = {
        "leaf_index": 0,
        "tree_size": 1,
        "leaf_hash": spaced,
        "root_hash": spaced,
        "audit_path": [],
    }
    with pytest.raises(IntegrityError):
        InclusionProof.from_json(data).verify()
