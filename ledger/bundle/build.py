"""Write an export bundle from what a ledger hands over: entries, nodes, checkpoints, texts.

Guarantees:

* Deterministic: the same inputs give byte-identical zips (fixed member order and metadata,
  :func:`ledger.bundle.format.zip_info`; canonical JSON; no clock is read).
* Streaming: entries are written through ``ZipFile.open(name, "w")`` while hashed, and what
  the multiproof needs is spooled to a temporary file (41 bytes an entry), so memory does not
  grow with the scope.
* Nothing unproven is written: the multiproof is folded while it is written and must give the
  proof checkpoint's root, and the consistency proof to the newest checkpoint must verify;
  otherwise an :class:`~ledger.errors.IntegrityError` aborts the bundle.
* Entries must come in strictly increasing ``seq``; the proof checkpoint is the first one whose
  tree covers the largest exported seq, so the proofs do not change as the ledger grows.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from ledger.bundle import format as fmt
from ledger.bundle.dsse import sign_envelope, statement
from ledger.bundle.guide import VERIFY_MD
from ledger.bundle.multiproof import RootFolder, aligned_nodes
from ledger.errors import IntegrityError, NotFoundError, ValidationError
from ledger.integrity.canonical import canonical_bytes
from ledger.integrity.merkle import NodeReader, leaf_hash, prove_consistency

_RECORD = struct.Struct("<BQ32s")  # level (255: an exported leaf), index, leaf hash
_LEAF = 255
_BATCH = 4096
_FLUSH = 1 << 20


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class BundleInputs:
    """Everything but the entries. ``checkpoints`` are by tree size, all signed by the key of
    ``vkey``; ``files`` are the policy texts and reports, by their path in the bundle, and
    ``late_files`` more of them, asked for once the entries are written (what the entries
    cite)."""

    origin: str
    scope: fmt.Scope
    checkpoints: Sequence[SignedCheckpoint]
    vkey: str
    keyid: str
    sign: Callable[[bytes], bytes]
    files: Sequence[tuple[str, bytes]] = ()
    late_files: Callable[[], Sequence[tuple[str, bytes]]] | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BundleSummary:
    entry_count: int
    first_seq: int
    last_seq: int
    proof_tree_size: int
    tree_size: int
    multiproof_nodes: int
    files: Mapping[str, str]
    manifest_sha256: str


class _HashingWriter:
    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._buffer = bytearray()
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        self.sha256.update(self._buffer)
        self._handle.write(self._buffer)
        self._buffer.clear()


def write_bundle(
    target: BinaryIO,
    entries: Iterable[tuple[int, bytes]],
    inputs: BundleInputs,
    *,
    nodes: NodeReader,
    progress: Callable[[int], None] | None = None,
) -> BundleSummary:
    """Write the bundle of ``entries`` (``(seq, entry bytes)``, increasing) to ``target``;
    ``progress`` is called with the seq of each entry written."""
    hashes: dict[str, str] = {}
    with (
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        tempfile.TemporaryFile() as spool,
    ):
        count, first, last = _write_entries(archive, entries, spool, hashes, progress)
        proof, newest = _checkpoints(inputs.checkpoints, last)
        for level, index in aligned_nodes(last + 1, proof.size):
            spool.write(_RECORD.pack(level, index, bytes(32)))
        spool.seek(0)
        node_count = _write_multiproof(archive, spool, proof, nodes, hashes)
        consistency = prove_consistency(nodes, first=proof.size, second=newest.size)
        if (consistency.first_root, consistency.second_root) != (proof.root_hash, newest.root_hash):
            raise IntegrityError(
                f"stored nodes do not reproduce checkpoints {proof.size} and {newest.size}: "
                "run `pactledger verify`"
            )
        consistency.verify()
        files: list[tuple[str, bytes]] = [
            (fmt.CHECKPOINT, proof.note.encode()),
            (fmt.CHECKPOINT_NEWEST, newest.note.encode()),
            (fmt.CONSISTENCY, canonical_bytes(consistency.to_json())),
            *_merged(inputs.files, inputs.late_files() if inputs.late_files else ()),
            (fmt.VERIFIER_KEY, (inputs.vkey + "\n").encode()),
            (fmt.GUIDE, VERIFY_MD.encode()),
        ]
        for name, data in files:
            _write_small(archive, name, data, hashes)
        summary = {
            "format": fmt.FORMAT,
            "origin": inputs.origin,
            "scope": inputs.scope.to_json(),
            "entry_count": count,
            "first_seq": first,
            "last_seq": last,
            "proof_tree_size": proof.size,
            "proof_root_hash": proof.root_hash.hex(),
            "tree_size": newest.size,
            "tree_root_hash": newest.root_hash.hex(),
        }
        manifest = canonical_bytes(
            {
                **summary,
                "multiproof_nodes": node_count,
                "notes": dict(inputs.notes),
                "files": dict(sorted(hashes.items())),
            }
        )
        manifest_sha = hashlib.sha256(manifest).hexdigest()
        _write_small(archive, fmt.MANIFEST, manifest, {})
        body = statement(subject=fmt.MANIFEST, sha256=manifest_sha, predicate=summary)
        _write_small(
            archive, fmt.STATEMENT, sign_envelope(body, keyid=inputs.keyid, sign=inputs.sign), {}
        )
    return BundleSummary(
        entry_count=count,
        first_seq=first,
        last_seq=last,
        proof_tree_size=proof.size,
        tree_size=newest.size,
        multiproof_nodes=node_count,
        files=dict(hashes),
        manifest_sha256=manifest_sha,
    )


def _merged(
    files: Sequence[tuple[str, bytes]], late: Sequence[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """Both lists by name (one order whatever the source); a name twice must be one text."""
    merged: dict[str, bytes] = {}
    for name, data in [*files, *late]:
        if merged.setdefault(name, data) != data:
            raise ValueError(f"two different files named {name}")
    return sorted(merged.items())


def _write_entries(
    archive: zipfile.ZipFile,
    entries: Iterable[tuple[int, bytes]],
    spool: IO[bytes],
    hashes: dict[str, str],
    progress: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    count, first, previous = 0, -1, -1
    with archive.open(fmt.zip_info(fmt.ENTRIES), "w", force_zip64=True) as handle:
        writer = _HashingWriter(handle)
        for seq, data in entries:
            if seq <= previous:
                raise ValueError(f"entries must come in increasing seq: {seq} after {previous}")
            for level, index in aligned_nodes(previous + 1, seq):
                spool.write(_RECORD.pack(level, index, bytes(32)))
            spool.write(_RECORD.pack(_LEAF, seq, leaf_hash(data)))
            writer.write(data)
            writer.write(b"\n")
            if count == 0:
                first = seq
            count += 1
            previous = seq
            if progress is not None:
                progress(seq)
        writer.flush()
    if count == 0:
        raise ValidationError(
            "the scope selects no entries: widen --tenant, --from/--to or --request-id",
            field="scope",
        )
    hashes[fmt.ENTRIES] = writer.sha256.hexdigest()
    return count, first, previous


def _checkpoints(
    checkpoints: Sequence[SignedCheckpoint], last_seq: int
) -> tuple[SignedCheckpoint, SignedCheckpoint]:
    ordered = sorted(checkpoints, key=lambda c: c.size)
    covering = [c for c in ordered if c.size > last_seq]
    if not covering:
        newest = f" (the newest covers seq 0 to {ordered[-1].size - 1})" if ordered else ""
        raise NotFoundError(
            f"no signed checkpoint covers seq {last_seq}, the last entry of the scope{newest}: "
            "run `pactledger checkpoint`, then export again"
        )
    return covering[0], ordered[-1]


def _records(spool: IO[bytes]) -> Iterator[list[tuple[int, int, bytes]]]:
    while chunk := spool.read(_RECORD.size * _BATCH):
        yield [_RECORD.unpack_from(chunk, at) for at in range(0, len(chunk), _RECORD.size)]


def _write_multiproof(
    archive: zipfile.ZipFile,
    spool: IO[bytes],
    proof: SignedCheckpoint,
    nodes: NodeReader,
    hashes: dict[str, str],
) -> int:
    folder = RootFolder(proof.size)
    count = 0
    with archive.open(fmt.zip_info(fmt.INCLUSION), "w", force_zip64=True) as handle:
        writer = _HashingWriter(handle)
        header = {"tree_size": proof.size, "root_hash": proof.root_hash.hex()}
        writer.write(canonical_bytes(header) + b"\n")
        for batch in _records(spool):
            wanted = [(level, index) for level, index, _ in batch if level != _LEAF]
            found = nodes.read_nodes(wanted) if wanted else {}
            for level, index, leaf in batch:
                if level == _LEAF:
                    folder.add(0, index, leaf, where=f"entry seq {index}")
                    continue
                digest = found.get((level, index))
                if digest is None:
                    raise IntegrityError(
                        f"stored Merkle node (level {level}, index {index}) is missing"
                    )
                folder.add(level, index, digest, where=f"node ({level}, {index})")
                line = {"level": level, "index": index, "hash": digest.hex()}
                writer.write(json.dumps(line, separators=(",", ":"), sort_keys=True).encode())
                writer.write(b"\n")
                count += 1
        writer.flush()
    root = folder.root()
    if root != proof.root_hash:
        raise IntegrityError(
            f"the multiproof gives root {root.hex()}, but checkpoint {proof.size} signed "
            f"{proof.root_hash.hex()}: run `pactledger verify`"
        )
    hashes[fmt.INCLUSION] = writer.sha256.hexdigest()
    return count


def _write_small(archive: zipfile.ZipFile, name: str, data: bytes, hashes: dict[str, str]) -> None:
    archive.writestr(fmt.zip_info(name), data)
    hashes[name] = hashlib.sha256(data).hexdigest()
