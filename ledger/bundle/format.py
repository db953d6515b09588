"""The bundle's layout: file names, the scope, and the deterministic zip entry form.

Guarantees:

* Every zip member is written with the same metadata (date 1980-01-01 00:00:00, Unix mode
  0644, deflate, no comment) in a fixed order, so the same inputs give byte-identical archives
  (for one zlib version: deflate output is not specified across zlib releases).
* A :class:`Scope` is the export filter, stored in the manifest: tenants, a half-open
  ``[from, to)`` range of ``occurred_at`` and request ids (streams ``request:<id>``); the
  filters combine with AND. Times are kept in the entries' own fixed UTC text form
  (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so they compare as strings.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import IntegrityError

FORMAT = "pactledger-bundle/1"

ENTRIES = "entries.jsonl"
INCLUSION = "proofs/inclusion.jsonl"
CHECKPOINT = "checkpoint.txt"
CHECKPOINT_NEWEST = "checkpoint-newest.txt"
CONSISTENCY = "consistency.json"
VERIFIER_KEY = "verifier.vkey"
GUIDE = "VERIFY.md"
MANIFEST = "manifest.json"
STATEMENT = "statement.dsse.json"
POLICIES_DIR = "policies/"
REPORT_RESIDENCY = "reports/residency.csv"
REPORT_CHARGEBACK = "reports/chargeback-focus.csv"
REPORT_TRANCHES = "reports/tranches.json"

REQUIRED = (ENTRIES, INCLUSION, CHECKPOINT, CHECKPOINT_NEWEST, CONSISTENCY, VERIFIER_KEY)
"""Files every bundle has besides the manifest and the statement (which the manifest cannot
list: it is hashed into the statement, and the statement signs it)."""

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_MODE = 0o100644
_UNIX = 3
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_REQUEST_PREFIX = "request:"


def zip_info(name: str) -> zipfile.ZipInfo:
    """The one metadata form of every member (see the module docstring)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = _UNIX
    info.external_attr = ZIP_MODE << 16
    return info


@dataclass(frozen=True, slots=True)
class Scope:
    """What a bundle holds: every entry that passes all the given filters (None: no filter)."""

    tenants: tuple[str, ...] | None = None
    occurred_from: str | None = None
    occurred_to: str | None = None
    request_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for moment in (self.occurred_from, self.occurred_to):
            if moment is not None and not _TIME.match(moment):
                raise ValueError(f"scope time {moment!r} is not in the fixed UTC form")

    @property
    def streams(self) -> tuple[str, ...] | None:
        if self.request_ids is None:
            return None
        return tuple(_REQUEST_PREFIX + r for r in self.request_ids)

    def rejects(self, *, tenant: str, occurred_at: str, stream: str) -> str | None:
        """Why an entry is outside the scope, or None if it is inside."""
        if self.tenants is not None and tenant not in self.tenants:
            return f"tenant {tenant!r} is not among the scope's tenants {list(self.tenants)}"
        if self.occurred_from is not None and occurred_at < self.occurred_from:
            return f"occurred_at {occurred_at} is before the scope's from {self.occurred_from}"
        if self.occurred_to is not None and occurred_at >= self.occurred_to:
            return f"occurred_at {occurred_at} is not before the scope's to {self.occurred_to}"
        streams = self.streams
        if streams is not None and stream not in streams:
            return f"stream {stream!r} is not one of the scope's requests {list(streams)}"
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "tenants": None if self.tenants is None else list(self.tenants),
            "from": self.occurred_from,
            "to": self.occurred_to,
            "request_ids": None if self.request_ids is None else list(self.request_ids),
        }

    @classmethod
    def from_json(cls, data: object) -> Scope:
        """Parse the manifest's scope; IntegrityError names what is malformed."""
        if not isinstance(data, Mapping) or set(data) != {"tenants", "from", "to", "request_ids"}:
            raise IntegrityError("manifest scope must hold tenants, from, to and request_ids")
        try:
            return cls(
                tenants=_names(data["tenants"], "tenants"),
                occurred_from=_time(data["from"], "from"),
                occurred_to=_time(data["to"], "to"),
                request_ids=_names(data["request_ids"], "request_ids"),
            )
        except ValueError as exc:
            raise IntegrityError(f"manifest scope: {exc}") from None


def _names(value: object, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise IntegrityError(f"manifest scope {what} is not a list")
    if not all(isinstance(v, str) for v in value):
        raise IntegrityError(f"manifest scope {what} holds a non-string")
    return tuple(str(v) for v in value)


def _time(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TIME.match(value):
        raise IntegrityError(f"manifest scope {what} is not a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return value
