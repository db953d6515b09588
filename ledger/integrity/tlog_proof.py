"""C2SP transparency-log proofs (https://c2sp.org/tlog-proof): an offline-verifiable text that
holds an entry's index, its RFC 6962 inclusion proof and the signed checkpoint it proves into.

Format::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <decimal>
    <base64 hash>            (zero or more, the audit path bottom-up)
    <blank line>
    <signed checkpoint note>

:func:`verify_tlog_proof` checks the checkpoint signature with a trusted key, then the
inclusion of the given leaf in the checkpoint's tree; ``extra`` is unauthenticated.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import IntegrityError
from ledger.integrity.checkpoint import Checkpoint, open_checkpoint
from ledger.integrity.merkle import HASH_SIZE, verify_inclusion
from ledger.integrity.note import NoteVerifier

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True, slots=True)
class TlogProof:
    index: int
    audit_path: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode()}")
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.audit_path)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        head, separator, note = text.partition("\n\n")
        if not separator:
            raise IntegrityError("tlog-proof has no blank line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise IntegrityError(f"tlog-proof must start with {HEADER!r}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            extra = _b64(rest.pop(0).removeprefix("extra "), "extra")
        if not rest or not rest[0].startswith("index "):
            raise IntegrityError("tlog-proof lacks its 'index N' line")
        number = rest.pop(0).removeprefix("index ")
        if not (number.isascii() and number.isdigit()) or (number != "0" and number[0] == "0"):
            raise IntegrityError(f"tlog-proof index {number!r} is not a decimal number")
        path = tuple(_b64(line, "proof hash") for line in rest)
        if any(len(h) != HASH_SIZE for h in path):
            raise IntegrityError("tlog-proof hashes must be 32 bytes")
        return cls(index=int(number), audit_path=path, checkpoint_note=note, extra=extra)


def verify_tlog_proof(
    text: str,
    *,
    leaf: bytes,
    verifiers: Sequence[NoteVerifier],
    origin: str | None = None,
) -> tuple[TlogProof, Checkpoint]:
    """Raise IntegrityError unless ``leaf`` is proven at the proof's index under a checkpoint
    signed by a trusted key; return the parsed proof and checkpoint."""
    proof = TlogProof.parse(text)
    checkpoint = open_checkpoint(proof.checkpoint_note, verifiers, origin=origin)
    verify_inclusion(
        leaf_index=proof.index,
        tree_size=checkpoint.size,
        leaf=leaf,
        audit_path=proof.audit_path,
        root=checkpoint.root_hash,
    )
    return proof, checkpoint


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise IntegrityError(f"tlog-proof {what} is not base64") from None
