"""The demo's report: what a compliance or FinOps lead wants to read, as Rich tables, and the
PNG charts of ``--plot``.

Pure presentation of the figures :func:`ledger.demo.run.run_demo` returns (the same dict is
the ``--json`` output); nothing here reads the ledger.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table


def print_report(console: Console, figures: dict[str, Any]) -> None:
    console.print(_summary(figures))
    console.print(_violations(figures))
    console.print(_chargeback(figures))
    console.print(_tranches(figures))
    ledger = figures["ledger"]
    console.print("Latest signed checkpoint (C2SP tlog-checkpoint):")
    console.print(ledger["checkpoint"], markup=False, highlight=False)
    console.print(f"Verifier key: {ledger['vkey']}")
    console.print(
        f"The demo ledger is kept at {figures['database']}. Point the other commands at it "
        f"with `source {figures['out_dir']}/pactledger.env`, then try the README's walkthrough "
        "(pactledger verify, provenance, audit residency, chargeback, reconcile, export, "
        "verify-bundle)."
    )


def _summary(figures: dict[str, Any]) -> Panel:
    ledger, scenario = figures["ledger"], figures["scenario"]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row(
        "scenario",
        f"{scenario['requests']:,} requests over {scenario['days']} days "
        f"({scenario['from'][:10]} → {scenario['to'][:10]}), seed {scenario['seed']}",
    )
    table.add_row(
        "ledger",
        f"{ledger['entries']:,} entries, {ledger['checkpoints']} signed checkpoints, "
        f"{ledger['policies_published']} policies published",
    )
    table.add_row("merkle root", ledger["root_hash"])
    verify = figures.get("verify", {})
    table.add_row(
        "verify",
        "[green]✓ intact[/]: every leaf, chain link, Merkle node and checkpoint recomputed"
        + (f" ({verify['entries_per_s']:,} entries/s)" if verify.get("entries_per_s") else ""),
    )
    replay = figures.get("replay")
    if replay:
        table.add_row(
            "decisions",
            f"[green]{replay['identical']:,} of {replay['decisions']:,}[/] recorded residency "
            "decisions re-evaluate identically from the policy texts in the ledger",
        )
    tamper = figures.get("tamper")
    if tamper:
        table.add_row(
            "tamper test",
            f"[green]caught[/]: a cost edited in a copy of the database → {tamper['kind']} at "
            f"seq {tamper['seq']}",
        )
    residency = figures["residency"]["summary"]
    table.add_row("residency", ", ".join(f"{status} {n:,}" for status, n in residency.items() if n))
    erasure = figures["erasure"]
    erased = erasure["erased"] or erasure["already"]
    table.add_row(
        "erasure",
        f"data subject's key destroyed in {len(erased)} tenant(s), recorded at seq "
        + ", ".join(str(e["seq"]) for e in erased)
        + f"; {scenario['planted']['erased_subject_requests']} requests now read \\[erased]",
    )
    bundle = figures["bundle"]
    mark = "[green]✓ verified offline[/]" if bundle["verified"] else "[red]✗ FAILED[/]"
    table.add_row(
        "bundle",
        f"{bundle['path']} ({bundle['tenant']}: {bundle['entries']:,} entries, "
        f"{bundle['bytes'] / 1e6:.1f} MB) {mark}, {bundle['checks']} checks",
    )
    seconds = figures["seconds"]
    table.add_row(
        "time",
        f"{seconds['total']:.0f} s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "total"),
    )
    return Panel(table, title="pactledger demo", expand=False)


def _violations(figures: dict[str, Any]) -> Table:
    rows = figures["residency"]["violations"]
    table = Table(title=f"Residency violations ({len(rows)})", title_justify="left")
    table.add_column("request", no_wrap=True)
    table.add_column("tenant", no_wrap=True)
    table.add_column("status")
    table.add_column("decided → served")
    for row in rows:
        table.add_row(
            row["request_id"],
            row["tenant"],
            row["status"],
            f"{row['decided'] or 'denied'} → {row['served']}",
        )
    return table


def _chargeback(figures: dict[str, Any]) -> Group:
    parts = []
    for key, label in (("by_business_unit", "business_unit"), ("by_model", "model")):
        table = Table(title=f"Chargeback by {label.replace('_', ' ')}", title_justify="left")
        table.add_column(label.replace("_", " "))
        table.add_column("requests", justify="right")
        table.add_column("cost", justify="right")
        for total in figures["chargeback"][key]:
            table.add_row(
                total[label],
                f"{total.get('requests', 0):,}",
                f"{Decimal(total['cost']):,.2f} {total['currency']}",
            )
        parts.append(table)
    return Group(*parts)


def _tranches(figures: dict[str, Any]) -> Table:
    table = Table(
        title="Capacity tranches: best benchmark ÷ the estimator's figure, SLA verdict, credit",
        title_justify="left",
    )
    table.add_column("tranche", no_wrap=True)
    for column in ("racks", "delay", "ratio", "verdict", "credit"):
        table.add_column(column, no_wrap=True)
    for t in figures["tranches"]:
        credit = t["credit"]
        table.add_row(
            t["tranche_id"].removeprefix("t-"),
            f"{t['racks_delivered'] or 0}/{t['racks']}",
            f"{float(t['max_delay_days']):g} d" if t.get("max_delay_days") else "—",
            f"{Decimal(t['ratio']):.2f}" if t["ratio"] else "—",
            t["verdict"],
            f"${Decimal(credit['credit_usd']):,.0f}" if credit else "—",
        )
    return table


def write_plots(figures: dict[str, Any], directory: Path) -> list[Path]:
    """Two PNG charts: chargeback by business unit, estimated vs observed throughput per
    tranche. Returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    units = figures["chargeback"]["by_business_unit"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.barh([u["business_unit"] for u in units], [float(u["cost"]) for u in units])
    ax.invert_yaxis()
    ax.set_xlabel(f"cost ({units[0]['currency'] if units else 'USD'})")
    ax.set_title("Chargeback by business unit")
    fig.tight_layout()
    chargeback = directory / "chargeback-by-business-unit.png"
    fig.savefig(chargeback, dpi=120)
    plt.close(fig)

    tranches = [t for t in figures["tranches"] if t["estimated_tokens_per_s_per_gpu"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = range(len(tranches))
    width = 0.38
    ax.bar(
        [i - width / 2 for i in x],
        [float(t["estimated_tokens_per_s_per_gpu"]) for t in tranches],
        width,
        label="estimated (roofline, MLPerf-calibrated)",
    )
    ax.bar(
        [i + width / 2 for i in x],
        [float(t["measured_tokens_per_s_per_gpu"]) for t in tranches],
        width,
        label="measured (best benchmark)",
    )
    ax.set_xticks(list(x), [t["tranche_id"].removeprefix("t-") for t in tranches], fontsize=7)
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title("Estimated vs observed throughput per tranche")
    ax.legend(loc="lower center")
    fig.tight_layout()
    throughput = directory / "throughput-by-tranche.png"
    fig.savefig(throughput, dpi=120)
    plt.close(fig)
    return [chargeback, throughput]
