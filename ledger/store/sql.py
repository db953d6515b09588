"""The SQL :class:`~ledger.log.ports.LogStore` on SQLite and PostgreSQL (SQLAlchemy 2 Core).

An append is one transaction: take the single-writer lock (PostgreSQL: the ``ledger_head`` row
lock, ``SELECT … FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE``), read the head, the batch's stream
versions and idempotency keys, seal the inputs with the :class:`~ledger.log.sequencer.Sealer`,
bulk-write entries and stored Merkle subtrees, move the head, commit. The PostgreSQL path
lives in :mod:`ledger.store.postgres_append`; SQLite's is here. Because ``seq`` is assigned
under the lock, commit order equals ``seq`` order. Any error rolls the whole batch back.
Database errors become :class:`~ledger.errors.LedgerError` subclasses here, so callers never
see SQLAlchemy or psycopg exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from ledger.errors import (
    ConfigurationError,
    LedgerError,
    NotFoundError,
    StoreUnavailableError,
)
from ledger.integrity.merkle import Node, Range, assemble_nodes, node_inputs
from ledger.log.entry import EntryInput, EntryLike, Receipt, SealedEntry, utc_now
from ledger.log.ids import uuid7_batch
from ledger.log.ports import CheckpointRecord, check_seq, initial_head
from ledger.log.sequencer import Head, KeyedEntry, Sealer, parse_entries
from ledger.store.engine import WRITE_OPTION
from ledger.store.postgres_append import append_postgres
from ledger.store.tables import checkpoints, entries, ledger_head, merkle_nodes
from ledger.store.tree_cache import TreeCache

_IN_CHUNK = 900  # bound on bound parameters per IN list (SQLite's default limit is 32766)

_ENTRY_COLUMNS = list(SealedEntry._fields)  # also the column names, in order

ENTRY_SELECT = select(*(entries.c[name] for name in _ENTRY_COLUMNS))


class SqlLogStore:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utc_now,
        tree_cache: int = 0,
    ) -> None:
        """``tree_cache``: prove from an in-memory copy of the Merkle hashes of up to this
        many entries (:mod:`ledger.store.tree_cache`; 64 bytes an entry); 0 reads every
        proof's hashes from the database. Long-running servers set it, one-shot commands
        do not (their first proof would load the copy for one answer)."""
        self.engine = engine
        self._clock = clock
        self._tree = (
            TreeCache(tree_cache, read_leaves=self._leaf_range, read_level=self._level_range)
            if tree_cache > 0
            else None
        )
        self._postgres = engine.dialect.name == "postgresql"
        self._shared: ContextVar[Connection | None] = ContextVar("shared_read", default=None)
        self._reads: Engine | None = None  # see _immutable_rows

    def close(self) -> None:
        """Close the connections of this store's own read pool (see ``_immutable_rows``); the
        engine it was given belongs to the caller, who disposes of it."""
        if self._reads is not None:
            self._reads.dispose()

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        if self._shared.get() is not None:  # nested: the outer block's transaction serves
            yield
            return
        with self._reading() as conn:
            token = self._shared.set(conn)
            try:
                yield
            finally:
                self._shared.reset(token)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        shared = self._shared.get()
        if shared is not None:
            with translated_errors():
                yield shared
            return
        with translated_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    def _immutable_rows(self, statement: str) -> list[tuple[Any, ...]]:
        """The rows of one SELECT over rows that never change once written (stored Merkle
        nodes, leaf hashes): what a proof reads.

        On PostgreSQL, outside :meth:`reading`, it runs on a pool of its own in autocommit
        mode straight through the driver: one round trip, where the general pool's
        pre-ping, BEGIN and ROLLBACK would make four (a proof at a million entries took
        1.8 ms, most of it waiting on them). Without pre-ping a connection that the server
        dropped (a restart) fails at its first use; the pool is then discarded and the read
        made once more on a new connection, which is what pre-ping would have done."""
        if not self._postgres or self._shared.get() is not None:
            with self._reading() as conn:
                return [tuple(row) for row in conn.exec_driver_sql(statement)]
        if self._reads is None:
            self._reads = create_engine(self.engine.url, isolation_level="AUTOCOMMIT")
        with translated_errors():
            for attempt in range(2):
                raw = self._reads.raw_connection()
                try:
                    rows: list[tuple[Any, ...]] = raw.driver_connection.execute(  # type: ignore[union-attr]
                        statement
                    ).fetchall()
                    return rows
                except psycopg.OperationalError:
                    raw.invalidate()
                    self._reads.dispose()  # every pooled connection is as stale
                    if attempt:
                        raise
                finally:
                    raw.close()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with (
            translated_errors(),
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
            conn.begin(),
        ):
            yield conn

    # --- head -----------------------------------------------------------------------------

    def initialize(self, origin: str) -> Head:
        """Create the head row of an empty ledger; an existing ledger must have ``origin``."""
        with self._writing() as conn:
            row = conn.execute(select(ledger_head).where(ledger_head.c.id == 1)).first()
            if row is not None:
                if row.origin != origin:
                    raise ConfigurationError(
                        f"this database holds the ledger '{row.origin}', not '{origin}'; "
                        "set PACTLEDGER_ORIGIN to match it or use another database"
                    )
                return _head_of(row)
            head = initial_head(origin)
            conn.execute(insert(ledger_head).values(id=1, **_head_values(head, self._clock())))
            return head

    def head(self) -> Head:
        with self._reading() as conn:
            return self._read_head(conn, lock=False)

    def _read_head(self, conn: Connection, *, lock: bool) -> Head:
        query = select(ledger_head).where(ledger_head.c.id == 1)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise ConfigurationError("the ledger is not initialised: run `pactledger init`")
        return _head_of(row)

    # --- append ---------------------------------------------------------------------------

    def append(self, inputs: Sequence[EntryLike]) -> list[Receipt]:
        if not inputs:
            return []
        if self._postgres:
            with self._writing() as conn:
                raw: Any = conn.connection.driver_connection
                receipts, _ = append_postgres(raw, inputs, now=self._clock())
                return receipts
        parsed = parse_entries(inputs)
        with self._writing() as conn:
            now = self._clock()
            head = self._read_head(conn, lock=True)
            sealer = Sealer(
                head,
                stream_versions=self._stream_versions(conn, {i.stream for i in parsed}),
                keyed=self._keyed(conn, parsed),
                recorded_at=now,
                event_ids=iter(uuid7_batch(len(parsed), now)),
            )
            self._insert_sealed(conn, sealer, parsed)
            receipts, new_head = sealer.finish()
            if new_head.size > head.size:
                conn.execute(
                    update(ledger_head)
                    .where(ledger_head.c.id == 1)
                    .values(**_head_values(new_head, now))
                )
            return receipts

    def _insert_sealed(
        self,
        conn: Connection,
        sealer: Sealer,
        inputs: Sequence[EntryInput],
    ) -> None:
        """SQLite bulk insert through the driver: SQLAlchemy's per-row bind processing would cost
        more than the insert itself. Times use the text form SQLAlchemy reads back."""
        sealed = [e for i, inp in enumerate(inputs) if (e := sealer.seal(i, inp)) is not None]
        if not sealed:
            return
        nodes = sealer.nodes
        text_of: dict[datetime, str] = {}

        def sqlite_time(moment: datetime) -> str:
            if moment not in text_of:
                text_of[moment] = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return text_of[moment]

        conn.exec_driver_sql(
            f"INSERT INTO entries ({', '.join(_ENTRY_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))})",
            [
                (
                    e.seq,
                    e.event_id,
                    e.stream,
                    e.stream_version,
                    e.type,
                    e.schema_version,
                    e.tenant,
                    sqlite_time(e.occurred_at),
                    sqlite_time(e.recorded_at),
                    e.idempotency_key,
                    e.request_digest,
                    e.entry_bytes,
                    e.leaf_hash,
                    e.prev_hash,
                    e.chain_hash,
                )
                for e in sealed
            ],
        )
        if nodes:
            conn.exec_driver_sql(
                "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
            )

    def _stream_versions(self, conn: Connection, streams: set[str]) -> dict[str, int]:
        """The current version of each stream of the batch (absent when new)."""
        versions: dict[str, int] = {}
        for chunk in _chunks(sorted(streams)):
            query = (
                select(entries.c.stream, func.max(entries.c.stream_version))
                .where(entries.c.stream.in_(chunk))
                .group_by(entries.c.stream)
            )
            versions.update({row[0]: row[1] for row in conn.execute(query)})
        return versions

    def _keyed(
        self, conn: Connection, inputs: Sequence[EntryInput]
    ) -> dict[tuple[str, str], KeyedEntry]:
        """The entries holding the batch's (tenant, idempotency key) pairs: one query per
        tenant, each a search of the unique (tenant, idempotency_key) index."""
        keys_of: dict[str, set[str]] = {}
        for inp in inputs:
            if inp.idempotency_key is not None:
                keys_of.setdefault(inp.tenant, set()).add(inp.idempotency_key)
        found: dict[tuple[str, str], KeyedEntry] = {}
        for tenant, keys in sorted(keys_of.items()):
            for chunk in _chunks(sorted(keys)):
                query = select(
                    entries.c.idempotency_key,
                    entries.c.seq,
                    entries.c.event_id,
                    entries.c.stream,
                    entries.c.stream_version,
                    entries.c.leaf_hash,
                    entries.c.chain_hash,
                    entries.c.request_digest,
                ).where(entries.c.tenant == tenant, entries.c.idempotency_key.in_(chunk))
                for row in conn.execute(query):
                    found[(tenant, row[0])] = KeyedEntry(*row[1:])
        return found

    # --- reads ----------------------------------------------------------------------------

    def entry(self, seq: int) -> SealedEntry:
        with self._reading() as conn:
            row = conn.execute(ENTRY_SELECT.where(entries.c.seq == seq)).first()
            if row is None:
                size = self._read_head(conn, lock=False).size
                check_seq(seq, size)
                raise NotFoundError(
                    f"entry {seq} is missing although the log holds {size} entries; "
                    "run `pactledger verify`"
                )
            return entry_of(row)

    def iter_entries(self, *, start: int = 0, batch_size: int = 5000) -> Iterator[SealedEntry]:
        """Every entry from ``start`` in ``seq`` order, read ``batch_size`` at a time.

        On PostgreSQL, outside :meth:`reading`, the next batch is read by a helper thread
        while the caller works through the current one (the driver releases the GIL while it
        waits for the server), so a full scan costs about the larger of reading and
        processing rather than their sum. Entries never change once written, so batches read
        in separate transactions still form one consistent, gap-free sequence."""

        def read(position: int) -> list[Any]:
            with self._reading() as conn:
                return list(
                    conn.execute(
                        ENTRY_SELECT.where(entries.c.seq >= position)
                        .order_by(entries.c.seq)
                        .limit(batch_size)
                    ).all()
                )

        if not self._postgres or self._shared.get() is not None:
            position = start
            while rows := read(position):
                yield from map(entry_of, rows)
                position = rows[-1].seq + 1
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="pactledger-read-ahead")
        try:
            pending = pool.submit(read, start)
            while rows := pending.result():
                pending = pool.submit(read, rows[-1].seq + 1)
                yield from map(entry_of, rows)
        finally:
            # Never waits for the helper: a scan given up part-way (an audit that found a
            # changed entry) may be closed by the garbage collector on any thread, the
            # helper's own included, where waiting for it would be joining itself.
            pool.shutdown(wait=False, cancel_futures=True)

    def stream_entries(self, stream: str) -> list[SealedEntry]:
        with self._reading() as conn:
            rows = conn.execute(
                ENTRY_SELECT.where(entries.c.stream == stream).order_by(entries.c.stream_version)
            ).all()
        return [entry_of(row) for row in rows]

    def entries_in_streams(self, prefix: str) -> list[SealedEntry]:
        if not prefix:
            raise ValueError("a stream prefix is required")
        # A range on the (stream, stream_version) unique index: [prefix, prefix with its last
        # character incremented). Identifiers compare bytewise on both databases.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        with self._reading() as conn:
            rows = conn.execute(
                ENTRY_SELECT.where(entries.c.stream >= prefix, entries.c.stream < upper).order_by(
                    entries.c.seq
                )
            ).all()
        return [entry_of(row) for row in rows]

    def find_entries(
        self,
        *,
        event_type: str,
        after: int,
        limit: int,
        tenants: Collection[str] | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
    ) -> list[SealedEntry]:
        # Walks the (type, seq) index from ``after``; the other conditions filter on the way.
        query = ENTRY_SELECT.where(entries.c.type == event_type, entries.c.seq > after)
        if tenants is not None:
            if not tenants:
                return []
            query = query.where(entries.c.tenant.in_(sorted(tenants)))
        if occurred_from is not None:
            query = query.where(entries.c.occurred_at >= occurred_from)
        if occurred_to is not None:
            query = query.where(entries.c.occurred_at < occurred_to)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(entries.c.seq).limit(limit)).all()
        return [entry_of(row) for row in rows]

    def read_ranges(self, ranges: Sequence[Range]) -> Sequence[bytes] | None:
        """Whole ranges from the in-memory copy of the tree, where there is one (see
        :class:`~ledger.integrity.merkle.RangeReader`); None sends the caller to
        :meth:`read_nodes`."""
        return None if self._tree is None else self._tree.ranges(ranges)

    def read_nodes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        """One round trip for a proof's nodes: a UNION ALL of one index search per level of
        stored subtrees (``level = L AND idx IN (...)``; a row-value IN list would make SQLite
        scan the table) and one of leaf hashes (rows of level -1). The statement is written
        out with the integers inline — they are ints we computed, never input — so no SQL
        expression is built and compiled per proof, which cost more than the query."""
        if self._tree is not None and (found := self._tree.nodes(nodes)) is not None:
            return found
        stored_levels, wanted_leaves = node_inputs(nodes)
        by_level: dict[int, list[int]] = {}
        for level, index in stored_levels:
            by_level.setdefault(level, []).append(int(index))
        searches = [
            f"SELECT level, idx, hash FROM merkle_nodes WHERE level = {int(level)} "
            f"AND idx IN ({','.join(map(str, chunk))})"
            for level, indices in sorted(by_level.items())
            for chunk in _chunks(sorted(indices))
        ] + [
            f"SELECT -1, seq, leaf_hash FROM entries WHERE seq IN ({','.join(map(str, chunk))})"
            for chunk in _chunks(sorted(int(i) for i in wanted_leaves))
        ]
        stored: dict[Node, bytes] = {}
        leaves: dict[int, bytes] = {}
        for group in _chunks(searches, 50):
            for level, index, digest in self._immutable_rows(" UNION ALL ".join(group)):
                if level < 0:
                    leaves[index] = bytes(digest)
                else:
                    stored[(level, index)] = bytes(digest)
        return assemble_nodes(nodes, stored, leaves)

    def _leaf_range(self, first: int, end: int) -> list[bytes]:
        statement = (
            f"SELECT leaf_hash FROM entries WHERE seq >= {int(first)} AND seq < {int(end)} "
            "ORDER BY seq"
        )
        return [bytes(row[0]) for row in self._immutable_rows(statement)]

    def _level_range(self, level: int, first: int, end: int) -> list[bytes]:
        statement = (
            f"SELECT hash FROM merkle_nodes WHERE level = {int(level)} AND idx >= {int(first)} "
            f"AND idx < {int(end)} ORDER BY idx"
        )
        return [bytes(row[0]) for row in self._immutable_rows(statement)]

    def nodes_in(self, level: int, first: int, last: int) -> Mapping[int, bytes]:
        with self._reading() as conn:
            query = select(merkle_nodes.c.idx, merkle_nodes.c.hash).where(
                merkle_nodes.c.level == level,
                merkle_nodes.c.idx >= first,
                merkle_nodes.c.idx <= last,
            )
            return {row[0]: row[1] for row in conn.execute(query)}

    # --- checkpoints ----------------------------------------------------------------------

    def add_checkpoint(self, record: CheckpointRecord) -> CheckpointRecord:
        same = (checkpoints.c.key_id == record.key_id) & (
            checkpoints.c.tree_size == record.tree_size
        )
        with self._writing() as conn:
            row = conn.execute(select(checkpoints).where(same)).first()
            if row is not None:
                return _checkpoint_of(row)
            conn.execute(
                insert(checkpoints).values(
                    tree_size=record.tree_size,
                    root_hash=record.root_hash,
                    key_name=record.key_name,
                    key_id=record.key_id,
                    note=record.note,
                    created_at=record.created_at,
                )
            )
            return record

    def latest_checkpoint(self) -> CheckpointRecord | None:
        with self._reading() as conn:
            row = conn.execute(
                select(checkpoints)
                .order_by(checkpoints.c.tree_size.desc(), checkpoints.c.id.desc())
                .limit(1)
            ).first()
            return _checkpoint_of(row) if row is not None else None

    def checkpoints(self) -> list[CheckpointRecord]:
        with self._reading() as conn:
            rows = conn.execute(
                select(checkpoints).order_by(checkpoints.c.tree_size, checkpoints.c.id)
            )
            return [_checkpoint_of(row) for row in rows]


# --- row mapping --------------------------------------------------------------------------


def _head_of(row: Any) -> Head:
    return Head(
        origin=row.origin,
        size=row.size,
        chain_head=row.chain_head,
        frontier=row.frontier,
        root_hash=row.root_hash,
    )


def _head_values(head: Head, now: datetime) -> dict[str, Any]:
    return {
        "origin": head.origin,
        "size": head.size,
        "chain_head": head.chain_head,
        "frontier": head.frontier,
        "root_hash": head.root_hash,
        "updated_at": now,
    }


def entry_of(row: Any) -> SealedEntry:
    return SealedEntry(*row)  # ENTRY_SELECT lists the columns in SealedEntry's field order


def _checkpoint_of(row: Any) -> CheckpointRecord:
    return CheckpointRecord(
        tree_size=row.tree_size,
        root_hash=row.root_hash,
        key_name=row.key_name,
        key_id=row.key_id,
        note=row.note,
        created_at=row.created_at,
    )


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn driver errors into LedgerErrors that say what to do."""
    try:
        yield
    except LedgerError:
        raise
    except psycopg.errors.UndefinedTable:
        raise ConfigurationError(
            "the database has no pactledger schema: run `pactledger init`"
        ) from None
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"the database refused the operation: {exc}") from exc
    except sa_exc.OperationalError as exc:
        message = str(exc.orig)
        if "no such table" in message:
            raise ConfigurationError(
                "the database has no pactledger schema: run `pactledger init`"
            ) from None
        if "database or disk is full" in message:  # SQLITE_FULL: the whole batch rolled back
            raise StoreUnavailableError(
                "the disk that holds the database is full: free space on it and retry"
            ) from exc
        raise StoreUnavailableError(f"the database refused the operation: {message}") from exc
    except sa_exc.ProgrammingError as exc:
        if "does not exist" in str(exc.orig):
            raise ConfigurationError(
                "the database has no pactledger schema: run `pactledger init`"
            ) from None
        raise
