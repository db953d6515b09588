"""The signed statement over a bundle's manifest: an in-toto Statement v1 in a DSSE envelope.

Specs: DSSE v1 (https://github.com/secure-systems-lab/dsse, ``protocol.md`` and
``envelope.md``) and in-toto Statement v1
(https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md).

Guarantees:

* The signature covers ``PAE(payloadType, payload)`` =
  ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` with ``LEN`` the ASCII decimal byte
  length, never the bare payload, so a signature for one payload type never verifies as
  another. The key is the ledger's Ed25519 checkpoint key; ``keyid`` is its C2SP key id in hex.
* The envelope and the statement are RFC 8785 canonical JSON, so they are byte-stable.
* :func:`open_envelope` returns the payload only after an Ed25519 signature by the given key
  verifies over the PAE; anything else raises :class:`~ledger.errors.IntegrityError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from ledger.errors import IntegrityError
from ledger.integrity.canonical import canonical_bytes
from ledger.integrity.note import NoteVerifier

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://pactledger.dev/bundle/v1"
PAE_PREFIX = b"DSSEv1"  # DSSE protocol.md


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b" ".join(
        (PAE_PREFIX, str(len(kind)).encode(), kind, str(len(payload)).encode(), payload)
    )


def sign_envelope(
    payload: bytes, *, keyid: str, sign: Callable[[bytes], bytes], payload_type: str = PAYLOAD_TYPE
) -> bytes:
    """A DSSE envelope (canonical JSON) with one signature made by ``sign`` over the PAE."""
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [
            {"keyid": keyid, "sig": base64.b64encode(sign(pae(payload_type, payload))).decode()}
        ],
    }
    return canonical_bytes(envelope)


def open_envelope(data: bytes, verifier: NoteVerifier) -> bytes:
    """The envelope's payload, once a signature by ``verifier`` verifies over its PAE."""
    try:
        envelope = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"the DSSE envelope is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise IntegrityError("the DSSE envelope is not a JSON object")
    payload_type = envelope.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise IntegrityError(f"DSSE payloadType: expected {PAYLOAD_TYPE!r}, got {payload_type!r}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise IntegrityError("the DSSE envelope has no signatures")
    message = pae(payload_type, payload)
    keyids = []
    for signature in signatures:
        if not isinstance(signature, dict):
            raise IntegrityError("a DSSE signature is not a JSON object")
        keyids.append(str(signature.get("keyid")))
        if verifier.verify(message, _b64(signature.get("sig"), "sig")):
            return payload
    raise IntegrityError(
        f"no DSSE signature verifies with key {verifier.vkey} (key id {verifier.key_id.hex()}); "
        f"signatures claim key ids {keyids}: the statement was altered or signed by another key"
    )


def statement(*, subject: str, sha256: str, predicate: Mapping[str, Any]) -> bytes:
    """An in-toto Statement v1 (canonical JSON) about one file."""
    return canonical_bytes(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": subject, "digest": {"sha256": sha256}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": dict(predicate),
        }
    )


def subject_digest(payload: bytes, subject: str) -> str:
    """The sha256 the statement gives ``subject``; IntegrityError if it is not a Statement v1
    of our predicate type about that file."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"the statement is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise IntegrityError(f"the statement's _type is not {STATEMENT_TYPE!r}")
    if data.get("predicateType") != PREDICATE_TYPE:
        raise IntegrityError(f"the statement's predicateType is not {PREDICATE_TYPE!r}")
    subjects = data.get("subject")
    if not isinstance(subjects, list):
        raise IntegrityError("the statement has no subject list")
    for item in subjects:
        if isinstance(item, dict) and item.get("name") == subject:
            digest = item.get("digest")
            if isinstance(digest, dict) and isinstance(digest.get("sha256"), str):
                return str(digest["sha256"])
    raise IntegrityError(f"the statement has no sha256 subject named {subject!r}")


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise IntegrityError(f"DSSE {what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        try:  # DSSE allows URL-safe base64 too
            return base64.urlsafe_b64decode(value)
        except (binascii.Error, ValueError):
            raise IntegrityError(f"DSSE {what} is not base64") from None
