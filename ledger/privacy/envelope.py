"""Encrypted personal values: the envelope text stored in payloads, and the key wrapping.

A personal value (an end-user id, an e-mail, free text) is stored in the log only as

    pdk1:<key_id>:<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>

encrypted with the data key of its subject (``key_id`` names it; 32 random bytes) and a fresh
96-bit random nonce. The associated data binds the value to its key, event type and field
(``pdk1 ‖ key_id ‖ type ‖ field``), so a ciphertext moved to another field or entry does not
open. Data keys are kept only wrapped by the key-encryption key (AES key wrap, RFC 3394, from
``cryptography``); destroying the wrapped key makes every value of the subject unreadable
(crypto-shredding) while the stored bytes, and so every hash and proof, stay as they were.

Subjects are found by a keyed digest, never by their identifier in clear: HMAC-SHA-256 of
``tenant ‖ 0x00 ‖ subject id`` under a key derived from the key-encryption key (HKDF-SHA-256),
so the database alone cannot confirm a guessed identity. Blinded values (HMAC-SHA-256 under the
data key) stand in for personal values wherever a digest of a request is kept, for the same
reason, and become unguessable once the data key is destroyed.

Guarantees: pure functions over bytes and text; a tampered, truncated or misplaced envelope
raises :class:`~ledger.errors.IntegrityError`; a malformed one :class:`ValueError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from ledger.errors import IntegrityError

PREFIX = "pdk1"
KEY_BYTES = 32  # AES-256 data keys and key-encryption key
NONCE_BYTES = 12  # GCM's 96-bit nonce
ERASED = "[erased]"
_ENVELOPE = re.compile(r"^pdk1:([0-9a-f]{32}):([A-Za-z0-9_-]+)$")
_INDEX_INFO = b"pactledger subject index v1"


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_key_id() -> str:
    return os.urandom(16).hex()


def is_envelope(value: object) -> bool:
    return isinstance(value, str) and _ENVELOPE.match(value) is not None


def key_id_of(envelope: str) -> str:
    """The data key id an envelope names (``ValueError`` if it is not an envelope)."""
    found = _ENVELOPE.match(envelope)
    if found is None:
        raise ValueError("not a pdk1 envelope")
    return found.group(1)


def seal(data_key: bytes, key_id: str, plaintext: str, *, event_type: str, field: str) -> str:
    """Encrypt ``plaintext`` for ``field`` of an ``event_type`` payload."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(
        nonce, plaintext.encode("utf-8"), _associated(key_id, event_type, field)
    )
    text = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
    return f"{PREFIX}:{key_id}:{text}"


def open_envelope(data_key: bytes, envelope: str, *, event_type: str, field: str) -> str:
    """The plaintext of ``envelope``; IntegrityError if it was altered or moved."""
    key_id = key_id_of(envelope)
    blob = _unbase64(envelope.rsplit(":", 1)[1])
    if len(blob) < NONCE_BYTES + 16:
        raise IntegrityError(f"the encrypted {field} is truncated")
    try:
        plain = AESGCM(data_key).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _associated(key_id, event_type, field)
        )
    except InvalidTag:
        raise IntegrityError(
            f"the encrypted {field} does not open with its key: altered, or moved from another "
            "field or entry"
        ) from None
    return plain.decode("utf-8")


def blind(data_key: bytes, plaintext: str, *, field: str) -> str:
    """A stand-in for a personal value in request digests: equal for equal values under one
    key, unguessable without it."""
    mac = hmac.new(data_key, f"{field}\x00{plaintext}".encode(), hashlib.sha256)
    return f"blinded:{mac.hexdigest()}"


def subject_digest(kek: bytes, *, tenant: str, subject: str) -> str:
    """The keyed digest a subject's data key is found by (hex)."""
    index_key = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_INDEX_INFO
    ).derive(kek)
    return hmac.new(index_key, f"{tenant}\x00{subject}".encode(), hashlib.sha256).hexdigest()


def wrap(kek: bytes, data_key: bytes) -> bytes:
    return aes_key_wrap(kek, data_key)


def unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """The data key; IntegrityError if ``wrapped`` was altered or wrapped by another KEK."""
    try:
        return aes_key_unwrap(kek, wrapped)
    except InvalidUnwrap:
        raise IntegrityError(
            "a subject key does not unwrap with this key-encryption key: PACTLEDGER_KEK points "
            "at another key than the one the keys were made with"
        ) from None


def _associated(key_id: str, event_type: str, field: str) -> bytes:
    return f"{PREFIX}\x00{key_id}\x00{event_type}\x00{field}".encode()


def _unbase64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
