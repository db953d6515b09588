"""What every projection is made of: facts in, row changes out, with no I/O.

A projection (see docs/projectors.md) owns one or more view tables. For each fact (a log
entry, payload in its type's current version) it names the rows it may read or write
(:meth:`Projection.keys`); the runner loads those rows, calls :meth:`Projection.apply` for
every fact of the batch in ``seq`` order over the loaded rows, and writes back the rows that
changed, with the new checkpoint, in one transaction. ``apply`` must depend on nothing but
the facts and the rows, so that incremental projection and a rebuild from ``seq`` 0 agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

Key = tuple[Any, ...]
Row = dict[str, Any]


class LoggedEntry(NamedTuple):
    """The columns of a log entry a projector reads (no hashes, no timestamps to convert)."""

    seq: int
    type: str
    schema_version: int
    stream: str
    tenant: str
    entry_bytes: bytes


@dataclass(frozen=True, slots=True)
class Fact:
    """One log entry as projections see it."""

    seq: int
    type: str
    stream: str
    tenant: str
    occurred_at: str  # RFC 3339 UTC text, as stored in the entry
    payload: Mapping[str, Any]  # the current version's shape, JSON values as stored


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A view table: its name, its key columns and all its columns (key first).

    A table with a one-column key is keyed by that column; one with a composite key whose
    rows are read back also has a ``row_key`` column, the key's parts joined by
    :data:`KEY_SEPARATOR`, so that rows are found with one indexed ``IN`` list on every
    database (an insert-only table keeps its composite primary key)."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()
    insert_only: bool = False  # rows are only ever added: the runner need not read them first

    @property
    def has_row_key(self) -> bool:
        """Composite keys of tables whose rows are read back get a ``row_key`` column."""
        return len(self.key) > 1 and not self.insert_only

    @property
    def key_column(self) -> str:
        return "row_key" if self.has_row_key else self.key[0]

    def key_of(self, row: Mapping[str, Any]) -> Key:
        return tuple(row[column] for column in self.key)

    def key_value(self, key: Key) -> Any:
        """The value of :attr:`key_column` for ``key``."""
        return KEY_SEPARATOR.join(str(part) for part in key) if self.has_row_key else key[0]


KEY_SEPARATOR = "\x1f"  # the ASCII unit separator: never part of an identifier


class Rows:
    """The rows a batch may touch, by table and key, and which of them it changed."""

    def __init__(self, loaded: Mapping[str, Mapping[Key, Row]] | None = None) -> None:
        self._rows: dict[str, dict[Key, Row]] = {t: dict(r) for t, r in (loaded or {}).items()}
        self._changed: dict[str, set[Key]] = {}

    def get(self, table: str, key: Key) -> Row | None:
        return self._rows.get(table, {}).get(key)

    def put(self, table: str, key: Key, row: Row) -> None:
        self._rows.setdefault(table, {})[key] = row
        self._changed.setdefault(table, set()).add(key)

    def changed(self) -> dict[str, dict[Key, Row]]:
        return {
            table: {key: self._rows[table][key] for key in keys}
            for table, keys in self._changed.items()
        }


class Projection(Protocol):
    name: str
    tables: tuple[TableSpec, ...]
    types: frozenset[str] | None  # the entry types it uses (None: every type), a fast filter

    def keys(self, fact: Fact) -> Iterable[tuple[str, Key]]:
        """The (table, key) of every row ``apply(fact, …)`` may read or write; empty when the
        projection does not use this fact."""
        ...

    def apply(self, fact: Fact, rows: Rows) -> None:
        """Fold one fact into ``rows`` (every row named by :meth:`keys` is loaded, or absent
        from the view)."""
        ...


@dataclass
class MemoryViews:
    """Views held in memory: runs projections over facts with no database (tests, and the
    property that incremental projection equals a rebuild)."""

    projection: Projection
    tables: dict[str, dict[Key, Row]] = field(default_factory=dict)

    def apply(self, facts: Iterable[Fact]) -> None:
        batch = list(facts)
        wanted: dict[str, set[Key]] = {}
        for fact in batch:
            for table, key in self.projection.keys(fact):
                wanted.setdefault(table, set()).add(key)
        held = {
            table: {k: dict(self.tables[table][k]) for k in keys if k in self.tables.get(table, {})}
            for table, keys in wanted.items()
        }
        rows = Rows(held)
        for fact in batch:
            self.projection.apply(fact, rows)
        for table, changed in rows.changed().items():
            self.tables.setdefault(table, {}).update(changed)

    def rows(self, table: str) -> list[Row]:
        return [self.tables.get(table, {})[k] for k in sorted(self.tables.get(table, {}))]
