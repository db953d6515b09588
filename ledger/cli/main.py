"""The ``pactledger`` command line (Typer + Rich): the composition root of the CLI.

Every command that prints data takes ``--json``; errors go to stderr as one sentence that says
what to do, with exit status 1 (2 for usage errors). Settings come from ``PACTLEDGER_*``
environment variables; nothing is read at import time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.app.keys import create_kek, create_signing_key, load_kek, load_signer
from ledger.app.personal_data import reveal
from ledger.app.verification import verify_and_record
from ledger.errors import ConfigurationError, LedgerError, TamperedLogError
from ledger.events import default_catalogue
from ledger.integrity.note import NoteVerifier
from ledger.log.audit import AuditReport
from ledger.settings import Settings
from ledger.store.engine import make_engine, migrate
from ledger.store.sql import SqlLogStore
from ledger.store.verifications import SqlVerificationLog

from .access import keys_app, serve
from .bundle import export, verify_bundle_command
from .common import JsonFlag, err, fail, load_settings, open_ledger, out, print_json, run_action
from .demo import demo
from .estimate import estimate
from .governance import audit_app, decide, policy_app
from .ingest import read_jsonl
from .privacy import erase
from .provenance import provenance
from .reconcile import reconcile
from .views import chargeback, project_app, tranches
from .workers import beat, worker

app = typer.Typer(
    name="pactledger",
    help=(
        "A verifiable ledger of AI inference governance events.\n\n"
        "Entries are appended to a hash-chained RFC 6962 Merkle log and sealed by signed C2SP "
        "checkpoints, so anyone holding a checkpoint can prove that nothing was changed, "
        "removed or reordered.\n\n"
        "Configuration: PACTLEDGER_DATABASE_URL (default sqlite:///pactledger.db), "
        "PACTLEDGER_SIGNING_KEY (default pactledger-signing-key.pem), PACTLEDGER_ORIGIN.\n\n"
        "Start with: pactledger init && pactledger policy publish && pactledger append "
        "events.jsonl && pactledger checkpoint; or pactledger keys create … and pactledger "
        "serve for the HTTP API. See the whole system at work: pactledger demo."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
prove_app = typer.Typer(help="Print Merkle proofs (DESIGN §2.4 JSON) for auditors and mirrors.")
events_app = typer.Typer(help="The governance event catalogue: types and their JSON Schemas.")
key_app = typer.Typer(help="The checkpoint signing key.")
app.add_typer(prove_app, name="prove")
app.add_typer(key_app, name="key")
app.add_typer(events_app, name="events")


@app.command()
def init(as_json: JsonFlag = False) -> None:
    """Create or upgrade the database schema and create the signing key and the
    key-encryption key (personal data) if they are missing.

    Safe to run again: existing entries and keys are kept.
    """
    settings = load_settings()

    def action() -> dict[str, Any]:
        engine = make_engine(settings.database_url)
        migrate(engine)
        head = SqlLogStore(engine).initialize(settings.origin)
        created = create_signing_key(settings.signing_key)
        signer = load_signer(settings.signing_key, head.origin)
        kek_created = create_kek(settings.kek)
        load_kek(settings.kek)  # refuses a key file others can read
        return {
            "database": engine.url.render_as_string(hide_password=True),
            "origin": head.origin,
            "size": head.size,
            "signing_key": str(settings.signing_key),
            "key_created": created,
            "vkey": signer.verifier.vkey,
            "kek": str(settings.kek),
            "kek_created": kek_created,
        }

    result = run_action(action)
    if as_json:
        print_json(result)
        return
    out.print(f"[green]✓[/] ledger [bold]{result['origin']}[/] ready in {result['database']}")
    out.print(f"  entries: {result['size']}")
    made = "created" if result["key_created"] else "kept"
    out.print(f"  signing key {made}: {result['signing_key']}")
    out.print(f"  verifier key: {result['vkey']}")
    made = "created" if result["kek_created"] else "kept"
    out.print(f"  key-encryption key for personal data {made}: {result['kek']}")


@app.command()
def append(
    file: Annotated[
        Path, typer.Argument(help="JSON Lines file, one entry per line ('-' for stdin).")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Append every entry of a JSON Lines file, all or nothing.

    Each line is an object with "type", "stream" (kind:id), "tenant" and "payload" (an object),
    and optionally "occurred_at" (RFC 3339 with offset), "schema_version", "idempotency_key" and
    "expected_version". Stream ids and idempotency keys are printable ASCII without spaces,
    quotes or backslashes; money goes in strings ("0.0042"), never floats. A bad line is
    reported with its line number and field, and nothing is appended.
    Retrying a file whose lines carry idempotency keys appends nothing twice.
    """
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    inputs, lines = run_action(lambda: read_jsonl(file, progress=not as_json))
    if not inputs:
        fail(f"{file} holds no entries")
    try:
        receipts = ledger.append(inputs)
    except LedgerError as exc:
        index = getattr(exc, "index", None)
        where = f"line {lines[index]}: " if index is not None else ""
        fail(f"{where}{exc}; nothing was appended")
    fresh = [r for r in receipts if not r.duplicate]
    summary = {
        "appended": len(fresh),
        "duplicates": len(receipts) - len(fresh),
        "first_seq": fresh[0].seq if fresh else None,
        "last_seq": fresh[-1].seq if fresh else None,
        "tree_size": receipts[-1].tree_size,
    }
    if as_json:
        print_json(summary)
        return
    if fresh:
        out.print(
            f"[green]✓[/] appended {len(fresh)} entries (seq {fresh[0].seq}–{fresh[-1].seq}); "
            f"tree size {summary['tree_size']}"
        )
    if summary["duplicates"]:
        out.print(f"  {summary['duplicates']} lines were already in the log (idempotent retry)")


@app.command()
def head(as_json: JsonFlag = False) -> None:
    """Show the log's size, Merkle root, chain head and latest checkpoint."""
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    current = run_action(ledger.head)
    latest = run_action(ledger.latest_checkpoint)
    data = {
        "origin": current.origin,
        "size": current.size,
        "root_hash": current.root_hash.hex(),
        "chain_head": current.chain_head.hex(),
        "latest_checkpoint": None
        if latest is None
        else {
            "tree_size": latest.tree_size,
            "root_hash": latest.root_hash.hex(),
            "created_at": latest.created_at.isoformat(),
            "behind_by": current.size - latest.tree_size,
        },
    }
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("origin", current.origin)
    table.add_row("size", f"{current.size:,} entries")
    table.add_row("merkle root", current.root_hash.hex())
    table.add_row("chain head", current.chain_head.hex())
    if latest is None:
        table.add_row("checkpoint", "[yellow]none yet[/] — run `pactledger checkpoint`")
    else:
        behind = current.size - latest.tree_size
        lag = "up to date" if behind == 0 else f"[yellow]{behind:,} entries behind[/]"
        table.add_row(
            "checkpoint", f"size {latest.tree_size:,} at {latest.created_at:%F %T}Z, {lag}"
        )
    out.print(table)


@app.command()
def checkpoint(as_json: JsonFlag = False) -> None:
    """Sign a checkpoint of the current tree and store it; print the note text exactly.

    The note is a C2SP signed tlog-checkpoint: publish it, or hand it to an auditor, so the log
    can later be verified against it with `pactledger verify --against NOTE`. Signing again
    at the same size returns the stored note (Ed25519 is deterministic: the same bytes).
    """
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings, need_signer=True))
    record = run_action(ledger.checkpoint)
    if as_json:
        print_json(
            {
                "tree_size": record.tree_size,
                "root_hash": record.root_hash.hex(),
                "key_name": record.key_name,
                "key_id": record.key_id.hex(),
                "created_at": record.created_at.isoformat(),
                "note": record.note,
            }
        )
        return
    sys.stdout.write(record.note)


@key_app.command("show")
def key_show(as_json: JsonFlag = False) -> None:
    """Print the verifier key (C2SP vkey: name+keyid+base64 key) that checks checkpoints."""
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings, need_signer=True))
    assert ledger.signer is not None
    verifier = ledger.signer.verifier
    if as_json:
        print_json({"vkey": verifier.vkey, "name": verifier.name, "key_id": verifier.key_id.hex()})
        return
    sys.stdout.write(verifier.vkey + "\n")


@app.command()
def show(
    seq: Annotated[int, typer.Argument(help="Sequence number of the entry (0-based).")],
    canonical: Annotated[
        bool,
        typer.Option(
            "--canonical", help="Print exactly the stored bytes that were hashed, nothing else."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show one entry with its hashes, or its exact canonical bytes."""
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    entry = run_action(lambda: ledger.entry(seq))
    if canonical:
        sys.stdout.buffer.write(entry.entry_bytes)
        sys.stdout.flush()
        return
    data: dict[str, Any] = {
        "entry": json.loads(entry.entry_bytes),
        "leaf_hash": entry.leaf_hash.hex(),
        "prev_hash": entry.prev_hash.hex(),
        "chain_hash": entry.chain_hash.hex(),
    }
    personal = run_action(lambda: reveal(ledger, [entry])[0])
    if personal:
        data["personal"] = personal  # decrypted here; the stored entry holds ciphertext only
    if as_json:
        print_json(data)
        return
    out.print_json(data=data)


@prove_app.command("inclusion")
def prove_inclusion(
    seq: Annotated[int, typer.Argument(help="The entry to prove.")],
    size: Annotated[
        int | None, typer.Option(help="Tree size to prove against (default: the current size).")
    ] = None,
    tlog_proof: Annotated[
        bool,
        typer.Option(
            "--tlog-proof",
            help="Print a C2SP tlog-proof (index, audit path and the newest signed checkpoint) "
            "that verifies offline.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Prove that entry SEQ is in the tree of SIZE leaves (RFC 9162 audit path)."""
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    if tlog_proof:
        if size is not None:
            fail("--tlog-proof proves against the newest signed checkpoint; drop --size")
        sys.stdout.write(run_action(lambda: ledger.tlog_proof(seq)).text())
        return
    proof = run_action(lambda: ledger.prove_inclusion(seq, size=size))
    if as_json:
        print_json(proof.to_json())
        return
    out.print_json(data=proof.to_json())


@prove_app.command("consistency")
def prove_consistency(
    first: Annotated[int, typer.Argument(help="The older tree size M.")],
    second: Annotated[int, typer.Argument(help="The newer tree size N (M <= N).")],
    as_json: JsonFlag = False,
) -> None:
    """Prove that the tree of size N extends the tree of size M (RFC 9162 consistency proof)."""
    settings = load_settings()
    ledger = run_action(lambda: open_ledger(settings))
    proof = run_action(lambda: ledger.prove_consistency(first, second))
    if as_json:
        print_json(proof.to_json())
        return
    out.print_json(data=proof.to_json())


@app.command()
def verify(
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="A signed checkpoint note kept outside the database (repeatable).",
        ),
    ] = None,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key", help="Verifier key (vkey) to trust instead of the local signing key."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute the whole log from its bytes and check every hash, link, node and checkpoint.

    Streams with constant memory. Exit 0 when the log is intact; exit 1 naming the first bad seq
    and what is wrong: changed, missing, reordered, truncated (below a signed checkpoint),
    bad-checkpoint (signature), inconsistent-checkpoint, bad-node or bad-head. Use --against
    with checkpoints you kept yourself: whoever can delete rows can delete stored checkpoints.
    """
    try:
        report = _verify(
            load_settings(), against or [], trusted_key or [], show_progress=not as_json
        )
    except TamperedLogError as exc:
        if as_json:
            print_json({"ok": False, "seq": exc.seq, "kind": exc.kind, "error": str(exc)})
            raise typer.Exit(1) from None
        where = f" at seq {exc.seq}" if exc.seq is not None else ""
        fail(f"log verification FAILED ({exc.kind}{where}): {exc}")
    except LedgerError as exc:
        if as_json:
            print_json({"ok": False, "seq": None, "kind": "error", "error": str(exc)})
            raise typer.Exit(1) from None
        fail(str(exc))
    if as_json:
        print_json(report.to_json())
        return
    out.print(
        f"[green]✓[/] log intact: {report.size:,} entries, root {report.root_hash.hex()}, "
        f"{report.checkpoints_checked} checkpoint(s) and {report.nodes_checked:,} Merkle nodes "
        "checked"
    )


def _verify(
    settings: Settings, against: list[Path], trusted_keys: list[str], *, show_progress: bool
) -> AuditReport:
    ledger = open_ledger(settings)
    assert isinstance(ledger.store, SqlLogStore)
    trusted = [NoteVerifier.from_vkey(key) for key in trusted_keys]
    notes = []
    for path in against:
        try:
            notes.append((f"checkpoint {path}", path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read checkpoint note {path}: {exc}") from None
    size = ledger.head().size
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not show_progress) as bar:
        task = bar.add_task("verifying", total=size)
        recorded = verify_and_record(
            ledger,
            SqlVerificationLog(ledger.store.engine),
            "cli",
            external_notes=notes,
            trusted=trusted,
            progress=lambda done: (
                bar.update(task, completed=done) if done % 1000 == 0 or done == size else None
            ),
        )
    if recorded.record_failed:
        err.print(f"[yellow]note:[/] this run could not be recorded: {recorded.record_failed}")
    return recorded.report


@events_app.command("list")
def events_list(as_json: JsonFlag = False) -> None:
    """List every event type with its current schema version and what it records."""
    rows = default_catalogue().describe()
    if as_json:
        print_json(rows)
        return
    table = Table("type", "version", "records")
    for row in rows:
        table.add_row(row["type"], str(row["schema_version"]), row["summary"])
    out.print(table)


@events_app.command("schema")
def events_schema(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="e.g. InferenceRouted")],
    version: Annotated[
        int | None, typer.Option(help="A schema version (default: the current one).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the JSON Schema of TYPE's payload, as `append` takes it, to generate or validate
    entries. Decimals (money, rates) are strings; times are RFC 3339 with an offset."""
    schema = run_action(lambda: default_catalogue().json_schema(event_type, version))
    if as_json:
        print_json(schema)
        return
    out.print_json(data=schema)


app.command("demo")(demo)


# Registered last so that `pactledger --help` lists the log's commands first.
app.add_typer(policy_app, name="policy")
app.command("decide")(decide)
app.add_typer(audit_app, name="audit")
app.add_typer(project_app, name="project")
app.command("chargeback")(chargeback)
app.command("tranches")(tranches)
app.command("estimate")(estimate)
app.add_typer(keys_app, name="keys")
app.command("erase")(erase)
app.command("serve")(serve)
app.command("worker")(worker)
app.command("beat")(beat)
app.command("reconcile")(reconcile)
app.command("provenance")(provenance)
app.command("export")(export)
app.command("verify-bundle")(verify_bundle_command)
