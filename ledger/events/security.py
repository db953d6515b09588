"""Security events: erasure of a data subject (crypto-shredding) and signing-key rotation."""

from __future__ import annotations

from ledger.events.catalogue import Event
from ledger.events.types import Identifier, Label, UtcTime


class SubjectErased(Event):
    TYPE = "SubjectErased"
    SUMMARY = "A data subject's key was destroyed; their encrypted fields are unreadable."

    subject_ref: Identifier  # pseudonymous: never the person's name or e-mail
    key_id: Identifier
    erased_at: UtcTime
    request_ref: Identifier | None = None
    reason: Label | None = None


class SigningKeyRotated(Event):
    TYPE = "SigningKeyRotated"
    SUMMARY = "Checkpoints are signed by a new key from now on."

    old_vkey: Label
    new_vkey: Label
    effective_at: UtcTime
    reason: Label | None = None
