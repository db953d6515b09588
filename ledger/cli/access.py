"""``pactledger keys …`` (API keys) and ``pactledger serve`` (the HTTP API under uvicorn)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger.access import ApiKeyRecord, Role, create_key, revoke_key
from ledger.log.entry import utc_now
from ledger.store.engine import make_engine
from ledger.store.keys import SqlKeyStore

from .common import JsonFlag, load_settings, out, print_json, run_action

keys_app = typer.Typer(
    help=(
        "API keys for the HTTP API: a role (admin, ingest, auditor, viewer) and the tenants it "
        "may touch. Clients send them as 'Authorization: Bearer <key>'."
    )
)


def _store() -> SqlKeyStore:
    return SqlKeyStore(make_engine(load_settings().database_url))


def _row(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "role": record.role.value,
        "tenants": "*" if record.all_tenants else list(record.tenants),
        "name": record.name,
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="What the key may do.", case_sensitive=False)],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="A tenant the key may touch (repeat).")
    ] = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="Every tenant, present and future.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Who or what holds the key.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key. The key is printed once and stored only as a hash: keep it now.

    ingest appends for its tenants; viewer reads its tenants; auditor reads, mirrors and
    exports; admin does everything, including managing keys and policies.
    """
    token, record = run_action(
        lambda: create_key(
            _store(),
            role=role,
            tenants=tenant or [],
            all_tenants=all_tenants,
            name=name,
            now=utc_now(),
        )
    )
    if as_json:
        print_json({"key": token, **_row(record)})
        return
    scope = "all tenants" if record.all_tenants else ", ".join(record.tenants)
    out.print(f"[green]✓[/] {record.role.value} key [bold]{record.key_id}[/] for {scope}")
    out.print(token, markup=False)
    out.print("[yellow]This is the only time the key is shown; it is stored hashed.[/]")


@keys_app.command("list")
def keys_list(as_json: JsonFlag = False) -> None:
    """Every API key (never the secrets), revoked ones included."""
    rows = [_row(r) for r in run_action(lambda: _store().list_keys())]
    if as_json:
        print_json({"keys": rows})
        return
    table = Table(show_edge=False)
    for column in ("key id", "role", "tenants", "name", "created", "revoked"):
        table.add_column(column)
    for row in rows:
        tenants = row["tenants"] if row["tenants"] == "*" else ", ".join(row["tenants"])
        table.add_row(
            row["key_id"], row["role"], tenants, row["name"] or "",
            row["created_at"][:19], (row["revoked_at"] or "")[:19],
        )  # fmt: skip
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (12 hex digits, from `keys list`).")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key: every request with it is refused from now on (401)."""
    record = run_action(lambda: revoke_key(_store(), key_id, now=utc_now()))
    if as_json:
        print_json(_row(record))
        return
    out.print(f"[green]✓[/] key {record.key_id} revoked at {record.revoked_at}")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request line (costs CPU on busy ingest; off by default).",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the dashboard (/ui/) with uvicorn.

    Uses the same PACTLEDGER_* settings as the CLI; run `pactledger init` first and create
    keys with `pactledger keys create`.
    """
    import secrets

    import uvicorn

    # One session secret for every worker process (each would draw its own otherwise, and a
    # dashboard cookie sealed by one would be refused by the others).
    os.environ.setdefault("PACTLEDGER_SESSION_SECRET", secrets.token_urlsafe(32))
    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers,
        log_level="info", access_log=access_log, proxy_headers=False,
    )  # fmt: skip
