"""DSSE envelopes and in-toto statements (ledger.bundle.dsse).

Proves the PAE byte form of the DSSE spec (its worked example shape), that an envelope signed
with an Ed25519 key opens with that key's verifier and yields the exact payload, and that a
changed payload, payload type, signature or another key is refused with an IntegrityError;
and that the statement names its subject's sha256 and is refused with another predicate type.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.bundle.dsse import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    open_envelope,
    pae,
    sign_envelope,
    statement,
    subject_digest,
)
from ledger.errors import IntegrityError
from ledger.integrity.note import NoteSigner

SIGNER = NoteSigner("dsse.test/log", Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32))
OTHER = NoteSigner("dsse.test/log", Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32))
KEY_1 = Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32)


def test_pae_is_the_spec_encoding() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("é", b"x") == "DSSEv1 2 é 1 x".encode()  # LEN counts bytes


def envelope(payload: bytes = b'{"a":1}') -> bytes:
    return sign_envelope(payload, keyid=SIGNER.verifier.key_id.hex(), sign=KEY_1.sign)


def test_a_signed_envelope_opens_with_its_key() -> None:
    data = envelope()
    parsed = json.loads(data)
    assert parsed["payloadType"] == PAYLOAD_TYPE
    assert parsed["signatures"][0]["keyid"] == SIGNER.verifier.key_id.hex()
    assert open_envelope(data, SIGNER.verifier) == b'{"a":1}'


def test_another_key_is_refused() -> None:
    with pytest.raises(IntegrityError, match="no DSSE signature verifies"):
        open_envelope(envelope(), OTHER.verifier)


@pytest.mark.parametrize("field", ["payload", "payloadType", "sig"])
def test_a_changed_envelope_is_refused(field: str) -> None:
    parsed = json.loads(envelope())
    if field == "payload":
        parsed["payload"] = base64.b64encode(b'{"a":2}').decode()
    elif field == "payloadType":
        parsed["payloadType"] = "application/json"
    else:
        sig = bytearray(base64.b64decode(parsed["signatures"][0]["sig"]))
        sig[0] ^= 1
        parsed["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(IntegrityError):
        open_envelope(json.dumps(parsed).encode(), SIGNER.verifier)


def test_garbage_is_refused() -> None:
    for data in (b"", b"[]", b"{", b'{"payloadType":"application/vnd.in-toto+json"}'):
        with pytest.raises(IntegrityError):
            open_envelope(data, SIGNER.verifier)


def test_the_statement_names_its_subject() -> None:
    body = statement(subject="manifest.json", sha256="ab" * 32, predicate={"entry_count": 3})
    parsed = json.loads(body)
    assert parsed["_type"] == STATEMENT_TYPE
    assert parsed["predicateType"] == PREDICATE_TYPE
    assert parsed["subject"] == [{"name": "manifest.json", "digest": {"sha256": "ab" * 32}}]
    assert subject_digest(body, "manifest.json") == "ab" * 32
    with pytest.raises(IntegrityError, match="no sha256 subject"):
        subject_digest(body, "other.json")
    wrong = json.dumps({**parsed, "predicateType": "https://example.com/other"}).encode()
    with pytest.raises(IntegrityError, match="predicateType"):
        subject_digest(wrong, "manifest.json")
