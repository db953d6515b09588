"""Auditing a stored log from its bytes alone: the engine behind ``pactledger verify``.

Pure and streaming: entries arrive in ``seq`` order from any iterable and are never held, so
memory is O(log n) plus one batch of Merkle nodes. For every entry the auditor checks, in order:

1. ``seq`` follows the previous one (else **missing**);
2. the entry bytes are canonical JSON naming that same ``seq`` (else **reordered**, or
   **changed** if they do not parse);
3. the indexed columns equal the fields in the bytes, ``leaf_hash = SHA-256(0x00 || bytes)``,
   ``prev_hash`` is the previous chain hash and ``chain_hash`` follows (else **changed**);
4. every stored complete Merkle subtree (16 leaves and more) equals the one recomputed from
   the leaves (else **bad-node**; proofs are served from those nodes);
5. at the size of every checkpoint, stored or held outside the database, the recomputed root
   equals the signed root (else **inconsistent-checkpoint**).

At the end the log must reach every signed checkpoint (else **truncated**) and agree with the
head row (else **truncated** or **bad-head**). Stored checkpoints must carry a valid signature by
a trusted key (else **bad-checkpoint**). The first failure raises
:class:`~ledger.errors.TamperedLogError` with the seq and the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from ledger.errors import IntegrityError, TamperedLogError
from ledger.integrity.chain import GENESIS_CHAIN_HASH, chain_next
from ledger.integrity.checkpoint import Checkpoint, open_checkpoint
from ledger.integrity.merkle import EMPTY_ROOT, STORED_MIN_LEVEL, CompactRange, leaf_hash
from ledger.integrity.note import NoteVerifier
from ledger.log.entry import SealedEntry, format_time
from ledger.log.ports import CheckpointRecord
from ledger.log.sequencer import Head

NodesIn = Callable[[int, int, int], Mapping[int, bytes]]
_NODE_BATCH = 8192
_COLUMNS_IN_BYTES = ("event_id", "stream", "stream_version", "type", "schema_version", "tenant")


@dataclass(frozen=True, slots=True)
class SignedRoot:
    """A root the log must reproduce at ``size``, and where the claim came from."""

    size: int
    root_hash: bytes
    source: str


@dataclass(slots=True)
class AuditReport:
    size: int = 0
    root_hash: bytes = b""
    chain_head: bytes = GENESIS_CHAIN_HASH
    checkpoints_checked: int = 0
    nodes_checked: int = 0
    sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "chain_head": self.chain_head.hex(),
            "checkpoints_checked": self.checkpoints_checked,
            "nodes_checked": self.nodes_checked,
        }


def signed_roots(
    records: Sequence[CheckpointRecord],
    external_notes: Sequence[tuple[str, str]],
    *,
    origin: str,
    verifiers: Sequence[NoteVerifier],
) -> list[SignedRoot]:
    """Check every checkpoint's signature and origin; return the roots they vouch for.

    ``external_notes`` are ``(label, note text)`` pairs kept outside the database.
    """
    roots: list[SignedRoot] = []
    for record in records:
        label = f"stored checkpoint at size {record.tree_size}"
        checkpoint = _open(record.note, verifiers, origin, label)
        if (checkpoint.size, checkpoint.root_hash) != (record.tree_size, record.root_hash):
            raise TamperedLogError(
                f"{label}: its columns say size {record.tree_size} root "
                f"{record.root_hash.hex()}, its signed note says size {checkpoint.size} root "
                f"{checkpoint.root_hash.hex()}",
                seq=None,
                kind="bad-checkpoint",
            )
        roots.append(SignedRoot(checkpoint.size, checkpoint.root_hash, label))
    for label, note in external_notes:
        checkpoint = _open(note, verifiers, origin, label)
        roots.append(SignedRoot(checkpoint.size, checkpoint.root_hash, label))
    return sorted(roots, key=lambda r: r.size)


def _open(note: str, verifiers: Sequence[NoteVerifier], origin: str, label: str) -> Checkpoint:
    try:
        return open_checkpoint(note, verifiers, origin=origin)
    except IntegrityError as exc:
        raise TamperedLogError(f"{label}: {exc}", seq=None, kind="bad-checkpoint") from None


def audit_log(
    entries: Iterable[SealedEntry],
    *,
    head: Head,
    roots: Sequence[SignedRoot],
    nodes_in: NodesIn | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Recompute everything from the entry bytes; raise TamperedLogError at the first failure."""
    report = AuditReport()
    compact = CompactRange()
    chain = GENESIS_CHAIN_HASH
    pending_roots = list(roots)
    pending_nodes: list[tuple[int, int, bytes]] = []
    expected = 0
    while pending_roots and pending_roots[0].size == 0:
        _check_root(pending_roots.pop(0), EMPTY_ROOT, report)
    for entry in entries:
        seq = entry.seq
        if seq != expected:
            raise TamperedLogError(
                f"entry seq {expected} is missing: the next stored entry is seq {seq}",
                seq=expected,
                kind="missing",
            )
        _check_bytes(entry)
        leaf = leaf_hash(entry.entry_bytes)
        if leaf != entry.leaf_hash:
            raise _changed(seq, "leaf hash", leaf, entry.leaf_hash)
        if entry.prev_hash != chain:
            raise _changed(seq, "previous chain hash", chain, entry.prev_hash)
        chain = chain_next(chain, leaf)
        if chain != entry.chain_hash:
            raise _changed(seq, "chain hash", chain, entry.chain_hash)
        closed = compact.append(leaf)
        if nodes_in is not None and len(closed) >= STORED_MIN_LEVEL:
            pending_nodes.extend(closed[STORED_MIN_LEVEL - 1 :])
            if len(pending_nodes) >= _NODE_BATCH:
                report.nodes_checked += _check_nodes(pending_nodes, nodes_in)
                pending_nodes.clear()
        expected += 1
        while pending_roots and pending_roots[0].size == expected:
            _check_root(pending_roots.pop(0), compact.root(), report)
        if progress is not None:
            progress(expected)
    if nodes_in is not None and pending_nodes:
        report.nodes_checked += _check_nodes(pending_nodes, nodes_in)
    if pending_roots:
        signed = pending_roots[0]
        raise TamperedLogError(
            f"the log holds {expected} entries but the {signed.source} signs "
            f"{signed.size}: entries from seq {expected} were removed (truncated below a signed "
            "checkpoint)",
            seq=expected,
            kind="truncated",
        )
    if expected < head.size:
        raise TamperedLogError(
            f"the log holds {expected} entries but its head says {head.size}: entries from seq "
            f"{expected} were removed",
            seq=expected,
            kind="truncated",
        )
    root = compact.root()
    if expected > head.size or head.chain_head != chain or head.root_hash != root:
        raise TamperedLogError(
            f"the head row (size {head.size}, root {head.root_hash.hex()}) does not match the "
            f"entries (size {expected}, root {root.hex()})",
            seq=min(expected, head.size),
            kind="bad-head",
        )
    report.size, report.root_hash, report.chain_head = expected, root, chain
    return report


def _check_bytes(entry: SealedEntry) -> None:
    seq = entry.seq
    try:
        obj = orjson.loads(entry.entry_bytes)
    except orjson.JSONDecodeError:
        raise TamperedLogError(
            f"entry bytes at seq {seq} are not JSON: the entry was changed",
            seq=seq,
            kind="changed",
        ) from None
    if not isinstance(obj, dict):
        raise TamperedLogError(
            f"entry bytes at seq {seq} are not an object", seq=seq, kind="changed"
        )
    if obj.get("seq") != seq:
        raise TamperedLogError(
            f"the entry stored at seq {seq} is the entry of seq {obj.get('seq')}: "
            "entries were reordered",
            seq=seq,
            kind="reordered",
        )
    in_bytes = tuple(obj.get(name) for name in _COLUMNS_IN_BYTES)
    in_columns = (
        entry.event_id,
        entry.stream,
        entry.stream_version,
        entry.type,
        entry.schema_version,
        entry.tenant,
    )
    if in_bytes == in_columns:
        return _check_key(entry, obj)
    for name in _COLUMNS_IN_BYTES:
        if obj.get(name) != getattr(entry, name):
            raise TamperedLogError(
                f"column {name} at seq {seq} says {getattr(entry, name)!r} but the entry bytes "
                f"say {obj.get(name)!r}: the entry was changed",
                seq=seq,
                kind="changed",
            )
    raise AssertionError("a column differed but none was found")  # pragma: no cover


def _check_key(entry: SealedEntry, obj: dict[str, object]) -> None:
    seq = entry.seq
    for name, moment in (("occurred_at", entry.occurred_at), ("recorded_at", entry.recorded_at)):
        if obj.get(name) != format_time(moment):
            raise TamperedLogError(
                f"column {name} at seq {seq} says {format_time(moment)} but the entry bytes say "
                f"{obj.get(name)!r}: the entry was changed",
                seq=seq,
                kind="changed",
            )
    if obj.get("idempotency_key") != entry.idempotency_key:
        raise TamperedLogError(
            f"column idempotency_key at seq {seq} does not match the entry bytes",
            seq=seq,
            kind="changed",
        )


def _changed(seq: int, what: str, computed: bytes, stored: bytes) -> TamperedLogError:
    return TamperedLogError(
        f"{what} at seq {seq}: expected {computed.hex()} (recomputed), got {stored.hex()} "
        "(stored): the entry was changed",
        seq=seq,
        kind="changed",
    )


def _check_root(signed: SignedRoot, root: bytes, report: AuditReport) -> None:
    if root != signed.root_hash:
        raise TamperedLogError(
            f"the first {signed.size} entries hash to root {root.hex()}, but the {signed.source} "
            f"signs {signed.root_hash.hex()}: the log was rewritten below seq {signed.size}",
            seq=max(signed.size - 1, 0),
            kind="inconsistent-checkpoint",
        )
    report.checkpoints_checked += 1
    report.sources.append(signed.source)


def _check_nodes(nodes: list[tuple[int, int, bytes]], nodes_in: NodesIn) -> int:
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for level, index, digest in nodes:
        by_level.setdefault(level, []).append((index, digest))
    for level, items in sorted(by_level.items()):
        stored = nodes_in(level, items[0][0], items[-1][0])
        for index, digest in items:
            if stored.get(index) != digest:
                first = index << level
                state = "missing" if index not in stored else "different"
                raise TamperedLogError(
                    f"stored Merkle node (level {level}, index {index}) over seq {first} to "
                    f"{first + (1 << level) - 1} is {state} from the recomputed hash "
                    f"{digest.hex()}: proofs served from it would fail",
                    seq=first,
                    kind="bad-node",
                )
    return len(nodes)
