"""API keys in SQL (SQLite or PostgreSQL): the :class:`~ledger.access.KeyStore` port.

Guarantees: only the SHA-256 of a secret is stored; revocation is a timestamp (rows are
kept, so listings show who had access when); driver errors become LedgerErrors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ledger.access import ApiKeyRecord, Role
from ledger.errors import NotFoundError
from ledger.store.engine import WRITE_OPTION
from ledger.store.sql import translated_errors
from ledger.store.tables import api_keys


class SqlKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_key(self, record: ApiKeyRecord) -> None:
        with translated_errors(), self._writing() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=record.key_id,
                    secret_hash=record.secret_hash,
                    role=record.role.value,
                    tenants=json.dumps(list(record.tenants)),
                    all_tenants=record.all_tenants,
                    name=record.name,
                    created_at=record.created_at,
                    revoked_at=record.revoked_at,
                )
            )

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        with translated_errors(), self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return _record(row) if row is not None else None

    def list_keys(self) -> list[ApiKeyRecord]:
        with translated_errors(), self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [_record(row) for row in rows]

    def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord:
        with translated_errors(), self._writing() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            raise NotFoundError(f"no API key '{key_id}': see `pactledger keys list`")
        return _record(row)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with (
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
            conn.begin(),
        ):
            yield conn


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        secret_hash=bytes(row.secret_hash),
        role=Role(row.role),
        tenants=tuple(json.loads(row.tenants)),
        all_tenants=bool(row.all_tenants),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
