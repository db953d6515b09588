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


def test_add_then_find_the_active_key(keys: SubjectKeys) -> None:
    assert keys.active("d" * 64) is None
    key = new_key()
    assert keys.add(key) == key
    assert keys.active("d" * 64) == key
    assert keys.get([key.key_id, "f" * 32]) == {key.key_id: key}
    assert keys.get([]) == {}


def test_a_second_key_for_an_active_subject_returns_the_first(keys: SubjectKeys) -> None:
    first = keys.add(new_key())
    assert keys.add(new_key()) == first
    assert keys.history("d" * 64) == [first]


def test_shred_destroys_the_key_once_and_frees_the_subject(keys: SubjectKeys) -> None:
    key = keys.add(new_key())
    keys.shred(key.key_id, at=T0 + timedelta(hours=1), seq=41)
    keys.shred(key.key_id, at=T0 + timedelta(hours=2), seq=99)  # no effect: already erased
    gone = keys.get([key.key_id])[key.key_id]
    assert gone.wrapped_key is None
    assert gone.erased
    assert (gone.erased_at, gone.erased_seq) == (T0 + timedelta(hours=1), 41)
    assert keys.active("d" * 64) is None
    later = keys.add(new_key(at=T0 + timedelta(days=1)))
    assert keys.active("d" * 64) == later
    assert [k.key_id for k in keys.history("d" * 64)] == [key.key_id, later.key_id]


def test_touch_moves_last_use_forward_only(keys: SubjectKeys) -> None:
    key = keys.add(new_key())
    keys.touch([key.key_id], T0 + timedelta(days=2))
    keys.touch([key.key_id], T0 + timedelta(days=1))
    keys.touch([], T0 + timedelta(days=9))
    assert keys.get([key.key_id])[key.key_id].last_used_at == T0 + timedelta(days=2)


def test_tenants_lists_every_tenant_with_keys(keys: SubjectKeys) -> None:
    keys.add(new_key("a" * 64, "globex"))
    keys.add(new_key("b" * 64, "acme"))
    keys.add(new_key("c" * 64, "acme"))
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
        results.append(keys.add(new_key()))

    threads = [threading.Thread(target=first_use, args=(k,)) for k in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({k.key_id for k in results}) == 1
    assert len(stores[0].history("d" * 64)) == 1
    store.engine.dispose()
