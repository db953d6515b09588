"""``pactledger export`` and ``pactledger verify-bundle``: regulator bundles (docs/bundles.md).

``export`` reads the ledger of the settings, catches the projectors up (the reports come from
their views) and writes a deterministic zip; ``verify-bundle`` reads nothing but the zip and
the key it is given: no settings, no database, no environment, any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger import compose
from ledger.app.export import ExportScope, export_bundle, load_private_key
from ledger.bundle.verify import verify_bundle
from ledger.errors import LedgerError

from .common import JsonFlag, err, fail, load_settings, open_ledger, out, print_json, run_action
from .views import option_time

REPORT_PROJECTORS = ("compliance", "chargeback", "capacity")


def export(
    out_file: Annotated[
        Path, typer.Option("--out", help="The zip to write (replaced if present).")
    ],
    tenants: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="Only this tenant (repeat for several).", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="Entries that occurred at or after, ISO 8601 with a zone."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Entries that occurred before, ISO 8601.")
    ] = None,
    request_ids: Annotated[
        list[str] | None,
        typer.Option(
            "--request-id",
            help="Only the stream request:ID (repeat for several).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a regulator bundle: entries, one Merkle multiproof, signed checkpoints, policy texts,
    reports and a DSSE-signed in-toto statement, checkable offline with `verify-bundle`.

    Filters combine with AND. The same scope over the same ledger gives a byte-identical zip.
    The proofs are against the first checkpoint that covers the scope: run `pactledger
    checkpoint` first if the scope's last entries are newer than the newest checkpoint.
    """
    scope = ExportScope(
        tenants=tenants,
        occurred_from=option_time(since, "from"),
        occurred_to=option_time(until, "to"),
        request_ids=request_ids,
    )
    try:
        scope.validated()
    except LedgerError as exc:
        fail(str(exc), 2)
    if out_file.name in ("", ".", "..") or out_file.is_dir():
        fail(f"--out: give the zip file to write, e.g. bundle.zip ('{out_file}' is a directory)", 2)
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings, need_signer=True))
    assert ledger.signer is not None
    private_key = run_action(lambda: load_private_key(settings.signing_key))
    projectors = run_action(lambda: compose.open_projectors(settings))
    run_action(projectors.catch_up)
    for status in run_action(projectors.status):
        if status.name in REPORT_PROJECTORS and status.error:
            fail(
                f"projector {status.name} is stopped ({status.error}): its report would be "
                "incomplete; fix it (`pactledger project status`) and export again"
            )
        if status.name in REPORT_PROJECTORS and status.lag_entries:
            err.print(
                f"[yellow]note:[/] projector {status.name} is {status.lag_entries:,} entries "
                "behind the log: the reports lag the entries"
            )
    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("export", total=None)
        calls = [0]

        def advance(done: int, total: int) -> None:
            calls[0] += 1
            if calls[0] % 1000 == 1 or done == total:  # Rich is slow per update
                bar.update(task, completed=done, total=total)

        summary = run_action(
            lambda: export_bundle(
                store=ledger.store,
                views=projectors.views,
                catalogue=ledger.catalogue,
                signer=ledger.signer,
                private_key=private_key,
                scope=scope,
                out=out_file,
                progress=advance,
            )
        )
    result = {
        "out": str(out_file),
        "entry_count": summary.entry_count,
        "first_seq": summary.first_seq,
        "last_seq": summary.last_seq,
        "proof_tree_size": summary.proof_tree_size,
        "tree_size": summary.tree_size,
        "multiproof_nodes": summary.multiproof_nodes,
        "files": len(summary.files) + 2,
        "manifest_sha256": summary.manifest_sha256,
        "vkey": ledger.signer.verifier.vkey,
    }
    if as_json:
        print_json(result)
        return
    out.print(
        f"[green]✓[/] wrote {escape(str(out_file))}: {summary.entry_count:,} entries "
        f"(seq {summary.first_seq}–{summary.last_seq}), proven against checkpoint "
        f"{summary.proof_tree_size:,}, consistent with {summary.tree_size:,}"
    )
    out.print(f"  manifest sha256 {summary.manifest_sha256}")
    out.print(
        f"  check it with: pactledger verify-bundle {escape(str(out_file))} "
        f"--trusted-key '{result['vkey']}'"
    )


def verify_bundle_command(
    file: Annotated[Path, typer.Argument(help="The bundle zip.")],
    trusted_key: Annotated[
        str | None,
        typer.Option(
            "--trusted-key",
            help="The ledger's verifier key (vkey text, or a file holding it), obtained "
            "independently of the bundle.",
        ),
    ] = None,
    entry: Annotated[
        int | None,
        typer.Option(
            "--entry", min=0, help="Also print the RFC 9162 inclusion proof of entry SEQ."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a bundle offline: the DSSE signature over the manifest, every file's hash, no file
    missing or added, every leaf against the entry bytes, the multiproof against the signed
    checkpoint, the consistency proof, and that each entry is inside the scope.

    Needs no database and no configuration. Exit 0 when every check holds, else 1, naming
    each failure."""
    key = trusted_key
    if key is not None and "+" not in key:
        path = Path(key)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--trusted-key: neither a vkey nor a readable key file: {exc}", 2)
    if not file.is_file():
        fail(f"no bundle at {file}", 2)
    try:
        report = verify_bundle(file, trusted_key=key, entry=entry)
    except LedgerError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(report.to_json())
        raise typer.Exit(0 if report.ok else 1)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    table = Table(title=f"Bundle {escape(file.name)}", show_lines=False)
    for column in ("", "check", "file", "detail"):
        table.add_column(column)
    for check in report.checks:
        mark = "[green]✓[/]" if check.ok else "[bold red]✗[/]"
        table.add_row(mark, check.name, escape(check.file or ""), escape(check.detail))
    out.print(table)
    if report.entry_proof is not None:
        out.print_json(data=report.entry_proof.to_json())
    if report.ok:
        count = report.manifest.get("entry_count")
        out.print(f"[green]✓[/] bundle verified: {count:,} entries, {len(report.checks)} checks")
        return
    failures: list[Any] = report.failures
    err.print(f"[bold red]✗ bundle verification FAILED[/] ({len(failures)} failed checks):")
    for check in failures:
        err.print(f"  {escape(check.file or 'bundle')}: {check.name}: {escape(check.detail)}")
    raise typer.Exit(1)
