"""The vault of subject data keys: encrypts personal fields on the way in, reveals them on the
way out, and destroys a subject's key on erasure.

Guarantees:

* Keys are per (tenant, subject). A subject's data key is created on first use, stored only
  wrapped by the key-encryption key, and found by a keyed digest of the subject id
  (:func:`~ledger.privacy.envelope.subject_digest`); the subject id is never stored in clear.
* :meth:`Protection.protect` returns the payload to store (every personal value sealed) and
  the payload to digest for idempotency (every personal value blinded), so that neither the
  log nor a request digest holds anything from which the value can be recovered or confirmed
  once the key is gone. A batch reads its subjects' keys in one query and stores the keys it
  created, with the use of the others, in one transaction (:meth:`Protection.save`); a key
  that lost a creation race to another process makes ``save`` say so, and the batch is
  protected again with the winner.
* :meth:`Vault.reveal` opens what it can and shows :data:`~ledger.privacy.envelope.ERASED`
  where the key was destroyed; stored bytes are never changed.
* Destroying a key (:meth:`SubjectKeys.shred`) is final; a later entry of the same subject
  gets a new key, which a later erasure destroys in turn.

The :class:`SubjectKeys` port has an in-memory implementation here and a SQL one in
``ledger/store/subject_keys.py``; both pass ``tests/contract/test_subject_keys.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from ledger.errors import ValidationError
from ledger.privacy import envelope
from ledger.privacy.envelope import ERASED

# The most a personal value may hold, in UTF-8 bytes (its envelope is about 1.4 KiB).
MAX_PERSONAL_BYTES = 1024


@dataclass(frozen=True)
class SubjectKey:
    """One data key of one subject in one tenant; ``wrapped_key`` is None once erased."""

    key_id: str
    tenant: str
    subject_digest: str
    wrapped_key: bytes | None
    created_at: datetime
    last_used_at: datetime
    erased_at: datetime | None = None
    erased_seq: int | None = None

    @property
    def erased(self) -> bool:
        return self.wrapped_key is None


class SubjectKeys(Protocol):
    """Port: where wrapped subject keys live."""

    def active(self, subject_digest: str) -> SubjectKey | None:
        """The subject's key in use (not erased), if any."""
        ...

    def active_many(self, subject_digests: Collection[str]) -> Mapping[str, SubjectKey]:
        """The keys in use of these subjects (by digest), in one read."""
        ...

    def save(
        self, new: Collection[SubjectKey], *, used: Collection[str], at: datetime
    ) -> Mapping[str, SubjectKey]:
        """In one transaction: store ``new`` keys, each unless its subject got an active key
        meanwhile, and record that the keys ``used`` protected data at ``at`` (last use only
        moves forward). Returns the active key of each new key's subject: the new key, or the
        one that won the race."""
        ...

    def get(self, key_ids: Collection[str]) -> Mapping[str, SubjectKey]:
        """The keys of these ids that exist (erased ones included)."""
        ...

    def shred(self, key_id: str, *, at: datetime, seq: int) -> None:
        """Destroy the wrapped key for good; ``seq`` is the SubjectErased entry recording it."""
        ...

    def history(self, subject_digest: str) -> list[SubjectKey]:
        """Every key the subject ever had, oldest first."""
        ...

    def tenants(self) -> list[str]:
        """The tenants that hold subject keys."""
        ...


@dataclass(frozen=True)
class PersonalFields:
    """Which payload fields of an event type are personal, and which one names the subject."""

    event_type: str
    fields: tuple[str, ...]
    subject: str


class Vault:
    def __init__(self, kek: bytes, keys: SubjectKeys, clock: Callable[[], datetime]) -> None:
        if len(kek) != envelope.KEY_BYTES:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._kek, self.keys, self._clock = kek, keys, clock

    def digest(self, *, tenant: str, subject: str) -> str:
        return envelope.subject_digest(self._kek, tenant=tenant, subject=subject)

    def batch(self) -> Protection:
        """A protection context for one batch (keys read, created and touched once each)."""
        return Protection(self)

    def reveal(
        self, spec: PersonalFields, payload: Mapping[str, Any], *, cache: dict[str, bytes | None]
    ) -> dict[str, str]:
        """The personal fields of ``payload`` in clear, or ``[erased]``; ``cache`` (key id →
        data key or None) may be shared across calls."""
        shown: dict[str, str] = {}
        for name in spec.fields:
            value = payload.get(name)
            if not envelope.is_envelope(value):
                continue
            assert isinstance(value, str)
            key = self._data_key(envelope.key_id_of(value), cache)
            shown[name] = (
                ERASED
                if key is None
                else envelope.open_envelope(key, value, event_type=spec.event_type, field=name)
            )
        return shown

    def _data_key(self, key_id: str, cache: dict[str, bytes | None]) -> bytes | None:
        if key_id not in cache:
            found = self.keys.get([key_id]).get(key_id)
            cache[key_id] = (
                None
                if found is None or found.wrapped_key is None
                else envelope.unwrap(self._kek, found.wrapped_key)
            )
        return cache[key_id]

    def new_key(self, *, tenant: str, subject_digest: str) -> tuple[SubjectKey, bytes]:
        """A fresh key record (wrapped) and its data key; not stored yet."""
        data_key = envelope.new_data_key()
        now = self._clock()
        record = SubjectKey(
            key_id=envelope.new_key_id(),
            tenant=tenant,
            subject_digest=subject_digest,
            wrapped_key=envelope.wrap(self._kek, data_key),
            created_at=now,
            last_used_at=now,
        )
        return record, data_key

    def unwrap(self, key: SubjectKey) -> bytes:
        assert key.wrapped_key is not None  # active keys are never erased
        return envelope.unwrap(self._kek, key.wrapped_key)

    def now(self) -> datetime:
        return self._clock()


class Protection:
    """Seals and blinds the personal fields of one batch; :meth:`save` then stores the keys
    it created and the use of those it found, in one transaction."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._keys: dict[tuple[str, str], tuple[SubjectKey, bytes]] = {}
        self._new: dict[str, SubjectKey] = {}  # by subject digest

    def prefetch(self, subjects: Collection[tuple[str, str]]) -> None:
        """Read the keys of these (tenant, subject) pairs in one query."""
        wanted = {
            pair: self._vault.digest(tenant=pair[0], subject=pair[1])
            for pair in subjects
            if pair not in self._keys
        }
        found = self._vault.keys.active_many(set(wanted.values()))
        for pair, digest in wanted.items():
            if digest in found:
                self._keys[pair] = found[digest], self._vault.unwrap(found[digest])

    def protect(
        self, spec: PersonalFields, *, tenant: str, stored: dict[str, Any], said: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``stored`` with its personal values sealed, ``said`` (what the client sent) with
        them blinded. Payloads without personal values come back unchanged."""
        present = [name for name in spec.fields if stored.get(name) is not None]
        if not present:
            return stored, said
        subject = stored.get(spec.subject)
        if not isinstance(subject, str):
            raise ValidationError(
                f"is required when {', '.join(present)} is given: it names the data subject "
                "whose key encrypts them",
                field=f"payload.{spec.subject}",
            )
        key, data_key = self._key(tenant, subject)
        sealed, blinded = dict(stored), dict(said)
        for name in present:
            value = stored[name]
            if len(value.encode("utf-8")) > MAX_PERSONAL_BYTES:
                raise ValidationError(
                    f"holds more than {MAX_PERSONAL_BYTES} bytes of personal data",
                    field=f"payload.{name}",
                )
            sealed[name] = envelope.seal(
                data_key, key.key_id, value, event_type=spec.event_type, field=name
            )
            if isinstance(said.get(name), str):
                blinded[name] = envelope.blind(data_key, said[name], field=name)
        return sealed, blinded

    def key_ids(self) -> list[str]:
        return sorted(key.key_id for key, _ in self._keys.values())

    def save(self) -> bool:
        """Store the new keys and record the use of all; False when another process created
        a key for one of the new subjects first (the batch must then be protected again)."""
        if not self._keys:
            return True
        used = [key.key_id for key, _ in self._keys.values() if key.subject_digest not in self._new]
        winners = self._vault.keys.save(list(self._new.values()), used=used, at=self._vault.now())
        lost = any(winners[d].key_id != k.key_id for d, k in self._new.items())
        self._new.clear()
        return not lost

    def _key(self, tenant: str, subject: str) -> tuple[SubjectKey, bytes]:
        if (tenant, subject) not in self._keys:
            self.prefetch([(tenant, subject)])
        if (tenant, subject) not in self._keys:
            digest = self._vault.digest(tenant=tenant, subject=subject)
            record, data_key = self._vault.new_key(tenant=tenant, subject_digest=digest)
            self._new[digest] = record
            self._keys[tenant, subject] = record, data_key
        return self._keys[tenant, subject]


class MemorySubjectKeys:
    """The in-memory :class:`SubjectKeys` (tests, and the pure core's own checks)."""

    def __init__(self) -> None:
        self._keys: dict[str, SubjectKey] = {}

    def active(self, subject_digest: str) -> SubjectKey | None:
        return next(
            (k for k in self._keys.values() if k.subject_digest == subject_digest and not k.erased),
            None,
        )

    def active_many(self, subject_digests: Collection[str]) -> Mapping[str, SubjectKey]:
        return {d: k for d in subject_digests if (k := self.active(d)) is not None}

    def save(
        self, new: Collection[SubjectKey], *, used: Collection[str], at: datetime
    ) -> Mapping[str, SubjectKey]:
        winners = {}
        for key in new:
            winners[key.subject_digest] = self.active(key.subject_digest) or self._keys.setdefault(
                key.key_id, key
            )
        for key_id in used:
            key = self._keys[key_id]
            if at > key.last_used_at:
                self._keys[key_id] = replace(key, last_used_at=at)
        return winners

    def get(self, key_ids: Collection[str]) -> Mapping[str, SubjectKey]:
        return {k: self._keys[k] for k in key_ids if k in self._keys}

    def shred(self, key_id: str, *, at: datetime, seq: int) -> None:
        key = self._keys[key_id]
        if not key.erased:
            self._keys[key_id] = replace(key, wrapped_key=None, erased_at=at, erased_seq=seq)

    def history(self, subject_digest: str) -> list[SubjectKey]:
        return sorted(
            (k for k in self._keys.values() if k.subject_digest == subject_digest),
            key=lambda k: (k.created_at, k.key_id),
        )

    def tenants(self) -> list[str]:
        return sorted({k.tenant for k in self._keys.values()})
