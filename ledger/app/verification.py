"""Verify the whole log and record that it was done (``pactledger verify``, the dashboard).

Guarantees: every run that starts is recorded once it ends, passed or failed (the failure's
kind and message), with its source; the verification's outcome is returned or raised exactly
as :meth:`Ledger.verify` gives it. A record that cannot be written (a read-only database)
never hides the outcome: ``record_failed`` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.app.service import Ledger
from ledger.errors import LedgerError, TamperedLogError
from ledger.integrity.note import NoteVerifier
from ledger.log.audit import AuditReport
from ledger.log.entry import utc_now
from ledger.log.ports import VerificationLog, VerificationRun


@dataclass
class Recorded:
    report: AuditReport
    record_failed: str | None = None


def verify_and_record(
    ledger: Ledger,
    log: VerificationLog,
    source: str,
    *,
    external_notes: Sequence[tuple[str, str]] = (),
    trusted: Sequence[NoteVerifier] = (),
    progress: Callable[[int], None] | None = None,
) -> Recorded:
    """Run :meth:`Ledger.verify` and record the run; a TamperedLogError or other LedgerError
    is raised after it is recorded."""
    started = utc_now()
    try:
        report = ledger.verify(external_notes=external_notes, trusted=trusted, progress=progress)
    except LedgerError as exc:
        kind = exc.kind if isinstance(exc, TamperedLogError) else "error"
        size = exc.seq if isinstance(exc, TamperedLogError) and exc.seq is not None else 0
        _try_record(
            log,
            VerificationRun(started, utc_now(), size, None, False, kind, str(exc), source),
        )
        raise
    run = VerificationRun(
        started, utc_now(), report.size, report.root_hash, True, None, None, source
    )
    return Recorded(report, _try_record(log, run))


def _try_record(log: VerificationLog, run: VerificationRun) -> str | None:
    try:
        log.record(run)
    except LedgerError as exc:
        return str(exc)
    return None
