"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

Guarantees:

* A note is UTF-8 text ending in a newline, a blank line, then one or more lines
  ``— <key name> <base64(key id || signature)>``. Text with ASCII control characters other than
  newline, or without that shape, is refused.
* ``key id = SHA-256(key name || 0x0A || 0x01 || public key)[:4]`` (signature type 0x01 is
  Ed25519); verifier keys print as ``<name>+<hex key id>+<base64(0x01 || public key)>``.
* :func:`open_note` returns the text only when a signature by a trusted key verifies; signatures
  by unknown keys are ignored, a bad signature by a known key is an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import IntegrityError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100


def key_id(name: str, public_key: bytes, algorithm: int = ALG_ED25519) -> bytes:
    """The 4-byte key ID of C2SP signed-note."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public_key).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise ValueError(f"invalid signed-note key name {name!r}: non-empty, no spaces or '+'")


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A trusted Ed25519 key: its name, key ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string ``name+hexid+base64key``."""
        parts = vkey.strip().split("+", 2)  # names hold no "+", base64 may
        if len(parts) != 3:
            raise IntegrityError(f"verifier key {vkey!r} is not of the form name+keyid+key")
        name, hex_id, encoded = parts
        try:
            _check_key_name(name)
            claimed_id = bytes.fromhex(hex_id)
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise IntegrityError(f"verifier key {vkey!r} is malformed: {exc}") from None
        if len(claimed_id) != 4 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise IntegrityError(f"verifier key {vkey!r} is not an Ed25519 (type 0x01) key")
        derived = key_id(name, raw[1:])
        if derived != claimed_id:
            raise IntegrityError(
                f"verifier key {vkey!r}: expected key id {derived.hex()}, got {hex_id}"
            )
        return cls(name=name, key_id=claimed_id, public_key=raw[1:])

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """Signs note texts with one Ed25519 private key under one key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self.name = name
        self._private_key = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = NoteVerifier(name=name, key_id=key_id(name, public), public_key=public)

    def signature_line(self, text: str) -> str:
        _check_text(text)
        signature = self._private_key.sign(text.encode())
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"

    def sign(self, text: str) -> str:
        """The signed note: ``text``, a blank line, and this key's signature line."""
        return f"{text}\n{self.signature_line(text)}"


@dataclass(frozen=True, slots=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose text was verified by at least one trusted key."""

    text: str
    verified_by: tuple[NoteVerifier, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise IntegrityError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise IntegrityError("note holds ASCII control characters other than newline")


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """Split a signed note into its text and parsed signature lines, checking the format."""
    _check_text(note)
    cut = note.rfind("\n\n")
    if cut < 0:
        raise IntegrityError("note has no blank line between text and signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block.split("\n")[:-1]
    if not lines:
        raise IntegrityError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise IntegrityError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise IntegrityError(f"malformed signature line {line!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise IntegrityError(f"signature line of {name!r} is not base64") from None
        if not name or " " in encoded or len(raw) < 5:
            raise IntegrityError(f"malformed signature line {line!r}")
        signatures.append(SignatureLine(name=name, key_id=raw[:4], signature=raw[4:]))
    return text, signatures


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """Return the note's text if a trusted key signed it; raise IntegrityError otherwise."""
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteVerifier] = []
    for line in signatures:
        verifier = known.get((line.name, line.key_id))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), line.signature):
            raise IntegrityError(
                f"signature by {verifier.vkey} does not verify: the note was altered or forged"
            )
        verified.append(verifier)
    if not verified:
        names = ", ".join(sorted({s.name for s in signatures}))
        raise IntegrityError(f"note is not signed by a trusted key (signed by: {names})")
    return OpenedNote(text=text, verified_by=tuple(verified))
