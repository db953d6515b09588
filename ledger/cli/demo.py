"""``pactledger demo``: the command-line face of :mod:`ledger.demo` (options, progress, report)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ledger.access import Role, create_key
from ledger.demo.report import print_report, write_plots
from ledger.demo.run import DemoOptions, demo_settings, run_demo
from ledger.log.entry import utc_now
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.keys import SqlKeyStore

from .common import JsonFlag, fail, out, print_json, run_action

VIEWER_TENANT = "contoso-eu"  # the demo's EU tenant: its viewer sees nothing of the others


def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the demo's ledger, keys and bundle.")
    ] = Path("demo-out"),
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="An EMPTY database for the demo's ledger, e.g. postgresql://localhost/demo "
            "(default: SQLite in --out). With PACTLEDGER_BROKER_URL set, running "
            "`pactledger worker` processes do the projecting.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the scenario (same seed, same ledger).")] = 7,
    requests: Annotated[
        int, typer.Option(min=10, max=2_000_000, help="Requests in the scenario.")
    ] = 50_000,
    days: Annotated[int, typer.Option(min=2, max=366, help="Days the scenario spans.")] = 14,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write PNG charts here (chargeback, throughput per tranche)."),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then serve the dashboard (and the API) on the demo's ledger until Ctrl-C, "
            "with an auditor and a one-tenant viewer key to sign in with.",
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Port of --serve (on 127.0.0.1).")] = 8000,
    as_json: JsonFlag = False,
) -> None:
    """Run the whole mission end to end on a realistic enterprise scenario.

    Four tenants run Claude Opus, Sonnet and Haiku on Azure, AWS and Google Cloud, on reserved
    GB200/GB300 NVL72 capacity bought in stages. The demo publishes policies and price lists,
    records every residency decision and routed inference, projects the views, signs
    checkpoints, reconciles the racks against the estimator (and records the credit of the
    under-delivering tranche), erases a data subject, exports the EU tenant's regulator bundle
    and verifies it offline — then reports what a compliance or FinOps lead wants to see.
    The ledger is left in --out for the commands of the README's walkthrough.

    Needs no server and no configuration (SQLite, in-process projectors).
    """
    console = Console(stderr=True) if as_json else out
    options = DemoOptions(
        out_dir=out_dir,
        db_url=db,
        seed=seed,
        requests=requests,
        days=days,
        broker_url=os.environ.get("PACTLEDGER_BROKER_URL") or None,
    )
    if (
        db is not None
        and db.startswith("sqlite")
        and Path(db.removeprefix("sqlite:///")).resolve().is_relative_to(out_dir.resolve())
    ):
        fail("--db: give a database outside --out (the demo clears --out first)", 2)
    figures = run_action(lambda: run_demo(options, console))
    if plot is not None:
        figures["plots"] = [str(p) for p in write_plots(figures, plot)]
    if as_json:
        print_json(figures)
    else:
        print_report(console, figures)
        for path in figures.get("plots", []):
            console.print(f"chart: {path}")
    if serve:
        serve_dashboard(demo_settings(options), port, console)


def serve_dashboard(settings: Settings, port: int, console: Console) -> None:
    """Serve ``pactledger serve`` on the demo's ledger, printing where and how to sign in."""
    import uvicorn

    engine = make_engine(settings.database_url)
    keys = SqlKeyStore(engine)
    now = utc_now()
    auditor, _ = create_key(
        keys, role=Role.AUDITOR, tenants=[], all_tenants=True, name="demo auditor", now=now
    )
    viewer, _ = create_key(
        keys,
        role=Role.VIEWER,
        tenants=[VIEWER_TENANT],
        all_tenants=False,
        name=f"demo viewer of {VIEWER_TENANT}",
        now=now,
    )
    engine.dispose()
    os.environ.update(
        PACTLEDGER_DATABASE_URL=settings.database_url,
        PACTLEDGER_SIGNING_KEY=str(settings.signing_key),
        PACTLEDGER_KEK=str(settings.kek),
        PACTLEDGER_ORIGIN=settings.origin,
    )
    console.print(
        f"\n[bold]Dashboard:[/] http://127.0.0.1:{port}/ui/  (API docs: /docs; Ctrl-C stops)\n"
        f"  sign in as an auditor of every tenant: [cyan]{auditor}[/]\n"
        f"  or as a viewer of {VIEWER_TENANT} only:   [cyan]{viewer}[/]",
        highlight=False,
    )
    uvicorn.run(
        "api.app:create_app", factory=True, host="127.0.0.1", port=port, log_level="warning"
    )
