"""Personal data use cases: reading personal fields back, and erasing a data subject.

Erasure (crypto-shredding, DESIGN §2.5) of a subject in each tenant that holds a key for it:

1. refuse (nothing written) when the subject's newest record is younger than the retention
   period (``PACTLEDGER_RETENTION_DAYS``, at least 183 days: EU AI Act Art. 19 and 26(6)) and
   no erasure request is named — inside that period only a data subject's request under the
   GDPR (Art. 17) justifies erasing, and crypto-shredding is how it is honoured without
   touching the log;
2. append one ``SubjectErased`` per key, idempotency key ``erase:<key_id>`` (a rerun after a
   crash appends nothing new);
3. destroy the wrapped key (``SubjectKeys.shred``), recording the entry's seq.

Guarantees: the log's bytes never change, so ``verify``, every proof and every bundle made
before still verify; erasing again finds no active key and reports the earlier erasure
(``already``) without appending; reads show ``[erased]`` for every value of an erased key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ledger.app.service import Ledger
from ledger.errors import ConfigurationError, NotFoundError, ValidationError
from ledger.events import SubjectErased
from ledger.log.entry import SealedEntry, format_time
from ledger.privacy import PersonalFields, SubjectKey, Vault
from ledger.privacy.vault import SubjectKeys


def reveal(ledger: Ledger, entries: Iterable[SealedEntry]) -> list[dict[str, str]]:
    """Per entry, its personal fields in clear (``[erased]`` where the key is destroyed;
    ``[encrypted]`` where no key-encryption key is configured); empty for other entries."""
    cache: dict[str, bytes | None] = {}
    shown: list[dict[str, str]] = []
    for entry in entries:
        body = json.loads(entry.entry_bytes)
        personal = ledger.catalogue.personal(body["type"])
        if personal is None:
            shown.append({})
            continue
        spec = PersonalFields(body["type"], *personal)
        payload = body.get("payload", {})
        if ledger.vault is None:
            shown.append({f: "[encrypted]" for f in spec.fields if f in payload})
        else:
            shown.append(ledger.vault.reveal(spec, payload, cache=cache))
    return shown


def erase_subject(
    ledger: Ledger,
    subject: str,
    *,
    tenants: Sequence[str] = (),
    request_ref: str | None = None,
    reason: str | None = None,
    retention_days: int,
) -> dict[str, Any]:
    """Erase ``subject`` in ``tenants`` (default: every tenant holding subject keys)."""
    vault = _vault(ledger)
    if not subject:
        raise ValidationError("must name the data subject", field="subject")
    now = ledger.clock()
    scope = list(tenants) or vault.keys.tenants()
    active: list[SubjectKey] = []
    earlier: list[SubjectKey] = []
    for tenant in scope:
        digest = vault.digest(tenant=tenant, subject=subject)
        for key in vault.keys.history(digest):
            (earlier if key.erased else active).append(key)
    if not active and not earlier:
        raise NotFoundError(
            f"no personal data of subject '{subject}' in "
            + (f"tenant(s) {', '.join(scope)}" if tenants else "any tenant")
        )
    kept_until = [k for k in active if k.last_used_at > now - timedelta(days=retention_days)]
    if kept_until and request_ref is None:
        newest = max(k.last_used_at for k in kept_until)
        raise ValidationError(
            f"the subject's newest record ({format_time(newest)}) is inside the "
            f"{retention_days}-day retention period (EU AI Act Art. 19, 26(6)) until "
            f"{format_time(newest + timedelta(days=retention_days))}; erase it earlier only "
            "under the data subject's erasure request: pass --request <reference>",
            field="request_ref",
        )
    erased = _record(ledger, vault.keys, active, now=now, request_ref=request_ref, reason=reason)
    return {
        "subject_erased": bool(erased),
        "erased": erased,
        "already": [_described(k) for k in earlier],
    }


def _record(
    ledger: Ledger,
    keys: SubjectKeys,
    active: list[SubjectKey],
    *,
    now: datetime,
    request_ref: str | None,
    reason: str | None,
) -> list[dict[str, Any]]:
    if not active:
        return []
    payloads = [
        SubjectErased(
            subject_ref=key.key_id,
            key_id=key.key_id,
            erased_at=now,
            request_ref=request_ref,
            reason=reason,
        ).payload()
        for key in active
    ]
    receipts = ledger.append(
        [
            {
                "type": SubjectErased.TYPE,
                "stream": f"subject:{key.key_id}",
                "tenant": key.tenant,
                "idempotency_key": f"erase:{key.key_id}",
                "occurred_at": format_time(now),
                "payload": payload,
            }
            for key, payload in zip(active, payloads, strict=True)
        ]
    )
    for key, receipt in zip(active, receipts, strict=True):
        keys.shred(key.key_id, at=now, seq=receipt.seq)
    return [
        {"tenant": k.tenant, "key_id": k.key_id, "seq": r.seq, "erased_at": format_time(now)}
        for k, r in zip(active, receipts, strict=True)
    ]


def _described(key: SubjectKey) -> dict[str, Any]:
    return {
        "tenant": key.tenant,
        "key_id": key.key_id,
        "seq": key.erased_seq,
        "erased_at": None if key.erased_at is None else format_time(key.erased_at),
    }


def _vault(ledger: Ledger) -> Vault:
    if ledger.vault is None:
        raise ConfigurationError(
            "no key-encryption key is configured: run `pactledger init` or set PACTLEDGER_KEK"
        )
    return ledger.vault
