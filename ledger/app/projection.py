"""Running the projectors: catch-up, status and rebuild over a :class:`ViewStore`.

Guarantees (docs/projectors.md): every batch — the view rows it changes and the new position —
commits in one transaction, so an entry is projected exactly once whatever dies when; a runner
that finds the projector locked by another returns at once having done nothing (``busy``); an
entry of a type or version the catalogue does not know stops that projector just before it
with a :class:`~ledger.errors.ProjectionError` (recorded for ``status``), never skipped; the
other projectors go on. A rebuild projects from ``seq`` 0 into shadow tables and swaps them in
under the projector's lock.

The SQL store is :class:`ledger.store.views.SqlViewStore`; ``ledger.compose.open_projectors``
builds one from settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from ledger.errors import LedgerError, NotFoundError, ProjectionError
from ledger.events import Catalogue, default_catalogue
from ledger.log.entry import utc_now
from ledger.projections import Fact, Projection, Rows, TableSpec, all_projections
from ledger.projections.base import Key, LoggedEntry, Row

log = logging.getLogger(__name__)

PROJECTORS: tuple[str, ...] = tuple(all_projections())


class ViewBatch(Protocol):
    position: int

    def entries(self, limit: int, *, after: int | None = None) -> list[LoggedEntry]: ...
    def load(self, spec: TableSpec, keys: Iterable[Key]) -> dict[Key, Row]: ...
    def write(self, spec: TableSpec, changed: Mapping[Key, Row]) -> None: ...
    def advance(self, name: str, position: int) -> None: ...


class PositionRecord(Protocol):
    @property
    def position(self) -> int: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def error(self) -> str | None: ...
    @property
    def error_seq(self) -> int | None: ...


class ViewStore(Protocol):
    def batch(
        self, name: str, *, wait: bool = False
    ) -> AbstractContextManager[ViewBatch | None]: ...

    def batches(self, names: Sequence[str]) -> AbstractContextManager[Mapping[str, ViewBatch]]:
        """One transaction holding the lock of every projector in ``names`` that no other
        runner holds (those are left out), each with its own position."""
        ...

    def record_error(self, name: str, seq: int, message: str) -> None: ...
    def positions(self) -> Mapping[str, PositionRecord]: ...
    def log_size(self) -> int: ...
    def rows(
        self,
        table_name: str,
        *,
        equal: Mapping[str, Any] | None = None,
        within: Mapping[str, Sequence[Any]] | None = None,
        at_least: Mapping[str, Any] | None = None,
        below: Mapping[str, Any] | None = None,
        order_by: Sequence[str] = (),
    ) -> list[dict[str, Any]]: ...
    def distinct(self, table_name: str, column: str) -> list[Any]: ...
    def recorded_at(self, seq: int) -> datetime | None: ...
    def create_shadows(self, specs: Sequence[TableSpec]) -> Mapping[str, Any]: ...
    def drop_shadows(self, specs: Sequence[TableSpec]) -> None: ...
    def shadow_batch(
        self, shadows: Mapping[str, Any], position: int
    ) -> AbstractContextManager[ViewBatch]: ...
    # ``batch`` below is always one that this same store handed out
    def shadow_view(self, batch: Any, shadows: Mapping[str, Any], position: int) -> ViewBatch: ...
    def swap_in(self, batch: Any, name: str, shadows: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class RunResult:
    name: str
    projected: int  # entries this call moved the position over
    position: int  # last seq projected after the call; -1 for none
    busy: bool = False  # another runner held the projector: this call did nothing


@dataclass(frozen=True)
class ProjectorStatus:
    name: str
    position: int
    lag_entries: int
    lag_seconds: float
    updated_at: datetime | None
    error: str | None
    error_seq: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "lag_entries": self.lag_entries,
            "lag_seconds": round(self.lag_seconds, 3),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "error": self.error,
            "error_seq": self.error_seq,
        }


ProgressFn = Callable[[int, int], None]  # (entries done, entries in all)


class Projectors:
    def __init__(
        self,
        views: ViewStore,
        *,
        catalogue: Catalogue | None = None,
        batch_size: int = 1000,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.views, self.batch_size, self.clock = views, batch_size, clock
        self.catalogue = catalogue or default_catalogue()
        self.projections = all_projections()
        self._current: dict[tuple[str, int], bool] = {}  # known kinds: is it the latest?

    def projection(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            raise NotFoundError(
                f"no projector '{name}'; projectors: {', '.join(self.projections)}"
            ) from None

    # --- catch-up -------------------------------------------------------------------------

    def catch_up(self, names: Sequence[str] | None = None) -> list[RunResult]:
        """Run each projector (default: all) until it has projected the whole log.

        The projectors share each batch: one transaction locks every projector it can (one
        held by another runner is left to it: ``busy``), reads and decodes the entries after
        the lowest of their positions once, and folds into each projector the entries past
        its own position, writing every view and position before one commit. An unknown entry
        stops them all just before it (each is recorded), and that error is raised."""
        chosen = [self.projection(name) for name in names or PROJECTORS]
        projected = {p.name: 0 for p in chosen}
        positions = {p.name: -1 for p in chosen}
        busy: set[str] = set()
        while True:
            active = [p for p in chosen if p.name not in busy]
            if not active:
                break
            with self.views.batches([p.name for p in active]) as locked:
                busy.update(p.name for p in active if p.name not in locked)
                if not locked:
                    break
                moved, failure, read = self._project_shared(
                    [p for p in active if p.name in locked], locked
                )
                for name, batch in locked.items():
                    projected[name] += moved[name]
                    positions[name] = batch.position
            if failure is not None:
                for name in locked:
                    self.views.record_error(name, failure.seq, str(failure))
                raise failure
            if read < self.batch_size:  # the log's end was reached
                break
        return [
            RunResult(p.name, projected[p.name], positions[p.name], p.name in busy) for p in chosen
        ]

    def run(self, name: str) -> RunResult:
        """Project everything after one projector's position, a batch per transaction."""
        return self.catch_up([name])[0]

    def _project_shared(
        self, projections: Sequence[Projection], locked: Mapping[str, ViewBatch]
    ) -> tuple[dict[str, int], ProjectionError | None, int]:
        """One shared batch (see :meth:`catch_up`); returns how far each position moved, the
        error that stopped them, and how many entries were read."""
        start = min(batch.position for batch in locked.values())
        found = next(iter(locked.values())).entries(self.batch_size, after=start)
        facts, failure = self._facts(None, found)
        end = failure.seq - 1 if failure else (found[-1].seq if found else start)
        moved = {}
        for projection in projections:
            batch = locked[projection.name]
            wanted = projection.types
            mine = [
                f for f in facts if f.seq > batch.position and (wanted is None or f.type in wanted)
            ]
            moved[projection.name] = max(0, end - batch.position)
            if mine:
                apply_facts(projection, mine, batch)
            if end > batch.position:
                batch.advance(projection.name, end)
        return moved, failure, len(found)

    def _project_shadow_batch(
        self, projection: Projection, batch: ViewBatch
    ) -> tuple[int, ProjectionError | None]:
        """A rebuild's step: project the entries after the shadow's position (up to the batch
        size) into the shadow tables, moving the shadow's own position (the projector's stays
        until the swap); returns how far it moved and the error that stopped it, if one did."""
        found = batch.entries(self.batch_size)
        if not found:
            return 0, None
        facts, failure = self._facts(projection, found)
        good = found if failure is None else [e for e in found if e.seq < failure.seq]
        if good:
            apply_facts(projection, facts, batch)
            batch.position = good[-1].seq
        return len(good), failure

    def _facts(
        self, projection: Projection | None, found: Sequence[LoggedEntry]
    ) -> tuple[list[Fact], ProjectionError | None]:
        """Decode entries up to the first one the catalogue does not know (the error names
        ``projection``, or every projector when it is None)."""
        wanted = projection.types if projection is not None else None
        facts: list[Fact] = []
        for entry in found:
            try:
                fact = self._fact(entry, wanted)
            except LedgerError as exc:
                reason = getattr(exc, "reason", None) or str(exc)
                return facts, ProjectionError(
                    projection.name if projection is not None else "every projector",
                    entry.seq,
                    entry.type,
                    entry.schema_version,
                    reason,
                )
            if fact is not None:
                facts.append(fact)
        return facts, None

    def _fact(self, entry: LoggedEntry, wanted: frozenset[str] | None) -> Fact | None:
        kind = (entry.type, entry.schema_version)
        current = self._current.get(kind)
        if current is None:
            self.catalogue.model(entry.type, entry.schema_version)  # raises when unknown
            current = self._current[kind] = (
                entry.schema_version == self.catalogue.latest(entry.type).VERSION
            )
        if wanted is not None and entry.type not in wanted:
            return None
        data = orjson.loads(entry.entry_bytes)
        payload = data["payload"]
        if not current:
            payload = self.catalogue.upcast(entry.type, entry.schema_version, payload)
        return Fact(
            seq=entry.seq,
            type=entry.type,
            stream=entry.stream,
            tenant=entry.tenant,
            occurred_at=data["occurred_at"],
            payload=payload,
        )

    # --- status ---------------------------------------------------------------------------

    def status(self) -> list[ProjectorStatus]:
        size = self.views.log_size()
        positions = self.views.positions()
        now = self.clock()
        report = []
        for name in PROJECTORS:
            record = positions.get(name)
            position = -1 if record is None else record.position
            behind = max(0, size - 1 - position)
            seconds = 0.0
            if behind:
                oldest = self.views.recorded_at(position + 1)
                seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            report.append(
                ProjectorStatus(
                    name=name,
                    position=position,
                    lag_entries=behind,
                    lag_seconds=seconds,
                    updated_at=None if record is None else record.updated_at,
                    error=None if record is None else record.error,
                    error_seq=None if record is None else record.error_seq,
                )
            )
        return report

    # --- rebuild --------------------------------------------------------------------------

    def rebuild(self, name: str, *, progress: ProgressFn | None = None) -> RunResult:
        """Project the whole log again into shadow tables, then swap them in atomically."""
        projection = self.projection(name)
        specs = list(projection.tables)
        shadows = self.views.create_shadows(specs)
        try:
            position, done = -1, 0
            while True:
                with self.views.shadow_batch(shadows, position) as batch:
                    moved, failure = self._project_shadow_batch(projection, batch)
                    position = batch.position
                if failure is not None:
                    raise failure
                done += moved
                if progress:
                    progress(done, self.views.log_size())
                if moved < self.batch_size:
                    break
            with self.views.batch(name, wait=True) as live:
                assert live is not None  # waiting for the lock always gets it
                shadow = self.views.shadow_view(live, shadows, position)
                while True:  # entries appended since: under the lock, nothing new can slip in
                    moved, failure = self._project_shadow_batch(projection, shadow)
                    if failure is not None:
                        raise failure
                    done += moved
                    if moved < self.batch_size:
                        break
                self.views.swap_in(shadow, name, shadows)
                position = shadow.position
        except BaseException:
            self.views.drop_shadows(specs)
            raise
        if progress:
            progress(done, done)
        return RunResult(name, done, position)


def apply_facts(projection: Projection, facts: Sequence[Fact], batch: ViewBatch) -> None:
    """Load the rows the facts touch, fold the facts in ``seq`` order, write what changed."""
    wanted: dict[str, set[Key]] = {}
    for fact in facts:
        for table, key in projection.keys(fact):
            wanted.setdefault(table, set()).add(key)
    specs = {spec.name: spec for spec in projection.tables}
    rows = Rows({table: batch.load(specs[table], keys) for table, keys in wanted.items()})
    for fact in facts:
        projection.apply(fact, rows)
    for table, changed in rows.changed().items():
        batch.write(specs[table], changed)
