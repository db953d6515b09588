"""The record of full verifications of the log (table ``verification_runs``).

Guarantees: a run is only ever added, never changed; :meth:`SqlVerificationLog.latest` is the
run that finished last. The record says that someone looked and what they found; the proof is
the verification itself, which anyone can repeat (``pactledger verify``).
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from ledger.log.ports import VerificationRun
from ledger.store.engine import WRITE_OPTION
from ledger.store.sql import translated_errors
from ledger.store.tables import verification_runs


class SqlVerificationLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, run: VerificationRun) -> None:
        with (
            translated_errors(),
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
            conn.begin(),
        ):
            conn.execute(
                insert(verification_runs).values(
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    tree_size=run.tree_size,
                    root_hash=run.root_hash,
                    ok=run.ok,
                    kind=run.kind,
                    error=run.error,
                    source=run.source,
                )
            )

    def latest(self) -> VerificationRun | None:
        query = (
            select(verification_runs)
            .order_by(verification_runs.c.finished_at.desc(), verification_runs.c.id.desc())
            .limit(1)
        )
        with translated_errors(), self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return VerificationRun(
            started_at=row.started_at,
            finished_at=row.finished_at,
            tree_size=row.tree_size,
            root_hash=None if row.root_hash is None else bytes(row.root_hash),
            ok=row.ok,
            kind=row.kind,
            error=row.error,
            source=row.source,
        )
