"""One contract for every SubjectKeys implementation: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ledger.privacy import MemorySubjectKeys, SubjectKey, SubjectKeys
from ledger.privacy import envelope as env
from ledger.store.subject_keys import SqlSubjectKeys
from tests.conftest import open_sql_store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def keys(request: pytest.FixtureRequest) -> Iterator[SubjectKeys]:
    if request.param == "memory":
        yield MemorySubjectKeys()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    store = open_sql_store(url)
    yield SqlSubjectKeys(store.engine)
    store.engine.dispose()


def new_key(digest: str = "d" * 64, tenant: str = "acme", at: datetime = T0) -> SubjectKey:
    return SubjectKey(
        key_id=env.new_key_id(),
        tenant=tenant,
        subject_digest=digest,
        wrapped_key=env.wrap(bytes(32), env.new_data_key()),
        created_at=at,
        last_used_at=at,
    )


def add(keys: SubjectKeys, key: SubjectKey) -> SubjectKey:
    return keys.save([key], used=[], at=key.created_at)[key.subject_digest]


def test_save_then_find_the_active_key(keys: SubjectKeys) -> None:
    assert keys.active("d" * 64) is None
    key = new_key()
    assert add(keys, key) == key
    assert keys.active("d" * 64) == key
    assert keys.active_many(["d" * 64, "e" * 64]) == {"d" * 64: key}
    assert keys.active_many([]) == {}
    assert keys.get([key.key_id, "f" * 32]) == {key.key_id: key}
    assert keys.get([]) == {}


def test_a_second_key_for_an_active_subject_returns_the_first(keys: SubjectKeys) -> None:
    first = add(keys, new_key())
    assert add(keys, new_key()) == first
    assert keys.history("d" * 64) == [first]


def test_save_stores_many_keys_and_their_use_at_once(keys: SubjectKeys) -> None:
    old = add(keys, new_key("a" * 64))
    fresh = [new_key("b" * 64), new_key("c" * 64)]
    later = T0 + timedelta(days=1)
    winners = keys.save(fresh, used=[old.key_id], at=later)
    assert winners == {k.subject_digest: k for k in fresh}
    assert keys.get([old.key_id])[old.key_id].last_used_at == later


def test_shred_destroys_the_key_once_and_frees_the_subject(keys: SubjectKeys) -> None:
    key = add(keys, new_key())
    keys.shred(key.key_id, at=T0 + timedelta(hours=1), seq=41)
    keys.shred(key.key_id, at=T0 + timedelta(hours=2), seq=99)  # no effect: already erased
    gone = keys.get([key.key_id])[key.key_id]
    assert gone.wrapped_key is None
    assert gone.erased
    assert (gone.erased_at, gone.erased_seq) == (T0 + timedelta(hours=1), 41)
    assert keys.active("d" * 64) is None
    later = add(keys, new_key(at=T0 + timedelta(days=1)))
    assert keys.active("d" * 64) == later
    assert [k.key_id for k in keys.history("d" * 64)] == [key.key_id, later.key_id]


def test_last_use_moves_forward_only(keys: SubjectKeys) -> None:
    key = add(keys, new_key())
    keys.save([], used=[key.key_id], at=T0 + timedelta(days=2))
    keys.save([], used=[key.key_id], at=T0 + timedelta(days=1))
    keys.save([], used=[], at=T0 + timedelta(days=9))
    assert keys.get([key.key_id])[key.key_id].last_used_at == T0 + timedelta(days=2)


def test_tenants_lists_every_tenant_with_keys(keys: SubjectKeys) -> None:
    keys.save([new_key("a" * 64, "globex"), new_key("b" * 64), new_key("c" * 64)], used=[], at=T0)
    assert keys.tenants() == ["acme", "globex"]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_concurrent_first_use_agrees_on_one_key(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    store = open_sql_store(url)
    stores = [SqlSubjectKeys(store.engine) for _ in range(4)]
    results: list[SubjectKey] = []
    start = threading.Barrier(len(stores))

    def first_use(keys: SqlSubjectKeys) -> None:
        start.wait()
        results.append(add(keys, new_key()))

    threads = [threading.Thread(target=first_use, args=(k,)) for k in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({k.key_id for k in results}) == 1
    assert len(stores[0].history("d" * 64)) == 1
    store.engine.dispose()
