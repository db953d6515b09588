"""``pactledger provenance REQUEST_ID``: every entry about one request, each with its inclusion
proof verified against the newest signed checkpoint; ``--json`` prints exactly what
``GET /v1/provenance/{id}`` answers, ``--format prov`` the W3C PROV-JSON document
(docs/provenance.md). The CLI reads every tenant, as the ledger's operator does."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.app.personal_data import reveal
from ledger.app.provenance import ProvenEntry, RequestProvenance, request_provenance
from ledger.app.published import read_event
from ledger.app.service import Ledger
from ledger.errors import LedgerError, NotFoundError
from ledger.events import Event, InferenceRouted, ResidencyDecided
from ledger.provenance_prov import prov_json

from .common import JsonFlag, fail, load_settings, open_ledger, out, print_json, run_action

HASH_SHOWN = 16  # hex digits of a leaf hash in the table; --json has them whole
PIPED_WIDTH = 160


class Format(StrEnum):
    json = "json"
    prov = "prov"


def provenance(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID", help="e.g. req-7f3a")],
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            help="json: the entries with their proofs (a table unless --json); "
            "prov: the request as W3C PROV-JSON.",
        ),
    ] = Format.json,
    as_json: JsonFlag = False,
) -> None:
    """Show every entry about a request (its decision, its routed inferences …) with its leaf
    hash and inclusion proof, checked against the newest signed checkpoint.

    --json prints the same document as GET /v1/provenance/{id}; --format prov prints W3C
    PROV-JSON (entities, activities and agents of the request, each tied to its log entry by
    seq and leaf hash). Personal fields never appear in the PROV document.
    """
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    prov = format is Format.prov
    try:
        gathered = request_provenance(
            ledger.store,
            ledger.catalogue,
            request_id=request_id,
            sees=_all,
            sources=prov,
            reveal=lambda entries: reveal(ledger, entries),
        )
    except NotFoundError:
        fail(
            f"no entry of request '{request_id}' is in this ledger (stream request:{request_id}); "
            "check the id"
        )
    except LedgerError as exc:
        fail(str(exc))
    if prov:
        sys.stdout.write(run_action(lambda: prov_json(gathered, ledger.catalogue)))
        return
    if as_json:
        print_json(gathered.to_json())
        return
    _print_table(ledger, gathered)


def _all(tenant: str) -> bool:
    return True


def _print_table(ledger: Ledger, gathered: RequestProvenance) -> None:
    checkpoint = gathered.checkpoint
    if checkpoint is None:
        where = "[yellow]no checkpoint signed yet[/] — run `pactledger checkpoint`"
    else:
        where = f"checkpoint size {checkpoint.tree_size:,}, root {checkpoint.root_hash.hex()}"
    out.print(f"request [bold]{escape(gathered.request_id)}[/]: {where}")
    table = Table()
    for column in ("seq", "type", "occurred at", "summary", "leaf hash", "proof"):
        table.add_column(column, no_wrap=column in ("seq", "leaf hash", "proof"))
    for proven in gathered.entries:
        entry = proven.entry
        occurred = orjson.loads(entry.entry_bytes)["occurred_at"]
        try:
            summary = _summary(read_event(ledger.catalogue, entry))
        except LedgerError as exc:  # an entry the catalogue cannot read is shown, not hidden
            summary = f"[red]unreadable: {escape(str(exc))}[/]"
        table.add_row(
            str(entry.seq),
            entry.type,
            occurred[:19].replace("T", " ") + "Z",
            summary,
            entry.leaf_hash.hex()[:HASH_SHOWN] + "…",
            _proof_status(proven, gathered),
        )
    # A terminal's width wraps the summaries; piped output is not cut to 80 columns.
    console = out if out.is_terminal else Console(highlight=False, width=PIPED_WIDTH)
    console.print(table)
    if any(proven.proof is None for proven in gathered.entries):
        out.print("pending: appended after the checkpoint; `pactledger checkpoint` covers it")
    out.print("full hashes, payloads and proofs: --json; W3C PROV-JSON: --format prov")


def _proof_status(proven: ProvenEntry, gathered: RequestProvenance) -> str:
    proof, checkpoint = proven.proof, gathered.checkpoint
    if proof is None or checkpoint is None:
        return "[yellow]pending[/]"
    try:
        proof.verify()
    except LedgerError as exc:
        return f"[red]FAILED[/]: {escape(str(exc))}"
    if proof.leaf_hash != proven.entry.leaf_hash or proof.root_hash != checkpoint.root_hash:
        return "[red]FAILED[/]: the proof is not about this entry and checkpoint"
    return "[green]✓ verified[/]"


def _summary(event: Event) -> str:
    if isinstance(event, ResidencyDecided):
        placed = (
            f" → {event.chosen_provider}/{event.chosen_region}" if event.chosen_provider else ""
        )
        asked = f"{event.candidate_provider}/{event.candidate_region}"
        return escape(f"{event.outcome} {asked}{placed} ({len(event.policies)} policies)")
    if isinstance(event, InferenceRouted):
        where = f"{event.provider}/{event.region}"
        on = f" on {event.tranche_id}" if event.tranche_id else ""
        cost = f", {event.cost} {event.currency}" if event.cost is not None else ""
        return escape(
            f"{event.model} at {where}{on}, {event.input_tokens}+{event.output_tokens} tokens{cost}"
        )
    fields: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    shown = [f"{k}={v}" for k, v in fields.items() if not k.startswith("end_user")][:4]
    return escape(", ".join(shown))
