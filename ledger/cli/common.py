"""What every ``pactledger`` command shares: consoles, settings, the ledger, error exits.

Errors go to stderr as one sentence that says what to do, with exit status 1; data goes to
stdout, as JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ledger.app.keys import load_signer
from ledger.app.service import Ledger
from ledger.compose import projection_trigger, vault_for
from ledger.errors import LedgerError
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def load_settings() -> Settings:
    return Settings()


def open_ledger(settings: Settings, *, need_signer: bool = False) -> Ledger:
    """The ledger of ``settings``; after each append it triggers the projectors (in this
    process without a broker, so the next command sees the views)."""
    engine = make_engine(settings.database_url)
    store = SqlLogStore(engine)
    signer = None
    if need_signer or settings.signing_key.exists():
        signer = load_signer(settings.signing_key, store.head().origin)
    return Ledger(
        store=store,
        signer=signer,
        after_append=projection_trigger(settings, engine, mode="inline"),
        vault=vault_for(settings, engine),
    )


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def run_action(action: Any) -> Any:
    try:
        return action()
    except LedgerError as exc:
        fail(str(exc))
    except OSError as exc:  # a path argument that cannot be read or written: no traceback
        where = f"{exc.filename}: " if exc.filename is not None else ""
        fail(f"{where}{exc.strerror or exc}")
