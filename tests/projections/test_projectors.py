"""The projectors against the reference (tests/projections/reference.py), on SQLite and
PostgreSQL: views equal the reference after incremental catch-up and after a rebuild; a batch
that dies leaves nothing behind and the retry projects it once; an unknown type or version
stops every projector just before it, recorded, and nothing after it is projected; a second
runner finds the projector busy and does nothing; a rebuild swaps in a view that includes what
was appended while it ran; status reports the lag; the after-append triggers keep views
current. And, with no database: incremental projection over any split into batches equals one
pass (a hypothesis property).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.app.projection import PROJECTORS, Projectors, ViewStore
from ledger.app.service import Ledger
from ledger.compose import projection_trigger, projectors_for
from ledger.errors import ProjectionError
from ledger.events import InferenceRouted, default_catalogue
from ledger.log.entry import SealedEntry
from ledger.projections import Fact, MemoryViews, all_projections
from ledger.settings import Settings
from ledger.store.memory import MemoryLogStore
from ledger.store.sql import SqlLogStore
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import routed
from tests.projections.reference import PROJECTOR_TABLES, VIEW_COLUMNS, normalise, reference_views
from tests.projections.scenario import fill_ledger

ENTRIES = 1500


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[SqlLogStore]:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    opened = open_sql_store(request.getfixturevalue(fixture))
    yield opened
    opened.engine.dispose()


@pytest.fixture
def filled(store: SqlLogStore) -> SqlLogStore:
    fill_ledger(Ledger(store=store), entries=ENTRIES, seed=11)
    return store


def append_more(ledger: Ledger, count: int) -> None:
    """More routed requests (new ids) after a scenario, in batches of 100."""
    more = [
        routed(100_000 + ledger.store.head().size + i, occurred_at="2026-10-14T09:00:00Z")
        for i in range(count)
    ]
    for start in range(0, count, 100):
        ledger.append(more[start : start + 100])


def entries_of(store: SqlLogStore) -> list[SealedEntry]:
    return list(store.iter_entries())


def views_of(projectors: Projectors, tables: Any = None) -> dict[str, list[dict[str, Any]]]:
    names = tables or VIEW_COLUMNS
    return {table: normalise(table, projectors.views.rows(table)) for table in names}


def expected_of(store: SqlLogStore) -> dict[str, list[dict[str, Any]]]:
    reference = reference_views(entries_of(store))
    return {table: normalise(table, rows) for table, rows in reference.items()}


def assert_views_equal(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    for table in expected:
        assert len(actual[table]) == len(expected[table]), table
        for got, want in zip(actual[table], expected[table], strict=True):
            assert got == want, table


# --- views equal the reference --------------------------------------------------------------


def test_incremental_projection_equals_the_reference(filled: SqlLogStore) -> None:
    projectors = projectors_for(filled.engine, batch_size=257)  # batches cut across requests
    results = projectors.catch_up()
    size = filled.head().size
    assert [(r.name, r.position, r.busy) for r in results] == [
        (name, size - 1, False) for name in PROJECTORS
    ]
    assert all(r.projected == size for r in results)
    expected = expected_of(filled)
    assert all(expected[table] for table in expected), "the scenario fills every view"
    assert_views_equal(views_of(projectors), expected)


def test_appending_more_and_catching_up_again_stays_equal(filled: SqlLogStore) -> None:
    projectors = projectors_for(filled.engine, batch_size=400)
    projectors.catch_up()
    append_more(Ledger(store=filled), 600)
    again = projectors.catch_up()
    assert all(0 < r.projected < filled.head().size for r in again)
    assert_views_equal(views_of(projectors), expected_of(filled))
    assert all(r.projected == 0 for r in projectors.catch_up())  # nothing twice


@pytest.mark.parametrize("name", PROJECTORS)
def test_a_rebuild_gives_the_same_views(filled: SqlLogStore, name: str) -> None:
    projectors = projectors_for(filled.engine, batch_size=500)
    projectors.catch_up()
    before = views_of(projectors, PROJECTOR_TABLES[name])
    result = projectors.rebuild(name)
    assert result.position == filled.head().size - 1
    assert views_of(projectors, PROJECTOR_TABLES[name]) == before
    projectors.rebuild(name)  # the swapped-in tables (and their indexes) rebuild again
    assert views_of(projectors, PROJECTOR_TABLES[name]) == before
    assert projectors.run(name).projected == 0


def test_a_rebuild_includes_entries_appended_while_it_ran(filled: SqlLogStore) -> None:
    projectors = projectors_for(filled.engine, batch_size=300)
    projectors.catch_up()
    appended = []

    def append_meanwhile(done: int, total: int) -> None:
        if not appended:  # after the first shadow batch: the live view is still the old one
            append_more(Ledger(store=filled), 200)
            appended.append(done)

    projectors.rebuild("chargeback", progress=append_meanwhile)
    assert appended
    expected = expected_of(filled)
    assert views_of(projectors, ["view_chargeback"]) == {
        "view_chargeback": expected["view_chargeback"]
    }
    status = {s.name: s for s in projectors.status()}
    assert status["chargeback"].lag_entries == 0
    assert status["compliance"].lag_entries > 0  # the others were not touched


# --- exactly once -----------------------------------------------------------------------------


class Killed(BaseException):
    """What a SIGKILL looks like from inside the transaction: not an Exception, nothing
    catches it on the way out."""


class Dying:
    """A ViewStore whose batches die (like a killed worker) when writing a given table for
    the ``nth`` time: the transaction never commits."""

    def __init__(self, inner: ViewStore, table: str, nth: int) -> None:
        self.inner, self.table, self.nth, self.writes = inner, table, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _dying(self, batch: Any) -> None:
        original = batch.write

        def write(spec: Any, changed: Any) -> None:
            original(spec, changed)
            if spec.name == self.table:
                self.writes += 1
                if self.writes == self.nth:
                    raise Killed("worker killed mid-batch")

        batch.write = write

    @contextmanager
    def batch(self, name: str, *, wait: bool = False) -> Iterator[Any]:
        with self.inner.batch(name, wait=wait) as batch:
            if batch is not None:
                self._dying(batch)
            yield batch

    @contextmanager
    def batches(self, names: Any) -> Iterator[Any]:
        with self.inner.batches(names) as locked:
            for batch in locked.values():
                self._dying(batch)
            yield locked


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("compliance", "view_residency"),
        ("capacity", "view_tranches"),
        ("chargeback", "view_chargeback"),
    ],
)
def test_a_batch_that_dies_leaves_nothing_and_the_retry_projects_it_once(
    filled: SqlLogStore, name: str, table: str
) -> None:
    live = projectors_for(filled.engine, batch_size=200)
    dying = Projectors(Dying(live.views, table, nth=3), batch_size=200)  # type: ignore[arg-type]
    with pytest.raises(Killed):
        dying.run(name)
    stopped_at = {s.name: s.position for s in live.status()}[name]
    assert 0 < stopped_at < filled.head().size - 1  # two batches committed, the third did not
    live.catch_up([name])
    expected = expected_of(filled)
    assert views_of(live, PROJECTOR_TABLES[name]) == {
        t: expected[t] for t in PROJECTOR_TABLES[name]
    }


# --- never skips ---------------------------------------------------------------------------------


def append_raw(store: SqlLogStore, entry_type: str, version: int = 1) -> int:
    """An entry the event catalogue does not know, written past admission (as an older or
    newer pactledger might have)."""
    receipt = store.append(
        [
            {
                "type": entry_type,
                "schema_version": version,
                "stream": "request:mystery",
                "tenant": "acme",
                "payload": {"request_id": "mystery"},
            }
        ]
    )[0]
    return receipt.seq


@pytest.mark.parametrize(("entry_type", "version"), [("Teleported", 1), ("InferenceRouted", 9)])
def test_an_unknown_type_or_version_stops_every_projector_just_before_it(
    filled: SqlLogStore, entry_type: str, version: int
) -> None:
    bad = append_raw(filled, entry_type, version)
    append_more(Ledger(store=filled), 100)  # entries after it wait
    projectors = projectors_for(filled.engine, batch_size=500)
    with pytest.raises(ProjectionError) as caught:
        projectors.catch_up()
    error = caught.value
    assert (error.seq, error.event_type, error.version) == (bad, entry_type, version)
    assert entry_type in str(error)
    assert f"seq {bad}" in str(error)
    for status in projectors.status():
        assert status.position == bad - 1, status.name
        assert status.error is not None
        assert f"seq {bad}" in status.error
        assert status.error_seq == bad
        assert status.lag_entries == filled.head().size - bad
    # Nothing at or after the bad entry reached a view.
    provenance = projectors.views.rows("view_provenance")
    assert max(row["seq"] for row in provenance) < bad
    with pytest.raises(ProjectionError):  # and it stays stopped: never skipped
        projectors.run("chargeback")
    assert {s.name: s.position for s in projectors.status()}["chargeback"] == bad - 1


class InferenceRoutedV2(InferenceRouted):
    VERSION = 2


def test_a_projector_resumes_once_the_catalogue_knows_the_type(filled: SqlLogStore) -> None:
    bad = append_raw(filled, "InferenceRouted", 2)
    projectors = projectors_for(filled.engine)
    with pytest.raises(ProjectionError):
        projectors.catch_up(["provenance"])
    newer = default_catalogue()  # a later pactledger, that knows InferenceRouted v2
    newer.register(InferenceRoutedV2, upcast_from_previous=dict)
    upgraded = Projectors(projectors.views, catalogue=newer)
    result = upgraded.run("provenance")
    assert result.position == filled.head().size - 1
    status = {s.name: s for s in upgraded.status()}["provenance"]
    assert status.error is None
    assert status.error_seq is None
    seqs = {row["seq"] for row in upgraded.views.rows("view_provenance")}
    assert bad in seqs


# --- one runner at a time ------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_second_runner_finds_the_projector_busy_and_does_nothing(postgres_url: str) -> None:
    store = open_sql_store(postgres_url)
    try:
        fill_ledger(Ledger(store=store), entries=300, seed=15)
        projectors = projectors_for(store.engine)
        with projectors.views.batch("chargeback") as held:
            assert held is not None
            result = projectors.run("chargeback")
            assert result.busy
            assert result.projected == 0
            others = projectors.catch_up(["provenance"])  # other projectors are not held up
            assert others[0].projected == store.head().size
        assert projectors.run("chargeback").projected == store.head().size
    finally:
        store.engine.dispose()


def test_concurrent_runners_project_each_entry_once(filled: SqlLogStore) -> None:
    runners = [projectors_for(filled.engine, batch_size=100) for _ in range(3)]
    errors: list[BaseException] = []

    def run(projectors: Projectors) -> None:
        try:
            projectors.catch_up()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    runners[0].catch_up()  # whatever a busy runner left, the next trigger finishes
    assert_views_equal(views_of(runners[0]), expected_of(filled))


# --- status and triggers -------------------------------------------------------------------------


def test_status_reports_the_lag_in_entries_and_seconds(filled: SqlLogStore) -> None:
    projectors = projectors_for(filled.engine)
    size = filled.head().size
    before = {s.name: s for s in projectors.status()}
    assert all(s.position == -1 for s in before.values())
    assert all(s.lag_entries == size for s in before.values())
    assert all(s.lag_seconds >= 0 for s in before.values())
    assert all(s.updated_at is None for s in before.values())
    projectors.catch_up(["chargeback"])
    after = {s.name: s for s in projectors.status()}
    assert after["chargeback"].lag_entries == 0
    assert after["chargeback"].lag_seconds == 0
    assert after["chargeback"].updated_at is not None
    assert after["provenance"].lag_entries == size
    assert set(after["chargeback"].to_json()) == {
        "name",
        "position",
        "lag_entries",
        "lag_seconds",
        "updated_at",
        "error",
        "error_seq",
    }


@pytest.mark.parametrize("mode", ["inline", "background"])
def test_an_append_triggers_the_projectors_in_process(store: SqlLogStore, mode: str) -> None:
    trigger = projection_trigger(Settings(), store.engine, mode=mode)  # type: ignore[arg-type]
    ledger = Ledger(store=store, after_append=trigger)
    fill_ledger(ledger, entries=400, seed=16)
    trigger.close()  # background: finishes the round for what was appended
    projectors = projectors_for(store.engine)
    assert all(s.lag_entries == 0 for s in projectors.status())
    assert_views_equal(views_of(projectors), expected_of(store))


def test_only_an_append_that_wrote_something_triggers(store: SqlLogStore) -> None:
    calls: list[int] = []
    ledger = Ledger(store=store, after_append=lambda: calls.append(1))
    fill_ledger(ledger, entries=50, seed=17)
    made = len(calls)
    assert made > 0
    entry = {**routed(9001, occurred_at="2026-10-12T10:00:00Z"), "idempotency_key": "k-9001"}
    ledger.append([entry])
    assert len(calls) == made + 1
    assert ledger.append([entry])[0].duplicate
    assert len(calls) == made + 1  # an idempotent retry wrote nothing: no trigger


# --- pure: any split into batches gives the same views --------------------------------------------


def _facts() -> list[Fact]:
    import orjson

    store = MemoryLogStore(ORIGIN)
    fill_ledger(Ledger(store=store), entries=400, seed=18)
    catalogue = default_catalogue()
    facts = []
    for entry in store.entries:
        data = orjson.loads(entry.entry_bytes)
        facts.append(
            Fact(
                seq=entry.seq,
                type=entry.type,
                stream=entry.stream,
                tenant=entry.tenant,
                occurred_at=data["occurred_at"],
                payload=catalogue.upcast(entry.type, entry.schema_version, data["payload"]),
            )
        )
    return facts


FACTS = _facts()


def _one_pass() -> dict[str, dict[str, list[dict[str, Any]]]]:
    result = {}
    for name, projection in all_projections().items():
        views = MemoryViews(projection)
        views.apply(FACTS)
        result[name] = {spec.name: views.rows(spec.name) for spec in projection.tables}
    return result


ONE_PASS = _one_pass()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(FACTS) - 1), max_size=40))
def test_any_split_into_batches_gives_the_views_of_one_pass(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(FACTS)]
    for name, projection in all_projections().items():
        views = MemoryViews(projection)
        for start, end in itertools.pairwise(bounds):
            views.apply(FACTS[start:end])
        assert {spec.name: views.rows(spec.name) for spec in projection.tables} == ONE_PASS[name]


def test_one_pass_equals_the_reference() -> None:
    store = MemoryLogStore(ORIGIN)
    fill_ledger(Ledger(store=store), entries=400, seed=18)
    reference = reference_views(store.entries)
    for name, tables in PROJECTOR_TABLES.items():
        for table in tables:
            assert normalise(table, ONE_PASS[name][table]) == normalise(table, reference[table])


def test_with_in_process_projection_off_an_append_leaves_the_views_to_others(
    store: SqlLogStore,
) -> None:
    settings = Settings(broker_url=None, project_in_process=False)
    trigger = projection_trigger(settings, store.engine, mode="inline")
    fill_ledger(Ledger(store=store, after_append=trigger), entries=100, seed=19)
    trigger.close()
    projectors = projectors_for(store.engine)
    assert all(s.lag_entries == store.head().size for s in projectors.status())
