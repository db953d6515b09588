"""API keys and what each role may do (DESIGN §8).

Guarantees: a key's secret is shown once, at creation, and stored only as its SHA-256 (the
secret is 256 random bits, so a slow password hash would add nothing); authentication compares
digests in constant time and refuses revoked keys; a principal sees only its tenants.

Roles:

=========  ===========================================================================
admin      everything, for its tenants (``--all-tenants`` for all): keys, policies, ingest, reads
ingest     appends entries and records decisions for its tenants
auditor    reads (provenance, audit queries, proofs, entries) and exports for its tenants
viewer     reads provenance and audit queries for its tenants
=========  ===========================================================================

Key format: ``plk_<key id>_<secret>`` — the key id (12 hex digits) is public and names the
key in listings and logs; the secret (43 base64url characters) is not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from ledger.errors import NotFoundError, ValidationError


class Role(StrEnum):
    ADMIN = "admin"
    INGEST = "ingest"
    AUDITOR = "auditor"
    VIEWER = "viewer"


class Permission(StrEnum):
    WRITE = "write"  # append entries, record decisions
    READ = "read"  # provenance, audit queries
    MIRROR = "mirror"  # read every entry's bytes (GET /v1/entries): needs all tenants
    EXPORT = "export"
    MANAGE = "manage"  # keys and policies


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.INGEST: frozenset({Permission.WRITE}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.MIRROR, Permission.EXPORT}),
    Role.VIEWER: frozenset({Permission.READ}),
}

_TOKEN = re.compile(r"plk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")  # used with fullmatch
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    secret_hash: bytes
    role: Role
    tenants: tuple[str, ...]
    all_tenants: bool
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's role and tenant scope."""

    key_id: str
    role: Role
    tenants: frozenset[str]
    all_tenants: bool

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def sees(self, tenant: str) -> bool:
        return self.all_tenants or tenant in self.tenants

    def visible(self, tenants: Collection[str]) -> list[str]:
        """The tenants of ``tenants`` this principal may see (all of them with all-tenants)."""
        return [t for t in tenants if self.sees(t)]


class KeyStore(Protocol):
    def add_key(self, record: ApiKeyRecord) -> None: ...

    def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    def list_keys(self) -> list[ApiKeyRecord]: ...

    def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord:
        """Mark revoked (idempotent); NotFoundError when there is no such key."""
        ...


class CachedKeyStore:
    """A :class:`KeyStore` that remembers looked-up keys for ``max_age`` seconds, so a busy API
    does not read the key table on every request. Revoking through it takes effect at once;
    a revocation made elsewhere (``pactledger keys revoke`` in another process) within
    ``max_age``."""

    def __init__(
        self, inner: KeyStore, *, max_age: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner, self._max_age, self._clock = inner, max_age, clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    def add_key(self, record: ApiKeyRecord) -> None:
        self._inner.add_key(record)
        self._forget(record.key_id)

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        now = self._clock()
        with self._lock:
            held = self._seen.get(key_id)
        if held is not None and now - held[0] <= self._max_age:
            return held[1]
        record = self._inner.get_key(key_id)
        with self._lock:
            if len(self._seen) > 10_000:  # bounded: unknown ids cannot grow it without limit
                self._seen.clear()
            self._seen[key_id] = (now, record)
        return record

    def cached_key(self, key_id: str) -> ApiKeyRecord | None:
        """The record of ``key_id`` if a fresh one is remembered, without reading the store
        (None also when it is not remembered)."""
        with self._lock:
            held = self._seen.get(key_id)
        if held is None or self._clock() - held[0] > self._max_age:
            return None
        return held[1]

    def list_keys(self) -> list[ApiKeyRecord]:
        return self._inner.list_keys()

    def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord:
        record = self._inner.revoke_key(key_id, at)
        self._forget(key_id)
        return record

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._seen.pop(key_id, None)


def create_key(
    store: KeyStore,
    *,
    role: Role | str,
    tenants: Sequence[str],
    all_tenants: bool,
    name: str | None,
    now: datetime,
) -> tuple[str, ApiKeyRecord]:
    """Create a key; returns the token (shown once) and what is stored."""
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(
            f"must be one of {', '.join(r.value for r in Role)}", field="role"
        ) from None
    if all_tenants and tenants:
        raise ValidationError("give tenants or all tenants, not both", field="tenants")
    if not all_tenants and not tenants:
        raise ValidationError("a key needs at least one tenant (or all tenants)", field="tenants")
    for tenant in tenants:
        if not _TENANT.match(tenant):
            raise ValidationError(f"'{tenant}' is not a tenant name", field="tenants")
    if name is not None and not 1 <= len(name) <= 200:
        raise ValidationError("must be 1 to 200 characters", field="name")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        key_id=key_id,
        secret_hash=_digest(secret),
        role=role,
        tenants=tuple(sorted(set(tenants))),
        all_tenants=all_tenants,
        name=name,
        created_at=now,
    )
    store.add_key(record)
    return f"plk_{key_id}_{secret}", record


def authenticate(store: KeyStore, token: str) -> Principal | None:
    """The principal of a bearer token; None for a malformed, unknown or revoked key."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return _principal(store.get_key(match.group(1)), match.group(2))


def authenticate_cached(store: CachedKeyStore, token: str) -> Principal | None:
    """The principal of a bearer token whose key ``store`` remembers, with no I/O; None when
    the key is not remembered as well as when it is not valid (the caller then authenticates
    with :func:`authenticate`, which reads the store and tells the two apart)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return _principal(store.cached_key(match.group(1)), match.group(2))


def _principal(record: ApiKeyRecord | None, secret: str) -> Principal | None:
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.secret_hash, _digest(secret)):
        return None
    return Principal(record.key_id, record.role, frozenset(record.tenants), record.all_tenants)


def revoke_key(store: KeyStore, key_id: str, *, now: datetime) -> ApiKeyRecord:
    if not re.fullmatch(r"[0-9a-f]{12}", key_id):
        raise NotFoundError(f"no API key '{key_id}': key ids are 12 hex digits (`keys list`)")
    return store.revoke_key(key_id, now)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
