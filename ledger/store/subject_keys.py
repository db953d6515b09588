"""Subject data keys in SQL (SQLite or PostgreSQL): the :class:`~ledger.privacy.SubjectKeys`
port.

Guarantees:

* At most one active key per subject (a partial unique index); when two processes create the
  first key of one subject at once, ``save`` keeps the first (INSERT … ON CONFLICT DO NOTHING)
  and tells the other which key won.
* :meth:`SqlSubjectKeys.shred` overwrites the wrapped key with NULL and then makes sure the
  old bytes do not linger in the database files: on SQLite with ``secure_delete`` (freed
  space is zeroed) and a WAL checkpoint that truncates the write-ahead log; on PostgreSQL with
  a ``VACUUM`` of the table, which frees the dead row version. (Backups and replicas taken
  before the erasure still hold the wrapped key: they are protected by the key-encryption
  key, which never lives in the database; docs/privacy.md says how to handle them.)
* Driver errors become LedgerErrors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.privacy import SubjectKey
from ledger.store.engine import WRITE_OPTION
from ledger.store.sql import translated_errors
from ledger.store.tables import subject_keys

_ACTIVE = subject_keys.c.wrapped_key.is_not(None)


class SqlSubjectKeys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def active(self, subject_digest: str) -> SubjectKey | None:
        with translated_errors(), self.engine.connect() as conn:
            return _active(conn, subject_digest)

    def active_many(self, subject_digests: Collection[str]) -> Mapping[str, SubjectKey]:
        if not subject_digests:
            return {}
        with translated_errors(), self.engine.connect() as conn:
            return _active_many(conn, subject_digests)

    def save(
        self, new: Collection[SubjectKey], *, used: Collection[str], at: datetime
    ) -> Mapping[str, SubjectKey]:
        with translated_errors(), self._writing() as conn:
            if new:
                insert_new = _insert(conn.dialect.name).on_conflict_do_nothing(
                    index_elements=["subject_digest"], index_where=_ACTIVE
                )
                conn.execute(insert_new, [_row(key) for key in new])
            if used:
                conn.execute(
                    update(subject_keys)
                    .where(subject_keys.c.key_id.in_(sorted(used)))
                    .where(subject_keys.c.last_used_at < at)
                    .values(last_used_at=at)
                )
            return _active_many(conn, {key.subject_digest for key in new}) if new else {}

    def get(self, key_ids: Collection[str]) -> Mapping[str, SubjectKey]:
        if not key_ids:
            return {}
        with translated_errors(), self.engine.connect() as conn:
            rows = conn.execute(
                select(subject_keys).where(subject_keys.c.key_id.in_(sorted(key_ids)))
            ).all()
        return {row.key_id: _key(row) for row in rows}

    def shred(self, key_id: str, *, at: datetime, seq: int) -> None:
        with translated_errors():
            with self._writing() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA secure_delete = ON")
                conn.execute(
                    update(subject_keys)
                    .where(subject_keys.c.key_id == key_id, _ACTIVE)
                    .values(wrapped_key=None, erased_at=at, erased_seq=seq)
                )
            self._purge_old_versions()

    def history(self, subject_digest: str) -> list[SubjectKey]:
        with translated_errors(), self.engine.connect() as conn:
            rows = conn.execute(
                select(subject_keys)
                .where(subject_keys.c.subject_digest == subject_digest)
                .order_by(subject_keys.c.created_at, subject_keys.c.key_id)
            ).all()
        return [_key(row) for row in rows]

    def tenants(self) -> list[str]:
        with translated_errors(), self.engine.connect() as conn:
            rows = conn.execute(
                select(subject_keys.c.tenant).distinct().order_by(subject_keys.c.tenant)
            ).all()
        return [row.tenant for row in rows]

    def _purge_old_versions(self) -> None:
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM subject_keys"))

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with (
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
            conn.begin(),
        ):
            yield conn


def _insert(dialect: str) -> Any:
    """INSERT with ON CONFLICT DO NOTHING for the dialect (SQLite or PostgreSQL)."""
    if dialect == "postgresql":
        return postgresql.insert(subject_keys)
    return sqlite.insert(subject_keys)


def _active_many(conn: Connection, digests: Collection[str]) -> dict[str, SubjectKey]:
    rows = conn.execute(
        select(subject_keys).where(subject_keys.c.subject_digest.in_(sorted(digests)), _ACTIVE)
    ).all()
    return {row.subject_digest: _key(row) for row in rows}


def _active(conn: Connection, subject_digest: str) -> SubjectKey | None:
    row = conn.execute(
        select(subject_keys).where(subject_keys.c.subject_digest == subject_digest, _ACTIVE)
    ).first()
    return None if row is None else _key(row)


def _row(key: SubjectKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "subject_digest": key.subject_digest,
        "wrapped_key": key.wrapped_key,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "erased_at": key.erased_at,
        "erased_seq": key.erased_seq,
    }


def _key(row: Any) -> SubjectKey:
    return SubjectKey(
        key_id=row.key_id,
        tenant=row.tenant,
        subject_digest=row.subject_digest,
        wrapped_key=None if row.wrapped_key is None else bytes(row.wrapped_key),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        erased_at=row.erased_at,
        erased_seq=row.erased_seq,
    )
