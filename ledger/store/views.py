"""SQL storage of the projectors: their checkpoints, their view rows, rebuild shadows.

Guarantees:

* :meth:`SqlViewStore.batch` is one transaction that holds the projector's lock (PostgreSQL:
  its ``projector_checkpoints`` row, ``FOR UPDATE SKIP LOCKED``, so a second runner gets
  ``None`` at once instead of waiting; SQLite: the database write lock). Rows written and the
  position advanced in it commit together or not at all.
* Entries are read in ``seq`` order after the position; commit order equals ``seq`` order in
  the log, so no entry can appear later below a position already passed.
* :meth:`SqlViewStore.swap_in` replaces live view tables by their shadows inside the caller's
  locked batch: readers see the old views or the new ones, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ledger.log.entry import utc_now
from ledger.projections.base import Key, LoggedEntry, Row, TableSpec
from ledger.store.engine import WRITE_OPTION
from ledger.store.sql import translated_errors
from ledger.store.tables import (
    entries,
    ledger_head,
    metadata,
    projector_checkpoints,
    view_table,
    view_tables,
)

SHADOW_SUFFIX = "__shadow"
_LOGGED_SELECT = select(*(entries.c[name] for name in LoggedEntry._fields))
_IN_CHUNK = 900


@dataclass(frozen=True)
class ProjectorPosition:
    name: str
    position: int
    updated_at: datetime
    error: str | None
    error_seq: int | None


class ViewBatch:
    """One locked transaction of one projector (or of a rebuild's shadow tables)."""

    def __init__(self, conn: Connection, position: int, tables: Mapping[str, Table]) -> None:
        self.conn, self.position, self._tables = conn, position, tables

    def entries(self, limit: int, *, after: int | None = None) -> list[LoggedEntry]:
        start = self.position if after is None else after
        rows = self.conn.execute(
            _LOGGED_SELECT.where(entries.c.seq > start).order_by(entries.c.seq).limit(limit)
        ).all()
        return [LoggedEntry(*row) for row in rows]

    def load(self, spec: TableSpec, keys: Iterable[Key]) -> dict[Key, Row]:
        if spec.insert_only:
            return {}
        table = self._tables[spec.name]
        column = table.c[spec.key_column]
        values = sorted({spec.key_value(key) for key in keys})
        found: dict[Key, Row] = {}
        for match in self._matching(column, values):
            query = select(*(table.c[name] for name in spec.columns)).where(match)
            for row in self.conn.execute(query).mappings():
                held = dict(row)
                found[spec.key_of(held)] = held
        return found

    def _matching(self, column: Any, values: Sequence[Any]) -> Iterator[Any]:
        """Conditions ``column`` in ``values``: on PostgreSQL one ``= ANY(array)`` (one bound
        parameter, so the driver does not parse a statement of a thousand placeholders each
        batch); elsewhere ``IN`` lists of at most 900."""
        if self.conn.dialect.name == "postgresql":
            yield column == any_(bindparam("wanted", list(values), type_=ARRAY(column.type)))
            return
        for chunk in _chunks(values):
            yield column.in_(chunk)

    def write(self, spec: TableSpec, changed: Mapping[Key, Row]) -> None:
        if not changed:
            return
        table = self._tables[spec.name]
        if not spec.insert_only:
            column = table.c[spec.key_column]
            values = [spec.key_value(key) for key in changed]
            for match in self._matching(column, values):
                self.conn.execute(delete(table).where(match))
        columns = ["row_key", *spec.columns] if spec.has_row_key else list(spec.columns)
        rows = [
            [spec.key_value(key), *(row[c] for c in spec.columns)]
            if spec.has_row_key
            else [row[c] for c in spec.columns]
            for key, row in changed.items()
        ]
        if self.conn.dialect.name == "postgresql":  # COPY: a fraction of the cost of INSERTs
            raw: Any = self.conn.connection.driver_connection
            names = ", ".join(f'"{c}"' for c in columns)
            with (
                raw.cursor() as cursor,
                cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
            ):
                for values in rows:
                    copy.write_row(values)
        else:
            self.conn.execute(insert(table), [dict(zip(columns, v, strict=True)) for v in rows])

    def advance(self, name: str, position: int) -> None:
        self.conn.execute(
            update(projector_checkpoints)
            .where(projector_checkpoints.c.name == name)
            .values(position=position, updated_at=utc_now(), error=None, error_seq=None)
        )
        self.position = position


class SqlViewStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    # --- the projector's lock -------------------------------------------------------------

    @contextmanager
    def batch(self, name: str, *, wait: bool = False) -> Iterator[ViewBatch | None]:
        """The projector's locked transaction, or None when another runner holds it (with
        ``wait``, wait for it instead: a rebuild's final swap)."""
        with self._writing() as conn:
            position = self._lock(conn, name, wait=wait)
            yield None if position is None else ViewBatch(conn, position, view_tables)

    @contextmanager
    def batches(self, names: Sequence[str]) -> Iterator[dict[str, ViewBatch]]:
        with self._writing() as conn:
            locked = {}
            for name in names:
                position = self._lock(conn, name, wait=False)
                if position is not None:
                    locked[name] = ViewBatch(conn, position, view_tables)
            yield locked

    def _lock(self, conn: Connection, name: str, *, wait: bool) -> int | None:
        query = select(projector_checkpoints.c.position).where(projector_checkpoints.c.name == name)
        if self._postgres:
            query = query.with_for_update(skip_locked=not wait)
        position = conn.execute(query).scalar()
        if position is not None:
            return int(position)
        exists = conn.execute(
            select(func.count())
            .select_from(projector_checkpoints)
            .where(projector_checkpoints.c.name == name)
        ).scalar()
        if exists:
            return None  # locked by another runner
        if not self._postgres:  # SQLite: this transaction holds the write lock already
            self._insert_checkpoint(conn, name)
        else:  # committed at once, on its own, so that no runner waits on an insert of ours
            with self._writing() as other:
                self._insert_checkpoint(other, name)
        position = conn.execute(query).scalar()
        return None if position is None else int(position)

    def _insert_checkpoint(self, conn: Connection, name: str) -> None:
        dialect_insert = pg_insert if self._postgres else sqlite_insert
        conn.execute(
            dialect_insert(projector_checkpoints)
            .values(name=name, position=-1, updated_at=utc_now())
            .on_conflict_do_nothing(index_elements=["name"])
        )

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with (
            translated_errors(),
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with translated_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    # --- status ---------------------------------------------------------------------------

    def record_error(self, name: str, seq: int, message: str) -> None:
        with self._writing() as conn:
            conn.execute(
                update(projector_checkpoints)
                .where(projector_checkpoints.c.name == name)
                .values(error=message, error_seq=seq, updated_at=utc_now())
            )

    def positions(self) -> dict[str, ProjectorPosition]:
        with self._reading() as conn:
            rows = conn.execute(select(projector_checkpoints)).all()
        return {
            row.name: ProjectorPosition(
                row.name, row.position, row.updated_at, row.error, row.error_seq
            )
            for row in rows
        }

    def log_size(self) -> int:
        with self._reading() as conn:
            size = conn.execute(select(ledger_head.c.size).where(ledger_head.c.id == 1)).scalar()
        return int(size or 0)

    def recorded_at(self, seq: int) -> datetime | None:
        with self._reading() as conn:
            value: datetime | None = conn.execute(
                select(entries.c.recorded_at).where(entries.c.seq == seq)
            ).scalar()
        return value

    # --- reading views --------------------------------------------------------------------

    def rows(
        self,
        table_name: str,
        *,
        equal: Mapping[str, Any] | None = None,
        within: Mapping[str, Sequence[Any]] | None = None,
        at_least: Mapping[str, Any] | None = None,
        below: Mapping[str, Any] | None = None,
        order_by: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Rows of a view, filtered by simple column conditions (values are bound, never
        spliced), without the internal ``row_key``."""
        table = view_tables[table_name]
        columns = [c for c in table.c if c.name != "row_key"]
        query = select(*columns)
        for name, value in (equal or {}).items():
            query = query.where(table.c[name] == value)
        for name, values in (within or {}).items():
            query = query.where(table.c[name].in_(list(values)))
        for name, value in (at_least or {}).items():
            query = query.where(table.c[name] >= value)
        for name, value in (below or {}).items():
            query = query.where(table.c[name] < value)
        query = query.order_by(*(table.c[name] for name in order_by))
        with self._reading() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def distinct(self, table_name: str, column: str) -> list[Any]:
        """The distinct values of one column of a view, sorted (one query; rows are not read
        into memory)."""
        table = view_tables[table_name]
        query = select(table.c[column]).distinct().order_by(table.c[column])
        with self._reading() as conn:
            return [value for (value,) in conn.execute(query)]

    # --- rebuild --------------------------------------------------------------------------

    def create_shadows(self, specs: Sequence[TableSpec]) -> dict[str, Table]:
        """Fresh, empty shadow tables of ``specs`` (old shadows of a failed rebuild dropped)."""
        shadows = _shadow_tables(specs)
        with self._writing() as conn:
            for table in shadows.values():
                table.drop(conn, checkfirst=True)
                table.create(conn)
        return shadows

    def drop_shadows(self, specs: Sequence[TableSpec]) -> None:
        with self._writing() as conn:
            for table in _shadow_tables(specs).values():
                table.drop(conn, checkfirst=True)

    @contextmanager
    def shadow_batch(self, shadows: Mapping[str, Any], position: int) -> Iterator[ViewBatch]:
        """A transaction over the shadow tables alone (no projector lock: nothing else
        writes them)."""
        with self._writing() as conn:
            yield ViewBatch(conn, position, shadows)

    def shadow_view(self, batch: ViewBatch, shadows: Mapping[str, Any], position: int) -> ViewBatch:
        """The shadow tables seen through a locked ``batch``'s transaction, at ``position``."""
        return ViewBatch(batch.conn, position, shadows)

    def swap_in(self, batch: ViewBatch, name: str, shadows: Mapping[str, Any]) -> None:
        """Inside the projector's locked ``batch``: drop the live tables, rename the shadows
        (and their indexes and keys) to the live names, and set the position to the one the
        shadows reached."""
        conn = batch.conn
        for live_name, shadow in shadows.items():
            live = view_tables[live_name]
            live.drop(conn)
            conn.exec_driver_sql(f'ALTER TABLE "{shadow.name}" RENAME TO "{live_name}"')
            if self._postgres:
                conn.exec_driver_sql(
                    f'ALTER TABLE "{live_name}" RENAME CONSTRAINT "{shadow.name}_pkey" '
                    f'TO "{live_name}_pkey"'
                )
                for index in shadow.indexes:
                    assert index.name is not None
                    live_index = index.name[: -len(SHADOW_SUFFIX)]
                    conn.exec_driver_sql(f'ALTER INDEX "{index.name}" RENAME TO "{live_index}"')
            else:  # SQLite cannot rename an index: build the live ones again
                for index in shadow.indexes:
                    conn.exec_driver_sql(f'DROP INDEX "{index.name}"')
                for index in live.indexes:
                    index.create(conn)
        batch.advance(name, batch.position)


def _shadow_tables(specs: Sequence[TableSpec]) -> dict[str, Table]:
    holder = MetaData()
    return {
        spec.name: view_table(spec, name=spec.name + SHADOW_SUFFIX, target=holder) for spec in specs
    }


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


__all__ = ["SHADOW_SUFFIX", "ProjectorPosition", "SqlViewStore", "ViewBatch", "metadata"]
