"""``pactledger reconcile``: capacity tranches' observed throughput against the estimator.

A thin shell over :func:`ledger.app.reconcile.reconcile` (see its docstring for the rules):
usage (utilisation, effective $/Mtok) and benchmarks (the SLA test, over-reporting) per
tranche and period, and a proposed ``TrancheCreditAssessed`` for a tranche below its SLA,
appended with ``--record`` (once: a rerun appends nothing).

Exit status: 0 with a report; 1 when the ledger cannot give one (an unknown tranche, a
projector behind is only a note); 2 for a usage error (a bad time or band, ``--record``
without ``--to``, which fixes the period and so the credit's idempotency key).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger import compose
from ledger.app.projection import Projectors
from ledger.app.reconcile import DEFAULT_BAND, credit_entry
from ledger.app.reconcile import reconcile as reconcile_tranches
from ledger.log.entry import utc_now

from .common import JsonFlag, fail, load_settings, open_ledger, out, print_json, run_action
from .views import option_time, warn_if_behind


def reconcile(
    tranche: Annotated[
        str | None, typer.Option("--tranche", help="Only this tranche.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="Period start, ISO 8601 (default: the whole history)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Period end, ISO 8601 (default: now).")
    ] = None,
    band: Annotated[
        str,
        typer.Option(
            "--band", help="Allowed deviation of a benchmark from its estimate (fraction)."
        ),
    ] = str(DEFAULT_BAND),
    record: Annotated[
        bool,
        typer.Option(
            "--record", help="Append the proposed TrancheCreditAssessed entries (needs --to)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reconcile tranches: usage (utilisation) and benchmarks (SLA) against the estimator.

    Usage gives tokens served per GPU-hour in service, utilisation of the estimated capacity
    and the effective $/Mtok; benchmarks give measured capacity, the SLA test and
    over-reporting (a benchmark above the estimate by more than --band). Low utilisation is
    never under-delivery. A tranche below its SLA gets a proposed credit; --record appends it.
    """
    try:
        width = Decimal(band)
    except InvalidOperation:
        fail(f"--band: give a number (got '{band}')", 2)
    if not width.is_finite() or width < 0:
        fail(f"--band: give a finite number of at least 0 (got '{band}')", 2)
    start = option_time(since, "from")
    end = option_time(until, "to")
    if record and end is None:
        fail("--record needs --to: a fixed period end keeps a rerun from crediting twice", 2)
    settings = load_settings()
    projectors: Projectors = run_action(lambda: compose.open_projectors(settings))
    ledger = run_action(lambda: open_ledger(settings))
    reports: list[dict[str, Any]] = run_action(
        lambda: reconcile_tranches(
            projectors.views,
            ledger.store,
            start=start,
            end=end or utc_now(),
            tranche_id=tranche,
            band=width,
        )
    )
    if record:
        for report in reports:
            if report["credit"] is None or report["recorded_seq"] is not None:
                continue
            receipt = run_action(lambda r=report: ledger.append([credit_entry(r)]))[0]
            report["recorded_seq"] = receipt.seq
            report["recorded_now"] = not receipt.duplicate
    if as_json:
        print_json(reports)
        return
    warn_if_behind(projectors)
    for report in reports:
        out.print(_table(report))


def _table(report: dict[str, Any]) -> Table:
    period = f"{report['period_start'] or 'start'} → {report['period_end']}"
    table = Table(title=f"{report['tranche_id']} ({report['rack_family'] or '?'}) {period}")
    for column in ("source", "observed tok/s/GPU", "estimate", "ratio", "status", "details"):
        table.add_column(column)
    usage = report["usage"]
    table.add_row(
        "usage",
        usage["observed_tokens_per_s_per_gpu"] or "—",
        usage["estimated_tokens_per_s_per_gpu"] or "—",
        usage["utilisation"] or "—",
        usage["status"],
        f"{usage['output_tokens']:,} output tokens over {usage['gpu_hours']} GPU-h; "
        f"$/Mtok {usage['effective_usd_per_mtok'] or '—'} "
        f"(estimate {usage['estimated_usd_per_mtok'] or '—'})"
        + (f"; {usage['estimate_note']}" if usage["estimate_note"] else ""),
    )
    for bench in report["benchmarks"]:
        table.add_row(
            f"benchmark {bench['benchmark_id']} (seq {bench['seq']})",
            bench["measured_tokens_per_s_per_gpu"],
            bench["estimated_tokens_per_s_per_gpu"] or "—",
            bench["ratio"] or "—",
            bench["status"],
            f"{bench['model']} {bench['precision']} {bench['workload']} {bench['scenario']}"
            + (f"; {bench['estimate_note']}" if bench["estimate_note"] else ""),
        )
    credit = report["credit"]
    details = ""
    if credit is not None:
        details = (
            f"credit {credit['credit_usd']} USD (shortfall {credit['shortfall']}, "
            f"best {credit['observed_tokens_per_s_per_gpu']} < SLA "
            f"{credit['expected_tokens_per_s_per_gpu']})"
        )
        details += (
            f"; recorded at seq {report['recorded_seq']}"
            if report["recorded_seq"] is not None
            else "; proposed (append with --record)"
        )
    table.add_row("verdict", "", "", "", report["verdict"], details)
    return table
