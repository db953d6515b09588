"""The estimator's one error type.

:class:`EstimateError` is a :class:`ledger.errors.LedgerError`: bad external data (a rack or
model file, an unknown name, a precision a rack does not publish, a workload that cannot fit)
raises it, with ``file``, ``entry`` and ``field`` naming the culprit where one is known.
Programmer misuse (a negative GPU count passed in code) raises ``ValueError``.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class EstimateError(LedgerError):
    """An estimate cannot be made from the data given; the message says which datum."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        entry: str | None = None,
        field: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(f"file '{file}'")
        if entry is not None:
            where.append(f"entry '{entry}'")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.file = file
        self.entry = entry
        self.field = field
        self.reason = message
