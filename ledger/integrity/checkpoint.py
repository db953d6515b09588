"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint) as signed notes.

A checkpoint body is three lines, each ending in a newline: the log's origin, the tree size in
decimal (no leading zeros), and the base64 Merkle root; optional extension lines follow. It is
signed as a C2SP signed note with Ed25519. Parsing refuses anything else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.errors import IntegrityError
from ledger.integrity.merkle import HASH_SIZE
from ledger.integrity.note import NoteSigner, NoteVerifier, open_note


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "".join(f"{line}\n" for line in [*lines, *self.extensions])

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise IntegrityError("checkpoint body needs origin, size and root lines")
        origin, size_text, root_text, *extensions = lines[:-1]
        if not origin or origin != origin.strip():
            raise IntegrityError("checkpoint origin line is empty or padded")
        if not (size_text.isascii() and size_text.isdigit()) or (
            size_text != "0" and size_text.startswith("0")
        ):
            raise IntegrityError(f"checkpoint tree size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error:
            raise IntegrityError("checkpoint root hash is not base64") from None
        if len(root) != HASH_SIZE:
            raise IntegrityError(f"checkpoint root hash has {len(root)} bytes, expected 32")
        if any(not line for line in extensions):
            raise IntegrityError("checkpoint extension lines must not be empty")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note text."""
    return signer.sign(checkpoint.body())


def open_checkpoint(
    note: str, verifiers: Iterable[NoteVerifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note and parse it; ``origin`` pins the expected log."""
    checkpoint = Checkpoint.parse(open_note(note, verifiers).text)
    if origin is not None and checkpoint.origin != origin:
        raise IntegrityError(f"checkpoint origin: expected {origin!r}, got {checkpoint.origin!r}")
    return checkpoint
