"""``pactledger policy …``, ``pactledger decide`` and ``pactledger audit …``: residency policies
checked, published and applied, and recorded decisions re-checked from the ledger alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ledger.app.governance import decide as decide_request
from ledger.app.governance import model_tier_for, publish_policies, replay_decisions
from ledger.app.published import read_policies
from ledger.errors import ValidationError
from ledger.log.entry import utc_now
from ledger.log.ids import uuid7_batch
from ledger.policy import Facts, PolicySet, load_policy_set, shipped_policy_dir
from ledger.policy.evaluate import TRANSFER_BASES

from .common import JsonFlag, err, fail, load_settings, open_ledger, out, print_json, run_action

policy_app = typer.Typer(
    help=(
        "Residency and routing policies (YAML with CEL conditions): check them, publish them "
        "to the ledger, list what is published. Without DIR the policies shipped with "
        "pactledger are used. Format: policies/README.md."
    )
)
audit_app = typer.Typer(help="Audits that re-check recorded facts from the ledger alone.")

PolicyDir = Annotated[
    Path | None,
    typer.Argument(
        help="Directory of *.yaml policy documents (default: the shipped policies).",
        show_default=False,
    ),
]
DENIED_EXIT = 3


def _load(directory: Path | None) -> PolicySet:
    policy_set: PolicySet = run_action(lambda: load_policy_set(directory))
    return policy_set


def _documents(policy_set: PolicySet) -> list[dict[str, Any]]:
    rows = []
    for source in policy_set.sources:
        document = source.document
        rules = getattr(document, "rules", None)
        regions = getattr(document, "regions", None)
        rows.append(
            {
                "file": source.file,
                "kind": document.kind,
                "policy_id": document.id,
                "version": document.version,
                "digest": source.digest,
                "rules": len(rules) if rules is not None else None,
                "regions": len(regions) if regions is not None else None,
            }
        )
    return rows


@policy_app.command("check")
def policy_check(directory: PolicyDir = None, as_json: JsonFlag = False) -> None:
    """Load, validate and compile a policy directory; needs no ledger.

    A bad file is reported as FILE:LINE, rule 'ID': reason (CEL syntax and type errors
    included) with exit status 1.
    """
    policy_set = _load(directory)
    rows = _documents(policy_set)
    if as_json:
        print_json({"directory": str(directory or shipped_policy_dir()), "documents": rows})
        return
    table = Table(title=f"policies in {directory or shipped_policy_dir()}", title_justify="left")
    for column in ("file", "kind", "id", "version", "rules / regions", "digest"):
        table.add_column(column)
    for row in rows:
        size = row["rules"] if row["rules"] is not None else f"{row['regions']} regions"
        table.add_row(
            row["file"], row["kind"], row["policy_id"], str(row["version"]), str(size),
            row["digest"][:16] + "…",
        )  # fmt: skip
    out.print(table)
    out.print(f"[green]✓[/] {len(rows)} documents load and compile")


@policy_app.command("publish")
def policy_publish(directory: PolicyDir = None, as_json: JsonFlag = False) -> None:
    """Append a PolicyPublished entry (full text + digest) for every document not yet published.

    All or nothing. An unchanged version is skipped; a changed text under a version that is
    already published is refused: bump `version` in the file.
    """
    policy_set = _load(directory)
    ledger = run_action(lambda: open_ledger(load_settings()))
    results = run_action(lambda: publish_policies(ledger, policy_set))
    rows = [
        {
            "file": r.file,
            "kind": r.kind,
            "policy_id": r.ref.policy_id,
            "version": r.ref.version,
            "digest": r.ref.digest,
            "status": r.status,
            "seq": r.seq,
        }
        for r in results
    ]
    if as_json:
        print_json({"documents": rows})
        return
    table = Table(show_edge=False)
    for column in ("policy", "kind", "status", "seq", "digest"):
        table.add_column(column)
    for row in rows:
        colour = "green" if row["status"] == "published" else "dim"
        table.add_row(
            f"{row['policy_id']} v{row['version']}", row["kind"],
            f"[{colour}]{row['status']}[/]", str(row["seq"]), row["digest"][:16] + "…",
        )  # fmt: skip
    out.print(table)
    fresh = sum(1 for row in rows if row["status"] == "published")
    out.print(f"[green]✓[/] {fresh} published, {len(rows) - fresh} already in the ledger")


@policy_app.command("list")
def policy_list(as_json: JsonFlag = False) -> None:
    """Every policy version published in the ledger, with its seq and digest."""
    ledger = run_action(lambda: open_ledger(load_settings()))
    registry = run_action(lambda: read_policies(ledger.store, ledger.catalogue))
    rows = [
        {
            "policy_id": p.event.policy_id,
            "version": p.event.version,
            "kind": p.event.kind,
            "digest": p.event.digest,
            "seq": p.seq,
        }
        for p in sorted(registry.versions.values(), key=lambda p: p.seq or 0)
    ]
    if as_json:
        print_json({"published": rows})
        return
    if not rows:
        out.print("no policy is published yet: run `pactledger policy publish`")
        return
    table = Table(show_edge=False)
    for column in ("seq", "policy", "kind"):
        table.add_column(column, no_wrap=True)
    table.add_column("digest (SHA-256 of the text)", overflow="fold")
    for row in rows:
        table.add_row(
            str(row["seq"]), f"{row['policy_id']} v{row['version']}", row["kind"], row["digest"]
        )
    out.print(table)


def decide(
    tenant: Annotated[str, typer.Option(help="The tenant the request is made for.")],
    data_class: Annotated[
        list[str],
        typer.Option(
            "--data-class",
            help="A data class the request carries (repeat): eu_personal, health, government, "
            "personal, internal, public …",
        ),
    ],
    provider: Annotated[str, typer.Option(help="Candidate provider: azure, aws, gcp, anthropic.")],
    region: Annotated[str, typer.Option(help="Candidate region, e.g. eu-central-1.")],
    model: Annotated[
        str | None,
        typer.Option(help="Model tier (opus, sonnet, haiku) or a model id naming one."),
    ] = None,
    capability: Annotated[
        str | None,
        typer.Option(
            help="Instead of --model: deep_reasoning, agentic or high_volume_low_latency, "
            "routed to a tier by the routing policy."
        ),
    ] = None,
    transfer_basis: Annotated[
        str,
        typer.Option(help="GDPR Chapter V basis: adequacy, scc, bcr, derogation or none."),
    ] = "none",
    request_id: Annotated[
        str | None,
        typer.Option(
            help="The request's id (default: req-<decision id> when --decision-id is given, "
            "else a new req-<uuid7>)."
        ),
    ] = None,
    decision_id: Annotated[
        str | None,
        typer.Option(
            help="The decision's id (default: a new one); a retry with it appends nothing."
        ),
    ] = None,
    policies: Annotated[
        Path | None,
        typer.Option(help="Policy directory (default: the shipped policies)."),
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Append the decision to the ledger as ResidencyDecided (every policy of the set "
            "must be published first).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Decide where a request may run: allow, reroute (and where) or deny, with the matched
    rules, the reasons and the exact policy versions.

    Exit status: 0 when the request may run (allowed or rerouted), 3 when it is denied, 1 on
    an error. Without --record nothing is written and no ledger is needed.
    """
    if transfer_basis not in TRANSFER_BASES:
        fail(f"--transfer-basis must be one of {', '.join(TRANSFER_BASES)}, not '{transfer_basis}'")
    policy_set = _load(policies)
    tier = _tier(policy_set, model, capability, tenant=tenant, data_classes=data_class)
    facts = Facts(tenant, tuple(data_class), provider, region, tier, transfer_basis)
    ledger = run_action(lambda: open_ledger(load_settings())) if record else None
    # A retry of the same command with the same --decision-id must be the same request.
    decision_id = decision_id or f"dec-{uuid7_batch(1, utc_now())[0]}"
    request = request_id or f"req-{decision_id.removeprefix('dec-')}"
    if ledger is None:
        decision = policy_set.decide(facts)
        result: dict[str, Any] = {"decision_id": decision_id, "request_id": request}
        result.update(decision.to_json())
        result["recorded"] = None
    else:
        recorded = run_action(
            lambda: decide_request(
                ledger,
                policy_set,
                facts,
                request_id=request,
                decision_id=decision_id,
                record=True,
            )
        )
        result = recorded.to_json()
    result["model_tier"] = tier
    if as_json:
        print_json(result)
    else:
        _print_decision(result)
    if result["outcome"] == "deny":
        raise typer.Exit(DENIED_EXIT)


def _tier(
    policy_set: PolicySet,
    model: str | None,
    capability: str | None,
    *,
    tenant: str,
    data_classes: list[str],
) -> str | None:
    try:
        return model_tier_for(
            policy_set, model=model, capability=capability, tenant=tenant, data_classes=data_classes
        )
    except ValidationError as exc:
        fail(f"--{exc.field}: {exc.reason}")


def _print_decision(result: dict[str, Any]) -> None:
    outcome = result["outcome"]
    colour = {"allow": "green", "reroute": "yellow", "deny": "red"}[outcome]
    candidate = f"{result['candidate']['provider']}/{result['candidate']['region']}"
    line = f"[bold {colour}]{outcome.upper()}[/] {escape(candidate)}"
    if result["chosen"] and outcome == "reroute":
        line += f" → [bold]{result['chosen']['provider']}/{result['chosen']['region']}[/]"
    out.print(line)
    for reason in result["reasons"]:
        out.print(f"  • {escape(reason)}")
    out.print(f"  rules: {escape(', '.join(result['matched_rules']))}")
    cited = ", ".join(f"{p['policy_id']} v{p['version']}" for p in result["policies"])
    out.print(f"  policies: {cited}")
    recorded = result["recorded"]
    if recorded:
        out.print(
            f"[green]✓[/] recorded as {result['decision_id']} at seq {recorded['seq']} "
            f"(request {result['request_id']})"
        )
    else:
        out.print("  [dim]not recorded (add --record to append it to the ledger)[/]")


@audit_app.command("replay-decisions")
def audit_replay_decisions(as_json: JsonFlag = False) -> None:
    """Re-evaluate every recorded ResidencyDecided with the policy texts the ledger recorded
    before it, and report each decision whose outcome, placement, rules or reasons differ.

    Exit status 0 when every decision replays identically, 1 otherwise.
    """
    ledger = run_action(lambda: open_ledger(load_settings()))
    size = run_action(ledger.head).size
    if as_json:
        report = run_action(lambda: replay_decisions(ledger))
    else:
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("replay", total=size)
            report = run_action(
                lambda: replay_decisions(ledger, progress=lambda n: bar.advance(task, n))
            )
    data = report.to_json()
    if as_json:
        print_json(data)
    elif not report.discrepancies:
        out.print(
            f"[green]✓[/] {report.decisions} decisions replay identically "
            f"({report.policy_sets} policy sets, {report.entries} entries read)"
        )
    else:
        table = Table(title="decisions their own policies do not reproduce", show_edge=False)
        for column in ("seq", "decision", "problem", "recorded", "replayed"):
            table.add_column(column, overflow="fold")
        for d in report.discrepancies:
            replayed = d.replayed or {}
            table.add_row(
                str(d.seq), d.decision_id, d.problem,
                _placement(d.recorded), _placement(replayed) if replayed else "—",
            )  # fmt: skip
        out.print(table)
        err.print(
            f"[bold red]{len(report.discrepancies)} of {report.decisions} decisions differ "
            "from their replay[/]"
        )
    if report.discrepancies:
        raise typer.Exit(1)


def _placement(outcome: dict[str, Any]) -> str:
    chosen = outcome.get("chosen_provider")
    where = f" {chosen}/{outcome.get('chosen_region')}" if chosen else ""
    return f"{outcome.get('outcome')}{where}"
