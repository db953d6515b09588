"""``pactledger erase``: crypto-shred a data subject's personal data (docs/privacy.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ledger.app.personal_data import erase_subject

from .common import JsonFlag, load_settings, open_ledger, out, print_json, run_action


def erase(
    subject: Annotated[
        str,
        typer.Argument(
            help="The data subject's id, exactly as sent in payload.end_user_id (it is never "
            "stored in clear: the ledger finds the subject's key by a keyed digest)."
        ),
    ],
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="Erase in this tenant only (repeat). Default: every tenant."),
    ] = None,
    request: Annotated[
        str | None,
        typer.Option(
            "--request",
            help="Reference of the data subject's erasure request (GDPR Art. 17). Needed while "
            "the subject's records are inside the retention period (PACTLEDGER_RETENTION_DAYS, "
            "at least 183 days: EU AI Act Art. 19, 26(6)).",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, in a few words (recorded).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Destroy a data subject's keys so their personal fields can never be read again.

    Appends one SubjectErased entry per key (once: running it again appends nothing and
    reports the earlier erasure) and then destroys the key. The log's bytes do not change, so
    `pactledger verify`, every proof and every exported bundle still verify; reads show
    [erased] where the values were.

    Example: pactledger erase user-4711 --request DSR-2026-118 --reason "Art. 17 request"
    """
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    result: dict[str, Any] = run_action(
        lambda: erase_subject(
            ledger,
            subject,
            tenants=tenant or (),
            request_ref=request,
            reason=reason,
            retention_days=settings.retention_days,
        )
    )
    if as_json:
        print_json(result)
        return
    for key in result["erased"]:
        out.print(
            f"[green]✓[/] erased subject key {key['key_id']} in tenant "
            f"[bold]{escape(key['tenant'])}[/], recorded at seq {key['seq']}"
        )
    for key in result["already"]:
        out.print(
            f"[dim]•[/] key {key['key_id']} in tenant {escape(key['tenant'])} was already "
            f"erased at {key['erased_at']} (seq {key['seq']}); nothing appended"
        )
    if result["erased"]:
        out.print("  Reads now show [erased]; `pactledger verify` still passes.", markup=False)
