"""Offline verification of an export bundle: nothing but the zip and a trusted key.

Pure: imports the standard library, ``cryptography`` and :mod:`ledger.integrity` only (held by
import-linter); reads no database, no settings, no environment. Every check runs even after
another failed, and each failure names its file and what is wrong.

Rules enforced, in order:

1. The DSSE envelope ``statement.dsse.json`` carries an Ed25519 signature over
   ``PAE(payloadType, payload)`` by the trusted key (``--trusted-key``; without one, the
   bundle's own ``verifier.vkey``, with a warning that nothing then ties the bundle to the
   ledger), and the in-toto statement's subject digest is the SHA-256 of ``manifest.json``.
2. The zip holds exactly the manifest's files plus ``manifest.json`` and
   ``statement.dsse.json``: none missing, none added; each file's SHA-256 is the manifest's.
3. Both checkpoints are signed notes by the trusted key for the manifest's origin and tree
   sizes, and ``consistency.json`` proves the newest extends the proof checkpoint
   (RFC 9162 §2.1.4.2).
4. Every line of ``entries.jsonl`` is a JSON entry whose ``seq`` is strictly increasing and
   below the proof tree size and which lies inside the manifest's scope; the count is the
   manifest's.
5. The leaf hashes ``SHA-256(0x00 || line)`` and the nodes of ``proofs/inclusion.jsonl`` tile
   the proof tree and fold to the proof checkpoint's root (:mod:`ledger.bundle.multiproof`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ledger.bundle import format as fmt
from ledger.bundle.dsse import open_envelope, subject_digest
from ledger.bundle.multiproof import RootFolder, audit_nodes, audit_path
from ledger.errors import IntegrityError, ValidationError
from ledger.integrity.checkpoint import Checkpoint, open_checkpoint
from ledger.integrity.merkle import ConsistencyProof, InclusionProof, leaf_hash
from ledger.integrity.note import NoteVerifier

MAX_SMALL_FILE = 64 << 20
MAX_DETAILS = 20
MAX_LINE = 1 << 20  # an entry is at most 64 KiB canonical
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError)


@dataclass(frozen=True, slots=True)
class Check:
    """One rule and its outcome; ``file`` is the bundle file it is about."""

    name: str
    ok: bool
    detail: str
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "file": self.file, "detail": self.detail}


@dataclass
class BundleReport:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    entry_proof: InclusionProof | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str, file: str | None = None) -> None:
        self.checks.append(Check(name, ok, detail, file))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "key": self.key,
            "warnings": self.warnings,
            "entry_count": self.manifest.get("entry_count"),
            "scope": self.manifest.get("scope"),
            "checks": [c.to_json() for c in self.checks],
            "failures": [c.to_json() for c in self.failures],
            "entry_proof": None if self.entry_proof is None else self.entry_proof.to_json(),
        }

    def raise_for_failures(self) -> None:
        """IntegrityError listing every failed check, if any failed."""
        if not self.ok:
            lines = [f"{c.file or 'bundle'}: {c.name}: {c.detail}" for c in self.failures]
            raise IntegrityError("bundle verification failed: " + "; ".join(lines))


def verify_bundle(
    bundle: str | Path | IO[bytes], *, trusted_key: str | None = None, entry: int | None = None
) -> BundleReport:
    """Check a bundle (see the module docstring); with ``entry``, also derive that entry's
    RFC 9162 inclusion proof. A bad ``trusted_key`` raises ValidationError; everything wrong
    with the bundle is a failed check in the report."""
    trusted = None
    if trusted_key is not None:
        try:
            trusted = NoteVerifier.from_vkey(trusted_key)
        except IntegrityError as exc:
            raise ValidationError(str(exc), field="trusted-key") from None
    report = BundleReport()
    try:
        archive = zipfile.ZipFile(bundle)
    except (zipfile.BadZipFile, OSError) as exc:
        report.add("archive", False, f"not a readable zip archive: {exc}")
        return report
    with archive:
        _verify(archive, report, trusted, entry)
    return report


def _verify(
    archive: zipfile.ZipFile, report: BundleReport, trusted: NoteVerifier | None, entry: int | None
) -> None:
    names = archive.namelist()
    if len(set(names)) != len(names):
        report.add("files", False, "the zip holds a file name twice")
    manifest_bytes = _small(archive, fmt.MANIFEST, report, must=True)
    key = _key(archive, report, trusted)
    if key is not None and manifest_bytes is not None:
        _statement(archive, report, key, manifest_bytes)
    if manifest_bytes is None:
        return
    manifest = _manifest(manifest_bytes, report)
    if manifest is None:
        return
    report.manifest = manifest
    files: dict[str, str] = manifest["files"]
    _file_set(set(names), files, report)
    streamed = {fmt.ENTRIES, fmt.INCLUSION}
    for name in sorted(set(files) - streamed):
        if name in names:
            data = _small(archive, name, report)
            if data is not None:
                _hash_check(name, hashlib.sha256(data).hexdigest(), files[name], report)
    if key is None:
        return
    proof_checkpoint = _checkpoints(archive, report, key, manifest)
    if proof_checkpoint is None or not {fmt.ENTRIES, fmt.INCLUSION} <= set(names):
        return
    _entries(archive, report, manifest, proof_checkpoint, entry)


def _key(
    archive: zipfile.ZipFile, report: BundleReport, trusted: NoteVerifier | None
) -> NoteVerifier | None:
    data = _small(archive, fmt.VERIFIER_KEY, report)
    bundled = None
    if data is not None:
        try:
            bundled = NoteVerifier.from_vkey(data.decode())
        except (IntegrityError, UnicodeDecodeError) as exc:
            report.add("verifier-key", False, f"malformed: {exc}", fmt.VERIFIER_KEY)
    if trusted is None:
        report.warnings.append(
            "no --trusted-key given: checked against the bundle's own verifier.vkey, which "
            "anyone could have replaced; get the ledger's key independently to trust the result"
        )
        report.key = None if bundled is None else bundled.vkey
        return bundled
    report.key = trusted.vkey
    if bundled is not None:
        same = bundled.vkey == trusted.vkey
        detail = (
            "the bundle's key is the trusted key"
            if same
            else f"the bundle names key {bundled.vkey}, not the trusted key {trusted.vkey}"
        )
        report.add("verifier-key", same, detail, fmt.VERIFIER_KEY)
    return trusted


def _statement(
    archive: zipfile.ZipFile, report: BundleReport, key: NoteVerifier, manifest: bytes
) -> None:
    data = _small(archive, fmt.STATEMENT, report, must=True)
    if data is None:
        return
    try:
        payload = open_envelope(data, key)
    except IntegrityError as exc:
        report.add("statement-signature", False, str(exc), fmt.STATEMENT)
        return
    report.add("statement-signature", True, f"DSSE Ed25519 signature by {key.vkey}", fmt.STATEMENT)
    actual = hashlib.sha256(manifest).hexdigest()
    try:
        claimed = subject_digest(payload, fmt.MANIFEST)
    except IntegrityError as exc:
        report.add("statement-subject", False, str(exc), fmt.STATEMENT)
        return
    report.add(
        "statement-subject",
        claimed == actual,
        f"sha256 {actual}" if claimed == actual else f"expected sha256 {claimed}, got {actual}",
        fmt.MANIFEST,
    )


_MANIFEST_INTS = ("entry_count", "first_seq", "last_seq", "proof_tree_size", "tree_size")


def _manifest(data: bytes, report: BundleReport) -> dict[str, Any] | None:
    try:
        manifest = json.loads(data)
        if not isinstance(manifest, dict):
            raise IntegrityError("not a JSON object")
        if manifest.get("format") != fmt.FORMAT:
            raise IntegrityError(f"format: expected {fmt.FORMAT!r}, got {manifest.get('format')!r}")
        for name in _MANIFEST_INTS:
            if type(manifest.get(name)) is not int or manifest[name] < 0:
                raise IntegrityError(f"{name} is not a non-negative integer")
        if not isinstance(manifest.get("origin"), str):
            raise IntegrityError("origin is not a string")
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise IntegrityError("files is not an object of name: sha256")
        manifest["scope_parsed"] = fmt.Scope.from_json(manifest.get("scope"))
    except (UnicodeDecodeError, json.JSONDecodeError, IntegrityError) as exc:
        report.add("manifest", False, f"malformed: {exc}", fmt.MANIFEST)
        return None
    report.add("manifest", True, f"{fmt.FORMAT}, {manifest['entry_count']} entries", fmt.MANIFEST)
    return manifest


def _file_set(names: set[str], files: Mapping[str, str], report: BundleReport) -> None:
    expected = set(files) | {fmt.MANIFEST, fmt.STATEMENT}
    for name in sorted(expected - names):
        report.add("file-missing", False, "listed in the manifest but not in the zip", name)
    for name in sorted(names - expected):
        report.add("file-extra", False, "in the zip but not listed in the manifest", name)
    for name in fmt.REQUIRED:
        if name not in files:
            report.add("file-missing", False, "every bundle must list it in its manifest", name)
    if expected == names and all(n in files for n in fmt.REQUIRED):
        report.add("files", True, f"exactly the {len(expected)} files of the manifest")


def _hash_check(name: str, actual: str, expected: str, report: BundleReport) -> None:
    ok = actual == expected
    detail = f"sha256 {actual}" if ok else f"sha256: expected {expected}, got {actual}"
    report.add("file-hash", ok, detail, name)


def _checkpoints(
    archive: zipfile.ZipFile, report: BundleReport, key: NoteVerifier, manifest: dict[str, Any]
) -> Checkpoint | None:
    opened: dict[str, Checkpoint] = {}
    for name, size_key in (
        (fmt.CHECKPOINT, "proof_tree_size"),
        (fmt.CHECKPOINT_NEWEST, "tree_size"),
    ):
        data = _small(archive, name, report)
        if data is None:
            continue
        try:
            checkpoint = open_checkpoint(data.decode(), [key], origin=manifest["origin"])
        except (IntegrityError, UnicodeDecodeError) as exc:
            report.add("checkpoint-signature", False, str(exc), name)
            continue
        report.add(
            "checkpoint-signature", True, f"tree size {checkpoint.size}, signed by {key.vkey}", name
        )
        if checkpoint.size != manifest[size_key]:
            report.add(
                "checkpoint-size",
                False,
                f"expected tree size {manifest[size_key]} ({size_key}), got {checkpoint.size}",
                name,
            )
        opened[name] = checkpoint
    first, second = opened.get(fmt.CHECKPOINT), opened.get(fmt.CHECKPOINT_NEWEST)
    data = _small(archive, fmt.CONSISTENCY, report)
    if data is not None and first is not None and second is not None:
        try:
            proof = ConsistencyProof.from_json(json.loads(data))
            if (proof.first_size, proof.first_root) != (first.size, first.root_hash):
                raise IntegrityError("it does not start at the proof checkpoint")
            if (proof.second_size, proof.second_root) != (second.size, second.root_hash):
                raise IntegrityError("it does not end at the newest checkpoint")
            proof.verify()
        except (IntegrityError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            report.add("consistency", False, str(exc), fmt.CONSISTENCY)
        else:
            report.add("consistency", True, f"tree {first.size} -> {second.size}", fmt.CONSISTENCY)
    return first


@dataclass
class _Problems:
    name: str
    file: str
    found: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.found) < MAX_DETAILS:
            self.found.append(message)

    def report(self, report: BundleReport, ok_detail: str) -> None:
        if not self.count:
            report.add(self.name, True, ok_detail, self.file)
            return
        more = f"; and {self.count - len(self.found)} more" if self.count > len(self.found) else ""
        report.add(self.name, False, "; ".join(self.found) + more, self.file)


def _entries(
    archive: zipfile.ZipFile,
    report: BundleReport,
    manifest: dict[str, Any],
    checkpoint: Checkpoint,
    wanted: int | None,
) -> None:
    size, scope = checkpoint.size, manifest["scope_parsed"]
    remember = audit_nodes(wanted, size) if wanted is not None and 0 <= wanted < size else ()
    folder = RootFolder(size, remember=remember) if size else None
    entries_sha, nodes_sha = hashlib.sha256(), hashlib.sha256()
    order = _Problems("entry-order", fmt.ENTRIES)
    outside = _Problems("entry-scope", fmt.ENTRIES)
    tiling = _Problems("multiproof", fmt.INCLUSION)
    wanted_leaf: bytes | None = None
    count, previous = 0, -1
    try:
        node_lines = _lines(archive, fmt.INCLUSION, nodes_sha)
        _header(next(node_lines, b""), checkpoint, tiling)
        nodes = _nodes(node_lines, tiling)
        pending = next(nodes, None)
        for number, line in enumerate(_lines(archive, fmt.ENTRIES, entries_sha), start=1):
            count += 1
            seq = _entry_checks(line, number, scope, order, outside)
            if seq is None:
                continue
            if seq <= previous or seq >= size:
                order.add(f"line {number}: seq {seq} after seq {previous}, in a tree of {size}")
            previous = max(previous, seq)
            leaf = leaf_hash(line)
            if seq == wanted:
                wanted_leaf = leaf
            while pending is not None and pending[0] < seq:
                _fold(folder, pending[1], pending[2], pending[3], tiling)
                pending = next(nodes, None)
            _fold(folder, 0, seq, leaf, tiling, where=f"{fmt.ENTRIES} line {number} (seq {seq})")
        while pending is not None:
            _fold(folder, pending[1], pending[2], pending[3], tiling)
            pending = next(nodes, None)
    except (*_ARCHIVE_ERRORS, IntegrityError) as exc:
        report.add("archive", False, f"cannot read the entries or the multiproof: {exc}")
        return
    _hash_check(
        fmt.ENTRIES, entries_sha.hexdigest(), manifest["files"].get(fmt.ENTRIES, ""), report
    )
    _hash_check(
        fmt.INCLUSION, nodes_sha.hexdigest(), manifest["files"].get(fmt.INCLUSION, ""), report
    )
    if count != manifest["entry_count"]:
        order.add(f"the manifest says {manifest['entry_count']} entries, the file holds {count}")
    order.report(report, f"{count} entries, seq strictly increasing below {size}")
    outside.report(report, "every entry is inside the manifest's scope")
    root = None
    if folder is not None and not tiling.count:
        try:
            root = folder.root()
        except IntegrityError as exc:
            tiling.add(str(exc))
    if root is not None and root != checkpoint.root_hash:
        tiling.add(
            f"the leaves and nodes fold to root {root.hex()}, but the checkpoint signed "
            f"{checkpoint.root_hash.hex()}: an entry or a node was changed"
        )
    tiling.report(
        report,
        f"every entry is included in the tree of checkpoint {size}, "
        f"root {checkpoint.root_hash.hex()}",
    )
    if wanted is not None:
        _entry_proof(
            report, folder, wanted, wanted_leaf, checkpoint, ok=root == checkpoint.root_hash
        )


def _entry_proof(
    report: BundleReport,
    folder: RootFolder | None,
    wanted: int,
    leaf: bytes | None,
    checkpoint: Checkpoint,
    *,
    ok: bool,
) -> None:
    if leaf is None or folder is None:
        raise ValidationError(f"entry seq {wanted} is not in this bundle", field="entry")
    if not ok:
        return
    proof = audit_path(folder, index=wanted, leaf=leaf, root=checkpoint.root_hash)
    proof.verify()
    report.entry_proof = proof


def _fold(
    folder: RootFolder | None,
    level: int,
    index: int,
    digest: bytes,
    tiling: _Problems,
    *,
    where: str | None = None,
) -> None:
    if folder is None or tiling.count:
        return  # past the first tiling error every later item is misplaced too
    try:
        folder.add(level, index, digest, where=where or f"node (level {level}, index {index})")
    except IntegrityError as exc:
        tiling.add(str(exc))


def _entry_checks(
    line: bytes, number: int, scope: fmt.Scope, order: _Problems, outside: _Problems
) -> int | None:
    try:
        data = json.loads(line)
        seq, tenant = data["seq"], data["tenant"]
        occurred, stream = data["occurred_at"], data["stream"]
        if type(seq) is not int or not all(isinstance(v, str) for v in (tenant, occurred, stream)):
            raise TypeError("seq, tenant, occurred_at or stream has the wrong type")
    except (ValueError, KeyError, TypeError) as exc:
        order.add(f"line {number}: not an entry ({exc})")
        return None
    reason = scope.rejects(tenant=tenant, occurred_at=occurred, stream=stream)
    if reason is not None:
        outside.add(f"line {number} (seq {seq}): {reason}")
    return int(seq)


def _header(line: bytes, checkpoint: Checkpoint, tiling: _Problems) -> None:
    try:
        header = json.loads(line)
        if (
            header.get("tree_size") != checkpoint.size
            or header.get("root_hash") != checkpoint.root_hash.hex()
        ):
            tiling.add("its first line does not name the proof checkpoint's tree size and root")
    except (ValueError, AttributeError) as exc:
        tiling.add(f"its first line is not the JSON header: {exc}")


def _nodes(lines: Iterator[bytes], tiling: _Problems) -> Iterator[tuple[int, int, int, bytes]]:
    """(first leaf, level, index, hash) of each node line; malformed lines are reported."""
    for number, line in enumerate(lines, start=2):
        try:
            node = json.loads(line)
            level, index, digest = node["level"], node["index"], bytes.fromhex(node["hash"])
            if type(level) is not int or type(index) is not int or not 0 <= level < 64 or index < 0:
                raise ValueError("level or index out of range")
        except (ValueError, KeyError, TypeError) as exc:
            tiling.add(f"line {number}: not a node ({exc})")
            continue
        yield index << level, level, index, digest


def _lines(archive: zipfile.ZipFile, name: str, digest: Any) -> Iterator[bytes]:
    """The member's lines (without newlines), hashing every byte as it is read."""
    with archive.open(name) as handle:
        rest = b""
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            if len(rest) > MAX_LINE:
                raise IntegrityError(f"{name} has a line longer than {MAX_LINE} bytes")
            yield from parts
        if rest:
            yield rest


def _small(
    archive: zipfile.ZipFile, name: str, report: BundleReport, *, must: bool = False
) -> bytes | None:
    """The member's bytes; a missing one is reported here only with ``must`` (the manifest
    and the statement, which the manifest cannot list), else by the file-set check."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        if must:
            report.add("file-missing", False, "not in the zip", name)
        return None
    if info.file_size > MAX_SMALL_FILE:
        report.add(
            "file-size", False, f"{info.file_size} bytes, more than a bundle file may hold", name
        )
        return None
    try:
        return archive.read(name)
    except _ARCHIVE_ERRORS as exc:
        report.add("archive", False, f"cannot be read from the zip: {exc}", name)
        return None
