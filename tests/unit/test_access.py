"""API keys and roles (:mod:`ledger.access`) over the in-memory key store, no database.

Proves that a token is ``plk_<12 hex>_<43 base64url>`` and that only the SHA-256 of its secret
is stored; that authentication accepts the token it was given and refuses a wrong secret, a
malformed token, an unknown key id and a revoked key; that ``create_key`` refuses a bad role,
a key without tenants, tenants together with all tenants and a bad tenant name with a
ValidationError naming the field, storing nothing; that revocation is idempotent; and that
every role holds exactly the permissions of the table in the module's docstring.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ledger.access import (
    ApiKeyRecord,
    CachedKeyStore,
    Permission,
    Principal,
    Role,
    authenticate,
    authenticate_cached,
    create_key,
    revoke_key,
)
from ledger.errors import NotFoundError, ValidationError
from ledger.store.memory import MemoryKeyStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = re.compile(r"plk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")

# The role table of ledger/access.py, written out by hand (not read from GRANTS):
# admin everything; ingest appends; auditor reads, mirrors and exports; viewer reads.
MAY: dict[Role, set[Permission]] = {
    Role.ADMIN: {
        Permission.WRITE,
        Permission.READ,
        Permission.MIRROR,
        Permission.EXPORT,
        Permission.MANAGE,
    },
    Role.INGEST: {Permission.WRITE},
    Role.AUDITOR: {Permission.READ, Permission.MIRROR, Permission.EXPORT},
    Role.VIEWER: {Permission.READ},
}


def make(
    store: MemoryKeyStore,
    role: Role | str = Role.INGEST,
    tenants: tuple[str, ...] = ("acme",),
    *,
    all_tenants: bool = False,
    name: str | None = "test",
) -> tuple[str, ApiKeyRecord]:
    return create_key(
        store, role=role, tenants=list(tenants), all_tenants=all_tenants, name=name, now=NOW
    )


def split(token: str) -> tuple[str, str]:
    match = TOKEN.fullmatch(token)
    assert match is not None, token
    return match.group(1), match.group(2)


# --- the token and what is stored ---------------------------------------------------------------


def test_a_token_is_plk_then_12_hex_digits_then_43_base64url_characters() -> None:
    store = MemoryKeyStore()
    token, record = make(store)
    key_id, secret = split(token)
    assert key_id == record.key_id
    # 43 base64url characters without padding are 32 bytes: 256 random bits.
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32


def test_only_the_sha256_of_the_secret_is_stored() -> None:
    store = MemoryKeyStore()
    token, record = make(store, name="ci-pipeline")
    _, secret = split(token)
    stored = store.get_key(record.key_id)
    assert stored == record
    assert record.secret_hash == hashlib.sha256(secret.encode()).digest()
    for text in (repr(record), str(vars(record)), repr(store.keys)):
        assert secret not in text
        assert token not in text
    assert secret.encode() not in record.secret_hash


def test_the_record_holds_role_scope_name_and_creation_time() -> None:
    store = MemoryKeyStore()
    _, record = make(store, Role.VIEWER, ("globex", "acme", "globex"), name="dashboards")
    assert record.role is Role.VIEWER
    assert record.tenants == ("acme", "globex")  # sorted, without duplicates
    assert record.all_tenants is False
    assert record.name == "dashboards"
    assert record.created_at == NOW
    assert record.revoked_at is None


def test_a_role_may_be_given_as_its_name() -> None:
    _, record = make(MemoryKeyStore(), "auditor")
    assert record.role is Role.AUDITOR


def test_an_all_tenants_key_has_no_tenant_list() -> None:
    _, record = make(MemoryKeyStore(), Role.ADMIN, (), all_tenants=True, name=None)
    assert record.all_tenants is True
    assert record.tenants == ()
    assert record.name is None


def test_every_key_has_its_own_id_and_secret() -> None:
    store = MemoryKeyStore()
    tokens = [make(store)[0] for _ in range(50)]
    ids = {split(t)[0] for t in tokens}
    secrets = {split(t)[1] for t in tokens}
    assert len(ids) == len(secrets) == 50
    assert len(store.list_keys()) == 50


# --- authentication -----------------------------------------------------------------------------


def test_the_token_authenticates_as_its_principal() -> None:
    store = MemoryKeyStore()
    token, record = make(store, Role.AUDITOR, ("acme", "initech"))
    who = authenticate(store, token)
    assert who == Principal(record.key_id, Role.AUDITOR, frozenset({"acme", "initech"}), False)


def test_an_all_tenants_token_authenticates_as_an_all_tenants_principal() -> None:
    store = MemoryKeyStore()
    token, record = make(store, Role.ADMIN, (), all_tenants=True)
    assert authenticate(store, token) == Principal(record.key_id, Role.ADMIN, frozenset(), True)


def test_a_wrong_secret_is_refused() -> None:
    store = MemoryKeyStore()
    token, _ = make(store)
    key_id, secret = split(token)
    other = "A" * 43 if secret != "A" * 43 else "B" * 43
    assert authenticate(store, f"plk_{key_id}_{other}") is None
    # One character changed is as wrong as all of them.
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert authenticate(store, f"plk_{key_id}_{flipped}") is None


def test_the_secret_of_one_key_does_not_open_another() -> None:
    store = MemoryKeyStore()
    first, _ = make(store)
    second, _ = make(store)
    assert authenticate(store, f"plk_{split(first)[0]}_{split(second)[1]}") is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "plk_", id="prefix-only"),
        pytest.param(lambda t: t[4:], id="no-prefix"),
        pytest.param(lambda t: "PLK_" + t[4:], id="upper-prefix"),
        pytest.param(lambda t: "pk_" + t[4:], id="other-prefix"),
        pytest.param(lambda t: t[:4] + "ABCDEF012345" + t[16:], id="upper-hex-id"),
        pytest.param(lambda t: t[:15] + t[16:], id="11-digit-id"),
        pytest.param(lambda t: t[:16] + "0" + t[16:], id="13-digit-id"),
        pytest.param(lambda t: t[:-1], id="42-char-secret"),
        pytest.param(lambda t: t + "A", id="44-char-secret"),
        pytest.param(lambda t: t[:-1] + "=", id="padding-in-secret"),
        pytest.param(lambda t: t[:-1] + "+", id="plus-in-secret"),
        pytest.param(lambda t: t.replace("_", "-", 2), id="dashes-for-underscores"),
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t + " ", id="trailing-space"),
        pytest.param(lambda t: "Bearer " + t, id="with-scheme"),
        pytest.param(lambda t: t[16:], id="secret-only"),
    ],
)
def test_a_malformed_token_is_refused(mangle: Callable[[str], str]) -> None:
    store = MemoryKeyStore()
    token, _ = make(store)
    bad = mangle(token)
    assert bad != token
    assert authenticate(store, bad) is None


def test_a_token_with_a_trailing_newline_is_refused() -> None:
    store = MemoryKeyStore()
    token, _ = make(store)
    assert authenticate(store, token + "\n") is None


def test_an_unknown_key_id_is_refused() -> None:
    store = MemoryKeyStore()
    token, record = make(store)
    unknown = "0" * 12 if record.key_id != "0" * 12 else "1" * 12
    assert authenticate(store, f"plk_{unknown}_{split(token)[1]}") is None
    assert authenticate(MemoryKeyStore(), token) is None  # a store that never saw the key


def test_a_revoked_key_is_refused_and_others_are_not() -> None:
    store = MemoryKeyStore()
    token, record = make(store)
    other, _ = make(store)
    revoked = revoke_key(store, record.key_id, now=NOW + timedelta(hours=1))
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    assert authenticate(store, token) is None
    assert authenticate(store, other) is not None


# --- revocation ---------------------------------------------------------------------------------


def test_revoking_twice_keeps_the_first_time() -> None:
    store = MemoryKeyStore()
    _, record = make(store)
    first = revoke_key(store, record.key_id, now=NOW + timedelta(minutes=1))
    again = revoke_key(store, record.key_id, now=NOW + timedelta(minutes=2))
    assert first.revoked_at == again.revoked_at == NOW + timedelta(minutes=1)
    assert store.get_key(record.key_id) == first
    assert len(store.list_keys()) == 1  # the row is kept, only marked


@pytest.mark.parametrize(
    "key_id",
    ["0123456789ab", "", "xyz", "0123456789AB", "0123456789abc", "plk_0123456789ab"],
)
def test_revoking_a_key_that_does_not_exist_is_not_found(key_id: str) -> None:
    store = MemoryKeyStore()
    make(store)
    with pytest.raises(NotFoundError, match="no API key"):
        revoke_key(store, key_id, now=NOW)
    assert all(r.revoked_at is None for r in store.list_keys())


# --- refusals at creation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "tenants", "all_tenants", "name", "field", "message"),
    [
        pytest.param("root", ("acme",), False, None, "role", "must be one of", id="bad-role"),
        pytest.param("", ("acme",), False, None, "role", "must be one of", id="empty-role"),
        pytest.param("ADMIN", ("acme",), False, None, "role", "must be one of", id="upper-role"),
        pytest.param("ingest", (), False, None, "tenants", "at least one", id="no-tenants"),
        pytest.param("ingest", ("acme",), True, None, "tenants", "not both", id="both"),
        pytest.param("viewer", ("",), False, None, "tenants", "not a tenant", id="empty-tenant"),
        pytest.param("viewer", ("-acme",), False, None, "tenants", "not a tenant", id="dash"),
        pytest.param("viewer", ("a b",), False, None, "tenants", "not a tenant", id="space"),
        pytest.param("viewer", ("acme/x",), False, None, "tenants", "not a tenant", id="slash"),
        pytest.param("viewer", ("*",), False, None, "tenants", "not a tenant", id="star"),
        pytest.param(
            "viewer", ("a" * 129,), False, None, "tenants", "not a tenant", id="tenant-too-long"
        ),
        pytest.param(
            "viewer", ("acme", "bad tenant"), False, None, "tenants", "not a tenant", id="one-bad"
        ),
        pytest.param("viewer", ("acme",), False, "", "name", "1 to 200", id="empty-name"),
        pytest.param("viewer", ("acme",), False, "n" * 201, "name", "1 to 200", id="long-name"),
    ],
)
def test_create_key_refuses_bad_input_naming_the_field_and_stores_nothing(
    role: str,
    tenants: tuple[str, ...],
    all_tenants: bool,
    name: str | None,
    field: str,
    message: str,
) -> None:
    store = MemoryKeyStore()
    with pytest.raises(ValidationError, match=message) as raised:
        make(store, role, tenants, all_tenants=all_tenants, name=name)
    assert raised.value.field == field
    assert store.list_keys() == []


@pytest.mark.parametrize("tenant", ["a", "acme", "contoso-eu", "a.b_c-d", "A1", "x" * 128])
def test_create_key_takes_good_tenant_names(tenant: str) -> None:
    _, record = make(MemoryKeyStore(), tenants=(tenant,))
    assert record.tenants == (tenant,)


# --- what each role may do ----------------------------------------------------------------------


@pytest.mark.parametrize("permission", list(Permission), ids=str)
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_a_role_holds_exactly_the_permissions_of_the_table(
    role: Role, permission: Permission
) -> None:
    scoped = Principal("0123456789ab", role, frozenset({"acme"}), False)
    everywhere = Principal("0123456789ab", role, frozenset(), True)
    expected = permission in MAY[role]
    assert scoped.may(permission) is expected
    assert everywhere.may(permission) is expected  # the scope does not change the role


def test_the_table_covers_every_role_and_permission() -> None:
    assert set(MAY) == set(Role)
    assert {p.value for p in Permission} == {"write", "read", "mirror", "export", "manage"}


def test_a_scoped_principal_sees_only_its_tenants() -> None:
    who = Principal("0123456789ab", Role.VIEWER, frozenset({"acme", "initech"}), False)
    assert who.sees("acme")
    assert who.sees("initech")
    assert not who.sees("globex")
    assert not who.sees("governance")
    assert not who.sees("ACME")
    assert not who.sees("")
    assert who.visible(["globex", "acme", "initech", "acme", "umbrella"]) == [
        "acme",
        "initech",
        "acme",
    ]
    assert who.visible([]) == []
    assert who.visible({"globex"}) == []


def test_an_all_tenants_principal_sees_every_tenant() -> None:
    who = Principal("0123456789ab", Role.AUDITOR, frozenset(), True)
    for tenant in ("acme", "globex", "governance", "a-tenant-created-later"):
        assert who.sees(tenant)
    assert who.visible(["globex", "acme"]) == ["globex", "acme"]


def test_an_authenticated_principal_sees_what_its_key_names() -> None:
    store = MemoryKeyStore()
    token, _ = make(store, Role.VIEWER, ("globex",))
    who = authenticate(store, token)
    assert who is not None
    assert who.sees("globex")
    assert not who.sees("acme")
    assert who.may(Permission.READ)
    assert not who.may(Permission.WRITE)


# --- the key cache ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingKeyStore(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        self.reads += 1
        return super().get_key(key_id)


def test_the_cache_reads_a_key_once_within_its_max_age_and_again_after() -> None:
    inner, clock = CountingKeyStore(), Clock()
    cached = CachedKeyStore(inner, max_age=2.0, clock=clock)
    token, _ = make(cached)
    assert authenticate(cached, token) is not None
    assert authenticate(cached, token) is not None
    assert inner.reads == 1
    clock.now += 2.5
    assert authenticate(cached, token) is not None
    assert inner.reads == 2


def test_authenticate_cached_answers_only_from_a_fresh_cache_entry() -> None:
    clock = Clock()
    cached = CachedKeyStore(MemoryKeyStore(), max_age=2.0, clock=clock)
    token, _ = make(cached)
    assert authenticate_cached(cached, token) is None  # never looked up: not remembered
    who = authenticate(cached, token)
    assert who is not None
    assert authenticate_cached(cached, token) == who
    clock.now += 2.5
    assert authenticate_cached(cached, token) is None  # stale: the caller must read the store


def test_authenticate_cached_refuses_a_wrong_secret_and_a_malformed_token() -> None:
    cached = CachedKeyStore(MemoryKeyStore(), clock=Clock())
    token, _ = make(cached)
    assert authenticate(cached, token) is not None
    key_id, _ = split(token)
    wrong = f"plk_{key_id}_{'A' * 43}"
    assert wrong != token
    assert authenticate_cached(cached, wrong) is None
    assert authenticate_cached(cached, token[:-1]) is None
    assert authenticate_cached(cached, token + " ") is None


def test_revoking_through_the_cache_takes_effect_at_once() -> None:
    cached = CachedKeyStore(MemoryKeyStore(), clock=Clock())
    token, record = make(cached)
    assert authenticate(cached, token) is not None
    revoke_key(cached, record.key_id, now=NOW)
    assert authenticate_cached(cached, token) is None
    assert authenticate(cached, token) is None
