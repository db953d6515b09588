"""The one exception tree of pactledger.

Every failure that bad external data (a request, a file, a tampered database) can cause is a
:class:`LedgerError`; programmer misuse raises the built-in ``ValueError``/``TypeError``. Errors
carry no HTTP status codes: the API maps them in one place.

::

    LedgerError
    ├── IntegrityError            a hash, chain link, proof or signature does not hold
    │   └── TamperedLogError      verification of the stored log found a bad entry (has .seq)
    ├── ValidationError           input refused before anything is written (has .field)
    ├── ConcurrencyError          a stream's expected_version did not match
    ├── IdempotencyConflictError  an idempotency key was reused with different content
    ├── PolicyError               a policy document is malformed, unpublished or conflicting
    ├── NotFoundError             no such entry, checkpoint or key
    ├── ConfigurationError        settings, keys or schema are missing or inconsistent
    └── StoreUnavailableError     the database cannot be reached
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error pactledger raises for bad data or state."""


class IntegrityError(LedgerError):
    """A hash, chain link, Merkle proof or signature does not hold."""


class TamperedLogError(IntegrityError):
    """The stored log is not what was appended; ``seq`` locates the first bad entry.

    ``kind`` is one of ``changed``, ``missing``, ``reordered``, ``truncated``,
    ``bad-checkpoint``, ``inconsistent-checkpoint``, ``bad-node`` or ``bad-head``.
    """

    def __init__(self, message: str, *, seq: int | None, kind: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.kind = kind


class ValidationError(LedgerError):
    """Input was refused before anything was written; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.field = field
        self.line = line
        self.reason = message


class ConcurrencyError(LedgerError):
    """An append carried an ``expected_version`` that its stream no longer has."""

    def __init__(self, *, stream: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream '{stream}' is at version {actual}, but the append expected version "
            f"{expected}; re-read the stream and retry"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class IdempotencyConflictError(LedgerError):
    """An idempotency key was reused with content different from its first use."""

    def __init__(self, *, tenant: str, key: str, seq: int | None) -> None:
        where = f" (first used by seq {seq})" if seq is not None else " (earlier in this batch)"
        super().__init__(
            f"idempotency key '{key}' of tenant '{tenant}' was already used with different "
            f"content{where}; use a new key for a new entry"
        )
        self.tenant = tenant
        self.key = key
        self.seq = seq


class PolicyError(LedgerError):
    """A policy document is refused (``file``, ``line``, ``rule`` locate it) or cannot be used
    (never published, or a version reused with different text). A policy *denial* is not an
    error: it is a returned ``Decision``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        rule: str | None = None,
    ) -> None:
        where = []
        if file:
            where.append(f"{file}:{line}" if line is not None else file)
        if rule:
            where.append(f"rule '{rule}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.file = file
        self.line = line
        self.rule = rule
        self.reason = message


class NotFoundError(LedgerError):
    """The entry, checkpoint or key asked for does not exist."""


class ConfigurationError(LedgerError):
    """Settings, key files or the database schema are missing or do not agree."""


class StoreUnavailableError(LedgerError):
    """The database cannot be reached or refused the connection."""


class ProjectionError(LedgerError):
    """A projector met an entry it cannot project (a type or schema version the event
    catalogue does not know): it stops there rather than skip it."""

    def __init__(self, projector: str, seq: int, event_type: str, version: int, reason: str):
        self.projector, self.seq, self.event_type, self.version = (
            projector,
            seq,
            event_type,
            version,
        )
        self.reason = reason
        super().__init__(
            f"projector '{projector}' stopped at seq {seq} ({event_type} v{version}): {reason}; "
            "it resumes from there once this pactledger knows that type and version "
            "(upgrade it), see `pactledger project status`"
        )
