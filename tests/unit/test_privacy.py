"""The pure privacy core: envelopes, key wrapping, blinding and the vault's key life cycle."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import IntegrityError, ValidationError
from ledger.privacy import ERASED, MemorySubjectKeys, PersonalFields, Vault, is_envelope
from ledger.privacy import envelope as env

KEK = bytes(range(32))
SPEC = PersonalFields("InferenceRouted", ("end_user_id", "end_user_email"), "end_user_id")
T0 = datetime(2026, 11, 25, tzinfo=UTC)


def vault(keys: MemorySubjectKeys | None = None) -> Vault:
    return Vault(KEK, keys or MemorySubjectKeys(), lambda: T0)


def seal(plain: str, field: str = "end_user_email", key: bytes = b"k" * 32) -> str:
    return env.seal(key, "0" * 32, plain, event_type="InferenceRouted", field=field)


@given(st.text(max_size=300))
def test_an_envelope_opens_to_its_plaintext_and_never_shows_it(plain: str) -> None:
    sealed = seal(plain)
    assert is_envelope(sealed)
    assert env.key_id_of(sealed) == "0" * 32
    if len(plain) >= 4:
        assert plain not in sealed
    opened = env.open_envelope(
        b"k" * 32, sealed, event_type="InferenceRouted", field="end_user_email"
    )
    assert opened == plain


def test_the_same_value_seals_differently_each_time() -> None:
    assert seal("alice@example.com") != seal("alice@example.com")


@pytest.mark.parametrize(
    ("key", "event_type", "field"),
    [
        (b"x" * 32, "InferenceRouted", "end_user_email"),  # another subject's key
        (b"k" * 32, "InferenceRouted", "end_user_note"),  # moved to another field
        (b"k" * 32, "ResidencyDecided", "end_user_email"),  # moved to another event type
    ],
)
def test_an_envelope_does_not_open_with_another_key_or_in_another_place(
    key: bytes, event_type: str, field: str
) -> None:
    with pytest.raises(IntegrityError, match="does not open"):
        env.open_envelope(key, seal("alice"), event_type=event_type, field=field)


def test_a_changed_or_truncated_envelope_is_caught() -> None:
    sealed = seal("alice")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(IntegrityError):
        env.open_envelope(b"k" * 32, flipped, event_type="InferenceRouted", field="end_user_email")
    with pytest.raises(IntegrityError, match="truncated"):
        env.open_envelope(
            b"k" * 32, sealed[:50], event_type="InferenceRouted", field="end_user_email"
        )
    with pytest.raises(ValueError, match="not a pdk1 envelope"):
        env.key_id_of("alice")


def test_key_wrapping_round_trips_and_refuses_another_kek() -> None:
    data_key = env.new_data_key()
    wrapped = env.wrap(KEK, data_key)
    assert data_key not in wrapped
    assert env.unwrap(KEK, wrapped) == data_key
    with pytest.raises(IntegrityError, match="another key"):
        env.unwrap(os.urandom(32), wrapped)


def test_subject_digests_are_keyed_and_per_tenant() -> None:
    a = env.subject_digest(KEK, tenant="acme", subject="alice")
    assert a == env.subject_digest(KEK, tenant="acme", subject="alice")
    assert a != env.subject_digest(KEK, tenant="globex", subject="alice")
    assert a != env.subject_digest(os.urandom(32), tenant="acme", subject="alice")
    assert "alice" not in a


def test_protect_seals_stored_values_and_blinds_the_request_digest_input() -> None:
    v = vault()
    payload = {"request_id": "r1", "end_user_id": "alice", "end_user_email": "a@x.eu"}
    batch = v.batch()
    stored, said = batch.protect(SPEC, tenant="acme", stored=payload, said=payload)
    assert batch.save()
    assert stored["request_id"] == "r1"
    assert is_envelope(stored["end_user_id"])
    assert is_envelope(stored["end_user_email"])
    assert said["end_user_email"].startswith("blinded:")
    assert "alice" not in str(stored) + str(said)
    # The same request blinds the same way (an idempotent retry matches) ...
    _, again = v.batch().protect(SPEC, tenant="acme", stored=payload, said=payload)
    assert again == said
    # ... and reveals in clear.
    assert v.reveal(SPEC, stored, cache={}) == {"end_user_id": "alice", "end_user_email": "a@x.eu"}


def test_one_key_per_tenant_and_subject() -> None:
    keys = MemorySubjectKeys()
    v = vault(keys)
    batch = v.batch()
    one, _ = batch.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    two, _ = batch.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    other, _ = batch.protect(SPEC, tenant="globex", stored={"end_user_id": "alice"}, said={})
    assert env.key_id_of(one["end_user_id"]) == env.key_id_of(two["end_user_id"])
    assert env.key_id_of(one["end_user_id"]) != env.key_id_of(other["end_user_id"])
    assert len(batch.key_ids()) == 2
    assert keys.tenants() == []  # nothing stored before save
    assert batch.save()
    assert keys.tenants() == ["acme", "globex"]
    later = v.batch()  # a later batch finds the stored key
    three, _ = later.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    assert env.key_id_of(three["end_user_id"]) == env.key_id_of(one["end_user_id"])


def test_a_key_lost_to_another_process_makes_save_say_so() -> None:
    keys = MemorySubjectKeys()
    mine, theirs = vault(keys).batch(), vault(keys).batch()
    mine.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    theirs.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    assert theirs.save()
    assert not mine.save()  # alice's key is theirs: protect the batch again
    again = vault(keys).batch()
    sealed, _ = again.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    assert env.key_id_of(sealed["end_user_id"]) == theirs.key_ids()[0]


def test_a_shredded_key_reveals_erased_and_the_subject_gets_a_new_key() -> None:
    keys = MemorySubjectKeys()
    v = vault(keys)
    batch = v.batch()
    stored, _ = batch.protect(
        SPEC, tenant="acme", stored={"end_user_id": "alice", "end_user_email": "a@x.eu"}, said={}
    )
    assert batch.save()
    key_id = env.key_id_of(stored["end_user_id"])
    keys.shred(key_id, at=T0, seq=7)
    assert v.reveal(SPEC, stored, cache={}) == {"end_user_id": ERASED, "end_user_email": ERASED}
    digest = v.digest(tenant="acme", subject="alice")
    assert keys.active(digest) is None
    assert [k.erased_seq for k in keys.history(digest)] == [7]
    batch = v.batch()
    later, _ = batch.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
    assert batch.save()
    assert env.key_id_of(later["end_user_id"]) != key_id
    assert len(keys.history(digest)) == 2


def test_personal_values_need_their_subject_and_a_bounded_size() -> None:
    batch = vault().batch()
    with pytest.raises(ValidationError) as missing:
        batch.protect(SPEC, tenant="acme", stored={"end_user_email": "a@x.eu"}, said={})
    assert missing.value.field == "payload.end_user_id"
    with pytest.raises(ValidationError) as large:
        batch.protect(
            SPEC,
            tenant="acme",
            stored={"end_user_id": "alice", "end_user_email": "é" * 600},
            said={},
        )
    assert large.value.field == "payload.end_user_email"


def test_a_payload_without_personal_values_is_returned_unchanged() -> None:
    keys = MemorySubjectKeys()
    payload = {"request_id": "r1"}
    stored, said = vault(keys).batch().protect(SPEC, tenant="acme", stored=payload, said=payload)
    assert stored is payload
    assert said is payload
    assert keys.tenants() == []


def test_a_later_use_moves_last_use_forward() -> None:
    keys = MemorySubjectKeys()
    clock = [T0]
    v = Vault(KEK, keys, lambda: clock[0])
    for day in (0, 3, 1):
        clock[0] = T0 + timedelta(days=day)
        batch = v.batch()
        stored, _ = batch.protect(SPEC, tenant="acme", stored={"end_user_id": "alice"}, said={})
        assert batch.save()
    key_id = env.key_id_of(stored["end_user_id"])
    assert keys.get([key_id])[key_id].last_used_at == T0 + timedelta(days=3)


def test_the_catalogue_knows_personal_fields_and_refuses_a_subject_outside_them() -> None:
    from ledger.events import Catalogue, Event, default_catalogue

    assert default_catalogue().personal("InferenceRouted") == (
        ("end_user_id", "end_user_email", "end_user_note"),
        "end_user_id",
    )
    assert default_catalogue().personal("ResidencyDecided") is None

    class Odd(Event):
        TYPE = "Odd"
        PERSONAL = ("email",)
        SUBJECT = "user"
        email: str | None = None

    with pytest.raises(ValueError, match="SUBJECT must name one of its PERSONAL"):
        Catalogue().register(Odd)
