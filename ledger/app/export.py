"""Gather an export scope from a ledger and write its regulator bundle (docs/bundles.md).

Guarantees:

* The scope is validated before anything is written: ``to`` after ``from`` (both aware), tenant
  names and request ids of the identifier form, and, once the log is read, every named tenant
  and request present in it; a bad one raises ValidationError naming the option.
* Entries are read in ``seq`` order with bounded memory: the streams ``request:<id>`` by
  their index when request ids are given, else one batched pass over the log up to the head
  read at the start (so concurrent appends do not move the scope).
* The bundle goes to ``<out>.part`` and is renamed over ``out`` only when complete: a refused
  or failed export leaves no file behind.
* Reports come from the projector views, restricted to the scope's tenants and period; the
  caller catches the projectors up first (``ledger.cli.bundle`` does). The tranche report is
  as of the scope's ``to``, else of the newest checkpoint's time, so it is reproducible.
* Policies: every published version effective at some time in ``[from, to)`` (all of them
  without a period) — a version is effective from its ``effective_from`` (else from when it
  was recorded) until the next version's start — and every version that an exported decision
  cites.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ledger.app.published import PolicyRegistry, read_policies
from ledger.app.views import ViewRows, chargeback_rows, residency, tranches
from ledger.bundle import format as fmt
from ledger.bundle.build import BundleInputs, BundleSummary, SignedCheckpoint, write_bundle
from ledger.errors import ConfigurationError, LedgerError, NotFoundError, ValidationError
from ledger.events import Catalogue
from ledger.integrity.note import NoteSigner
from ledger.log.entry import SealedEntry, format_time
from ledger.log.ports import LogStore
from ledger.projections.compliance import RESIDENCY
from ledger.projections.focus import write_focus_csv

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REQUEST_ID = re.compile(r"^[!#-\[\]-~]{1,192}$")


@dataclass(frozen=True)
class ExportScope:
    """The export filters as the user gave them (None: no filter)."""

    tenants: Sequence[str] | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    request_ids: Sequence[str] | None = None

    def validated(self) -> fmt.Scope:
        """The bundle scope; ValidationError names the first bad option."""
        for moment, name in ((self.occurred_from, "from"), (self.occurred_to, "to")):
            if moment is not None and moment.utcoffset() is None:
                raise ValidationError("give a time zone, e.g. 2026-11-01T00:00:00Z", field=name)
        if self.occurred_from and self.occurred_to and self.occurred_to <= self.occurred_from:
            raise ValidationError("must be after --from", field="to")
        for tenant in self.tenants or ():
            if not _NAME.match(tenant):
                raise ValidationError(f"'{tenant}' is not a tenant name", field="tenant")
        for request_id in self.request_ids or ():
            if not _REQUEST_ID.match(request_id):
                raise ValidationError(f"'{request_id}' is not a request id", field="request-id")
        return fmt.Scope(
            tenants=None if self.tenants is None else tuple(sorted(set(self.tenants))),
            occurred_from=None if self.occurred_from is None else format_time(self.occurred_from),
            occurred_to=None if self.occurred_to is None else format_time(self.occurred_to),
            request_ids=None if self.request_ids is None else tuple(sorted(set(self.request_ids))),
        )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key at ``path`` (the one that signs checkpoints)."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigurationError(
            f"no signing key at {path}: run `pactledger init` or set PACTLEDGER_SIGNING_KEY"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def export_bundle(
    *,
    store: LogStore,
    views: ViewRows,
    catalogue: Catalogue,
    signer: NoteSigner,
    private_key: Ed25519PrivateKey,
    scope: ExportScope,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
) -> BundleSummary:
    """Write the bundle of ``scope`` to ``out`` (see the module docstring); ``progress`` gets
    (entries of the log read, log size) as the scan goes."""
    bundle_scope = scope.validated()
    records = [c for c in store.checkpoints() if c.key_id == signer.verifier.key_id]
    checkpoints = [
        SignedCheckpoint(size=c.tree_size, root_hash=c.root_hash, note=c.note) for c in records
    ]
    if not records:
        raise NotFoundError(
            "no checkpoint signed by this ledger's key yet: run `pactledger checkpoint`, "
            "then export again"
        )
    newest = max(records, key=lambda c: c.tree_size)
    registry = read_policies(store, catalogue)
    cited: set[tuple[str, int]] = set()
    files = [
        *_policy_files(store, registry, scope),
        *_reports(views, scope, as_of=scope.occurred_to or newest.created_at),
    ]
    inputs = BundleInputs(
        origin=store.head().origin,
        scope=bundle_scope,
        checkpoints=checkpoints,
        vkey=signer.verifier.vkey,
        keyid=signer.verifier.key_id.hex(),
        sign=private_key.sign,
        files=files,
        late_files=lambda: _cited_files(registry, cited),
        notes={
            "tranches_as_of": format_time(scope.occurred_to or newest.created_at),
            "chargeback": "UTC days that overlap the scope's period, whole",
        },
    )
    size = store.head().size
    entries = _citing(_entries(store, bundle_scope, size), cited)
    partial = out.with_name(out.name + ".part")
    try:
        with partial.open("wb") as target:
            summary = write_bundle(
                target,
                ((e.seq, e.entry_bytes) for e in entries),
                inputs,
                nodes=store,
                progress=None if progress is None else lambda seq: progress(seq + 1, size),
            )
        partial.replace(out)
    except (LedgerError, OSError, ValueError):
        partial.unlink(missing_ok=True)
        raise
    return summary


def _entries(store: LogStore, scope: fmt.Scope, size: int) -> Iterator[SealedEntry]:
    """The scope's entries below ``size``, in seq order; checks the named tenants and requests
    exist once the log is read (the error aborts the bundle being written)."""
    if scope.streams is not None:
        lists = []
        for request_id, stream in zip(scope.request_ids or (), scope.streams, strict=True):
            found = [e for e in store.stream_entries(stream) if e.seq < size]
            if not found:
                raise ValidationError(
                    f"no request '{request_id}' in the ledger (stream {stream} is empty)",
                    field="request-id",
                )
            lists.append(found)
        source: Iterator[SealedEntry] = heapq.merge(*lists, key=lambda e: e.seq)
    else:
        source = store.iter_entries()
    seen: set[str] = set()
    for entry in source:
        if entry.seq >= size:
            break
        seen.add(entry.tenant)
        if scope.rejects(
            tenant=entry.tenant, occurred_at=format_time(entry.occurred_at), stream=entry.stream
        ):
            continue
        yield entry
    if scope.tenants is not None and scope.streams is None:
        unknown = sorted(set(scope.tenants) - seen)
        if unknown:
            raise ValidationError(
                f"no entries of tenant(s) {', '.join(unknown)} in the ledger", field="tenant"
            )


def _citing(entries: Iterator[SealedEntry], cited: set[tuple[str, int]]) -> Iterator[SealedEntry]:
    """The entries, noting the policy versions that decisions among them cite."""
    for entry in entries:
        if entry.type == "ResidencyDecided":
            for citation in orjson.loads(entry.entry_bytes)["payload"].get("policies", ()):
                cited.add((str(citation["policy_id"]), int(citation["version"])))
        yield entry


def _policy_file(policy_id: str, version: int) -> str:
    return f"{fmt.POLICIES_DIR}{policy_id}.v{version}.yaml"


def _cited_files(registry: PolicyRegistry, cited: set[tuple[str, int]]) -> list[tuple[str, bytes]]:
    found = [(key, registry.versions.get(key)) for key in sorted(cited)]
    return [(_policy_file(*key), p.event.text.encode()) for key, p in found if p is not None]


def _policy_files(
    store: LogStore, registry: PolicyRegistry, scope: ExportScope
) -> list[tuple[str, bytes]]:
    by_id: dict[str, list[tuple[int, datetime, str]]] = {}
    for (policy_id, version), published in sorted(registry.versions.items()):
        start = published.event.effective_from
        if start is None and published.seq is not None:
            start = store.entry(published.seq).recorded_at
        if start is None:
            continue
        by_id.setdefault(policy_id, []).append((version, start, published.event.text))
    files = []
    for policy_id, versions in sorted(by_id.items()):
        for position, (version, start, text) in enumerate(versions):
            end = versions[position + 1][1] if position + 1 < len(versions) else None
            if scope.occurred_to is not None and start >= scope.occurred_to:
                continue
            if scope.occurred_from is not None and end is not None and end <= scope.occurred_from:
                continue
            files.append((_policy_file(policy_id, version), text.encode()))
    return files


def _reports(views: ViewRows, scope: ExportScope, *, as_of: datetime) -> list[tuple[str, bytes]]:
    tenants: Collection[str] | None = None if scope.tenants is None else set(scope.tenants)
    rows = residency(views, tenants=tenants, since=scope.occurred_from, until=scope.occurred_to)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(
        text, fieldnames=list(RESIDENCY.columns), lineterminator="\r\n", extrasaction="ignore"
    )
    writer.writeheader()
    writer.writerows(rows)
    first_day = None if scope.occurred_from is None else _utc_day(scope.occurred_from)
    last_day = (
        None
        if scope.occurred_to is None
        else _utc_day(scope.occurred_to - timedelta(microseconds=1))
    )
    charge = [
        row
        for row in chargeback_rows(views, tenants=tenants)
        if (first_day is None or str(row["day"]) >= first_day)
        and (last_day is None or str(row["day"]) <= last_day)
    ]
    focus = io.StringIO(newline="")
    write_focus_csv(charge, focus)
    tranche_rows: list[dict[str, Any]] = tranches(views, as_of=as_of, tenants=tenants)
    return [
        (fmt.REPORT_RESIDENCY, text.getvalue().encode()),
        (fmt.REPORT_CHARGEBACK, focus.getvalue().encode()),
        (
            fmt.REPORT_TRANCHES,
            (json.dumps(tranche_rows, indent=2, sort_keys=True, default=str) + "\n").encode(),
        ),
    ]


def _utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()
