"""``pactledger project …``, ``pactledger audit residency``, ``pactledger chargeback`` and
``pactledger tranches``: the projectors and the views they keep (docs/projectors.md)."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger import compose
from ledger.app import views as queries
from ledger.app.projection import PROJECTORS, Projectors
from ledger.log.entry import utc_now
from ledger.projections.chargeback import DIMENSIONS, MEASURES
from ledger.projections.compliance import VIOLATIONS
from ledger.projections.focus import write_focus_csv

from .common import JsonFlag, err, fail, load_settings, out, print_json, run_action
from .governance import audit_app

project_app = typer.Typer(
    help=(
        "The projectors that turn the log into views (residency compliance, chargeback, "
        "provenance index, capacity). Without PACTLEDGER_BROKER_URL they run in-process after "
        "each append; with it, `pactledger worker` runs them. See docs/projectors.md."
    )
)

Tenants = Annotated[
    list[str] | None,
    typer.Option("--tenant", help="Only this tenant (repeat for several).", show_default=False),
]


def _projectors() -> Projectors:
    settings = load_settings()
    projectors: Projectors = run_action(lambda: compose.open_projectors(settings))
    return projectors


def warn_if_behind(projectors: Projectors) -> None:
    behind = [s for s in run_action(projectors.status) if s.lag_entries or s.error]
    for status in behind:
        if status.error:
            err.print(
                f"[yellow]warning:[/] projector {status.name} stopped: {escape(status.error)}"
            )
        else:
            err.print(
                f"[yellow]note:[/] projector {status.name} is {status.lag_entries:,} entries "
                "behind the log (run `pactledger project run`, or start `pactledger worker`)"
            )


def option_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--{field}: not an ISO 8601 time, e.g. 2026-11-01T00:00:00Z (got '{value}')", 2)
    if moment.tzinfo is None:
        fail(f"--{field}: give a zone, e.g. 2026-11-01T00:00:00Z (got '{value}')", 2)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        fail(f"--{field}: outside the years 1-9999 once converted to UTC (got '{value}')", 2)
    return moment


# --- project ----------------------------------------------------------------------------------


@project_app.command("status")
def project_status(as_json: JsonFlag = False) -> None:
    """Where each projector is: position, lag and the error that stopped it, if any.

    Lag is given in entries and as the age of the oldest entry not yet projected."""
    projectors = _projectors()
    report = run_action(projectors.status)
    if as_json:
        print_json([s.to_json() for s in report])
        return
    table = Table(title="Projectors")
    for column in ("projector", "position", "lag (entries)", "lag (s)", "updated", "error"):
        table.add_column(column, justify="right" if "lag" in column else "left")
    for s in report:
        table.add_row(
            s.name,
            f"{s.position:,}",
            f"{s.lag_entries:,}",
            f"{s.lag_seconds:.1f}",
            s.updated_at.isoformat(timespec="seconds") if s.updated_at else "never",
            escape(s.error) if s.error else "",
        )
    out.print(table)


@project_app.command("run")
def project_run(
    names: Annotated[
        list[str] | None,
        typer.Argument(help=f"Projectors to run (default: all: {', '.join(PROJECTORS)})."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Catch projectors up now, in this process (what a worker does on each trigger)."""
    projectors = _projectors()
    for name in names or []:
        run_action(lambda name=name: projectors.projection(name))
    results = run_action(lambda: projectors.catch_up(names or None))
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    for r in results:
        state = "busy (another runner has it)" if r.busy else f"at seq {r.position:,}"
        out.print(f"{r.name}: projected {r.projected:,} entries, {state}")


@project_app.command("rebuild")
def project_rebuild(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(PROJECTORS)}.")],
    as_json: JsonFlag = False,
) -> None:
    """Project the whole log again into shadow tables, then swap them in atomically.

    Readers see the old view until the new one is complete. Use after a projection changed,
    or to check a view against the log."""
    projectors = _projectors()
    run_action(lambda: projectors.projection(name))
    with Progress(
        TextColumn(f"rebuild {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("rebuild", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = run_action(lambda: projectors.rebuild(name, progress=advance))
    if as_json:
        print_json(result.__dict__)
        return
    out.print(
        f"{name}: rebuilt from {result.projected:,} entries, swapped in at seq {result.position:,}"
    )


# --- audit residency --------------------------------------------------------------------------


@audit_app.command("residency")
def audit_residency(
    tenants: Tenants = None,
    since: Annotated[
        str | None, typer.Option("--from", help="Served (or decided) at or after, ISO 8601.")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="Before this time, ISO 8601.")] = None,
    violations_only: Annotated[
        bool,
        typer.Option(
            "--violations-only",
            help="Only violations: served outside the decided region, without a decision, or "
            "despite a denial.",
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Most rows to print (table only).")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Residency compliance per request: decided where, served where, compliant or not.

    From the `compliance` view: the decision (outcome, region, jurisdiction, policy
    versions), where the request was served, and the status."""
    projectors = _projectors()
    rows = run_action(
        lambda: queries.residency(
            projectors.views,
            tenants=tenants,
            since=option_time(since, "from"),
            until=option_time(until, "to"),
            violations_only=violations_only,
        )
    )
    if as_json:
        print_json({"summary": queries.residency_summary(rows), "requests": rows})
        return
    warn_if_behind(projectors)
    summary = queries.residency_summary(rows)
    out.print(
        "  ".join(f"{status}: {count:,}" for status, count in summary.items() if count)
        or "no requests in scope"
    )
    table = Table(title="Residency compliance" + (" — violations" if violations_only else ""))
    for column in ("request", "tenant", "status", "decision", "decided", "served", "policies"):
        table.add_column(column)
    for row in rows[:limit]:
        decided = (
            f"{row['decided_provider']}/{row['decided_region']} ({row['decided_jurisdiction']})"
            if row["decided_region"]
            else "—"
        )
        served = (
            f"{row['served_locations']} ({row['served_jurisdiction']})"
            if row["served_count"]
            else "—"
        )
        style = "red" if row["status"] in VIOLATIONS else ""
        table.add_row(
            row["request_id"],
            row["tenant"],
            f"[{style}]{row['status']}[/]" if style else row["status"],
            row["outcome"] or "none",
            decided,
            served,
            row["policy_versions"] or "",
        )
    out.print(table)
    if len(rows) > limit:
        out.print(f"… {len(rows) - limit:,} more (--limit, or --json for all)")


# --- chargeback -------------------------------------------------------------------------------


def chargeback(
    by: Annotated[
        str,
        typer.Option(help=f"Group by one of: {', '.join(queries.CHARGEBACK_GROUPS)}."),
    ] = "business_unit",
    month: Annotated[
        str | None, typer.Option(help="Only this month, YYYY-MM (UTC days).", show_default=False)
    ] = None,
    tenants: Tenants = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (grouped totals), csv (the view's daily rows) or focus (FinOps FOCUS "
            "1.2 CSV of the daily rows).",
        ),
    ] = "table",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write the CSV here instead of stdout.", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Who pays what: exact costs and tokens per business unit, model, provider, region ….

    From the `chargeback` view, priced with the price list in force for each request;
    `--format focus` writes FinOps FOCUS 1.2 CSV."""
    if output_format not in ("table", "csv", "focus"):
        fail(f"--format: choose table, csv or focus (got '{output_format}')", 2)
    run_action(lambda: queries.check_group(by))  # checked whatever the format
    projectors = _projectors()
    views = projectors.views
    if output_format == "table":
        totals = run_action(lambda: queries.chargeback(views, by=by, month=month, tenants=tenants))
        if as_json:
            print_json(totals)
            return
        warn_if_behind(projectors)
        _print_totals(totals, by, month)
        return
    rows = run_action(lambda: queries.chargeback_rows(views, month=month, tenants=tenants))
    buffer = io.StringIO(newline="")
    if output_format == "focus":
        count = write_focus_csv(rows, buffer)
    else:
        writer = csv.DictWriter(buffer, fieldnames=[*DIMENSIONS, *MEASURES], lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        count = len(rows)
    if out_file is None:
        sys.stdout.write(buffer.getvalue())
    else:
        temporary = out_file.with_name(out_file.name + ".part")
        temporary.write_text(buffer.getvalue(), newline="")
        temporary.replace(out_file)
        err.print(f"wrote {count:,} rows to {out_file}")


def _print_totals(totals: list[dict[str, Any]], by: str, month: str | None) -> None:
    table = Table(title=f"Chargeback by {by}" + (f", {month}" if month else ""))
    for column in (by, "requests", "input tokens", "output tokens", "cached", "cost", "prices"):
        table.add_column(column, justify="left" if column in (by, "prices") else "right")
    grand: dict[str, Decimal] = {}
    for t in totals:
        table.add_row(
            t[by],
            f"{t['requests']:,}",
            f"{t['input_tokens']:,}",
            f"{t['output_tokens']:,}",
            f"{t['cached_tokens']:,}",
            f"{Decimal(t['cost']):,.2f} {t['currency']}",
            ", ".join(t["price_list_versions"]),
        )
        grand[t["currency"]] = grand.get(t["currency"], Decimal(0)) + Decimal(t["cost"])
    out.print(table)
    if grand:
        out.print(
            "total: " + ", ".join(f"{amount:,.2f} {currency}" for currency, amount in grand.items())
        )


# --- tranches ---------------------------------------------------------------------------------


def tranches(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Consumption up to this time, ISO 8601 (default: now)."),
    ] = None,
    tenants: Tenants = None,
    as_json: JsonFlag = False,
) -> None:
    """Capacity tranches: delivered, delayed, credited, consumed against commitment.

    From the `capacity` view: racks contracted, delivered and retired, delays, credits,
    consumption against commitment (GPU-hours in service x price per GPU-hour / committed
    USD) and the throughput their racks delivered."""
    projectors = _projectors()
    moment = option_time(as_of, "as-of") or utc_now()
    rows = run_action(lambda: queries.tranches(projectors.views, as_of=moment, tenants=tenants))
    if as_json:
        print_json(rows)
        return
    warn_if_behind(projectors)
    table = Table(title=f"Capacity tranches as of {moment.isoformat(timespec='seconds')}")
    for column in (
        "tranche",
        "where",
        "racks (contracted / delivered / retired)",
        "status",
        "delays",
        "credits",
        "consumption",
        "tokens/s/GPU",
    ):
        table.add_column(column)
    for t in rows:
        table.add_row(
            t["tranche_id"],
            f"{t['rack_family'] or '?'} {t['provider'] or '?'}/{t['region'] or '?'}",
            f"{t['racks_contracted'] or '?'} / {t['racks_delivered']} / {t['racks_retired']}",
            t["status"],
            f"{t['delays']} (max {t['max_delay_days']} d)" if t["delays"] else "0",
            f"{Decimal(t['credits_usd']):,.2f} USD" if t["credits"] else "—",
            f"{Decimal(t['consumption']):.1%}" if t["consumption"] is not None else "—",
            t["observed_tokens_per_s_per_gpu"] or "—",
        )
    out.print(table)
