"""``pactledger policy …``, ``pactledger decide`` and ``pactledger audit replay-decisions``, end to
end on SQLite through Typer's CliRunner.

Proves that ``policy check`` needs no ledger, lists the shipped documents with digests that are
the SHA-256 of the files' bytes, and reports a broken file as FILE:LINE with the rule and the
reason on stderr (exit 1, nothing on stdout); that ``decide`` without ``--record`` needs no
ledger (the database file is not even created), reroutes, allows and denies with exit 0 / 3,
maps ``--model`` / ``--capability`` to a tier and refuses what it cannot map with exit 1; that
``decide --record`` refuses unpublished policies, appends one ResidencyDecided on the request's
stream and appends nothing on a retry; that ``policy publish`` is idempotent and refuses a changed
text under a published version; and that ``audit replay-decisions`` passes an honest ledger and
catches a forged decision that admission let in.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from ledger.policy import shipped_policy_dir
from tests.cli import test_cli
from tests.cli.test_cli import Env, run, run_json, write_lines

# The fixtures of test_cli.py, bound here so that pytest finds them for this module's tests.
env = test_cli.env
ready = test_cli.ready

HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
SHIPPED = {
    "capability-routing.yaml": "capability-routing",
    "default-residency.yaml": "default-residency",
    "eu-data-boundary.yaml": "eu-data-boundary",
    "regions.yaml": "region-catalogue",
    "sovereign-government.yaml": "sovereign-government",
}
EU_JURISDICTIONS = {"eu", "eea"}
DENIED = 3

EU_REQUEST = ("--tenant", "contoso-eu", "--data-class", "eu_personal")
INTERNAL_REQUEST = ("--tenant", "acme", "--data-class", "internal")


# --- helpers ------------------------------------------------------------------------------------


def at(provider: str, region: str) -> tuple[str, ...]:
    return ("--provider", provider, "--region", region)


def decide(*args: str) -> Result:
    return run("decide", *args)


def decide_json(*args: str, code: int = 0) -> dict[str, Any]:
    """``decide … --json``, asserting its exit status (0 for allow/reroute, 3 for deny)."""
    result = run("decide", *args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def head_size() -> int:
    size: int = run_json("head")["size"]
    return size


def shipped_copy(tmp: Path, name: str) -> Path:
    """A fresh copy of the shipped policy documents in ``tmp/name``."""
    target = tmp / name
    target.mkdir()
    for path in sorted(shipped_policy_dir().glob("*.yaml")):
        shutil.copyfile(path, target / path.name)
    return target


def replace_once(path: Path, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in the file; return the 1-based line it starts on."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def eu_regions() -> set[tuple[str, str]]:
    """The catalogue locations in the EU/EEA, read from the shipped regions.yaml."""
    catalogue = yaml.safe_load((shipped_policy_dir() / "regions.yaml").read_text(encoding="utf-8"))
    return {
        (row["provider"], row["region"])
        for row in catalogue["regions"]
        if row["jurisdiction"] in EU_JURISDICTIONS
    }


def publish(directory: Path | None = None) -> list[dict[str, Any]]:
    args = ["policy", "publish"] + ([str(directory)] if directory else [])
    documents: list[dict[str, Any]] = run_json(*args)["documents"]
    return documents


def replay() -> tuple[int, dict[str, Any]]:
    result = run("audit", "replay-decisions", "--json")
    assert result.exit_code in (0, 1), (result.stdout, result.stderr)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


# --- help ---------------------------------------------------------------------------------------

COMMANDS = [
    ["policy"],
    ["policy", "check"],
    ["policy", "publish"],
    ["policy", "list"],
    ["decide"],
    ["audit"],
    ["audit", "replay-decisions"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


# --- policy check -------------------------------------------------------------------------------


def test_policy_check_lists_the_shipped_documents_without_a_ledger(env: Env) -> None:
    result = run("policy", "check")
    assert result.exit_code == 0, result.stderr
    assert "5 documents load and compile" in result.stdout
    assert "residency" in result.stdout
    assert "34 regions" in result.stdout
    assert not env.database.exists()


def test_policy_check_json_digests_are_sha256_of_the_shipped_files(env: Env) -> None:
    data = run_json("policy", "check")
    assert data["directory"] == str(shipped_policy_dir())
    documents = data["documents"]
    assert {d["file"]: d["policy_id"] for d in documents} == SHIPPED
    for document in documents:
        assert document["kind"] in ("regions", "residency", "routing")
        assert document["version"] == 1
        assert HEX_DIGEST.match(document["digest"])
        raw = (shipped_policy_dir() / document["file"]).read_bytes()
        assert document["digest"] == hashlib.sha256(raw).hexdigest()
    kinds = {d["policy_id"]: d["kind"] for d in documents}
    assert kinds["region-catalogue"] == "regions"
    assert kinds["capability-routing"] == "routing"
    assert not env.database.exists()


def test_policy_check_of_an_explicit_directory_gives_the_same_digests(env: Env) -> None:
    copy = shipped_copy(env.tmp, "copy")
    shipped = {d["policy_id"]: d["digest"] for d in run_json("policy", "check")["documents"]}
    copied = run_json("policy", "check", str(copy))
    assert copied["directory"] == str(copy)
    assert {d["policy_id"]: d["digest"] for d in copied["documents"]} == shipped


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_policy_check_reports_a_cel_syntax_error_with_file_line_and_rule(
    env: Env, as_json: bool
) -> None:
    broken = shipped_copy(env.tmp, "broken")
    line = replace_once(
        broken / "eu-data-boundary.yaml",
        "when: \"'health' in data_classes\"",
        'when: "jurisdiction in"',
    )
    result = run("policy", "check", str(broken), *(["--json"] if as_json else []))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"eu-data-boundary.yaml:{line}" in result.stderr
    assert "rule 'special-category-stays'" in result.stderr
    assert "CEL syntax error" in result.stderr


def test_policy_check_reports_an_unknown_rule_key(env: Env) -> None:
    broken = shipped_copy(env.tmp, "broken")
    text = "    effect: allow\n    reason: The region is in the catalogue"
    line = replace_once(
        broken / "default-residency.yaml",
        text,
        text.replace("allow\n", "allow\n    colour: blue\n"),
    )
    result = run("policy", "check", str(broken))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"default-residency.yaml:{line + 1}" in result.stderr
    assert "rule 'tier-offered'" in result.stderr
    assert "colour" in result.stderr


def test_policy_check_reports_an_unknown_top_level_key(env: Env) -> None:
    broken = shipped_copy(env.tmp, "broken")
    line = replace_once(broken / "regions.yaml", "version: 1\n", "version: 1\nowner: me\n")
    result = run("policy", "check", str(broken), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"regions.yaml:{line + 1}" in result.stderr
    assert "owner" in result.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing", "is not a directory of policy files"), ("empty", "holds no *.yaml policy")],
)
def test_policy_check_of_a_directory_without_policies(env: Env, name: str, message: str) -> None:
    directory = env.tmp / name
    if name == "empty":
        directory.mkdir()
    result = run("policy", "check", str(directory))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert message in result.stderr


# --- decide without a ledger --------------------------------------------------------------------


def test_decide_reroutes_eu_personal_data_into_the_boundary(env: Env) -> None:
    data = decide_json(*EU_REQUEST, *at("aws", "us-east-1"))
    assert data["outcome"] == "reroute"
    assert data["candidate"] == {"provider": "aws", "region": "us-east-1"}
    chosen = data["chosen"]
    assert chosen["provider"] == "aws"
    assert (chosen["provider"], chosen["region"]) in eu_regions()
    assert "eu-data-boundary/keep-in-boundary" in data["matched_rules"]
    assert data["recorded"] is None
    assert data["decision_id"].startswith("dec-")  # an id even when not recorded
    assert data["request_id"] == "req-" + data["decision_id"].removeprefix("dec-")
    assert data["request_id"].startswith("req-")
    assert {p["policy_id"] for p in data["policies"]} == set(SHIPPED.values())
    assert not env.database.exists()


def test_decide_allows_eu_personal_data_inside_the_boundary(env: Env) -> None:
    data = decide_json(*EU_REQUEST, *at("aws", "eu-west-1"))
    assert data["outcome"] == "allow"
    assert data["chosen"] == {"provider": "aws", "region": "eu-west-1"}
    assert "eu-data-boundary/inside-boundary" in data["matched_rules"]
    assert not env.database.exists()


def test_decide_denies_a_government_tenant_outside_sovereign_regions(env: Env) -> None:
    data = decide_json(
        "--tenant", "us-federal", "--data-class", "internal", *at("aws", "us-east-1"), code=DENIED
    )
    assert data["outcome"] == "deny"
    assert data["chosen"] is None
    assert "sovereign-government/outside-sovereign" in data["matched_rules"]
    assert data["recorded"] is None
    assert not env.database.exists()


def test_decide_allows_a_government_tenant_in_govcloud(env: Env) -> None:
    data = decide_json(
        "--tenant", "us-federal", "--data-class", "internal", *at("aws", "us-gov-west-1")
    )
    assert data["outcome"] == "allow"


def test_decide_denies_an_unknown_region(env: Env) -> None:
    data = decide_json(*INTERNAL_REQUEST, *at("aws", "mars-north-1"), code=DENIED)
    assert data["outcome"] == "deny"
    assert "region-catalogue/unknown-region" in data["matched_rules"]
    assert not env.database.exists()


def test_decide_text_output_of_a_denial_exits_3(env: Env) -> None:
    result = decide(*INTERNAL_REQUEST, *at("aws", "mars-north-1"))
    assert result.exit_code == DENIED
    assert "DENY aws/mars-north-1" in result.stdout
    assert "region-catalogue/unknown-region" in result.stdout


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("claude-sonnet-4-5", "sonnet"),
        ("sonnet", "sonnet"),
        ("claude-opus-4-1", "opus"),
        ("haiku", "haiku"),
    ],
)
def test_decide_model_names_a_tier(env: Env, model: str, tier: str) -> None:
    data = decide_json(*INTERNAL_REQUEST, *at("aws", "us-east-1"), "--model", model)
    assert data["model_tier"] == tier
    assert data["outcome"] == "allow"


def test_decide_without_model_has_no_tier(env: Env) -> None:
    assert decide_json(*INTERNAL_REQUEST, *at("aws", "us-east-1"))["model_tier"] is None


def test_decide_denies_a_tier_the_region_does_not_offer(env: Env) -> None:
    # sa-east-1 offers haiku only.
    data = decide_json(*INTERNAL_REQUEST, *at("aws", "sa-east-1"), "--model", "opus", code=DENIED)
    assert data["matched_rules"] == ["default-residency/tier-not-offered"]


@pytest.mark.parametrize(
    ("capability", "tier"),
    [("deep_reasoning", "opus"), ("agentic", "sonnet"), ("high_volume_low_latency", "haiku")],
)
def test_decide_capability_is_routed_to_a_tier(env: Env, capability: str, tier: str) -> None:
    data = decide_json(*INTERNAL_REQUEST, *at("aws", "us-east-1"), "--capability", capability)
    assert data["model_tier"] == tier


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "gpt-4"], "--model: cannot tell the tier of 'gpt-4'"),
        (["--capability", "nope"], "--capability: no routing rule matches capability 'nope'"),
        (["--model", "x", "--capability", "y"], "give a model or a capability, not both"),
    ],
    ids=["unknown-model", "unknown-capability", "both"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_decide_refuses_what_it_cannot_map_to_a_tier(
    env: Env, options: list[str], message: str, as_json: bool
) -> None:
    result = decide(
        *INTERNAL_REQUEST, *at("aws", "us-east-1"), *options, *(["--json"] if as_json else [])
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert message in result.stderr
    assert not env.database.exists()


def test_decide_text_output_shows_the_reroute(env: Env) -> None:
    chosen = decide_json(*EU_REQUEST, *at("aws", "us-east-1"))["chosen"]
    result = decide(*EU_REQUEST, *at("aws", "us-east-1"))
    assert result.exit_code == 0
    assert f"REROUTE aws/us-east-1 → aws/{chosen['region']}" in result.stdout
    assert "eu-data-boundary/keep-in-boundary" in result.stdout
    assert "eu-data-boundary v1" in result.stdout
    assert "not recorded" in result.stdout
    assert result.stderr == ""


def test_decide_echoes_the_given_ids_without_recording(env: Env) -> None:
    data = decide_json(
        *EU_REQUEST, *at("aws", "eu-west-1"), "--request-id", "r-1", "--decision-id", "d-1"
    )
    assert (data["request_id"], data["decision_id"], data["recorded"]) == ("r-1", "d-1", None)


def test_decide_with_a_broken_policy_directory_fails(env: Env) -> None:
    broken = shipped_copy(env.tmp, "broken")
    replace_once(
        broken / "eu-data-boundary.yaml", "when: \"'health' in data_classes\"", 'when: "("'
    )
    result = decide(*EU_REQUEST, *at("aws", "us-east-1"), "--policies", str(broken))
    assert result.exit_code == 1
    assert "eu-data-boundary.yaml:" in result.stderr


def test_decide_record_before_init_says_run_init(env: Env) -> None:
    result = decide(*EU_REQUEST, *at("aws", "eu-west-1"), "--record")
    assert result.exit_code == 1
    assert "pactledger init" in result.stderr
    assert result.stdout == ""


# --- publish, list, record ----------------------------------------------------------------------


def test_decide_record_before_publish_appends_nothing(ready: Env) -> None:
    result = decide(*EU_REQUEST, *at("aws", "eu-west-1"), "--record", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "pactledger policy publish" in result.stderr
    assert head_size() == 0


def test_policy_list_before_publish(ready: Env) -> None:
    assert run_json("policy", "list") == {"published": []}
    result = run("policy", "list")
    assert result.exit_code == 0
    assert "pactledger policy publish" in result.stdout


def test_policy_publish_is_idempotent(ready: Env) -> None:
    first = publish()
    assert [d["status"] for d in first] == ["published"] * 5
    assert sorted(d["seq"] for d in first) == [0, 1, 2, 3, 4]
    assert {d["file"]: d["policy_id"] for d in first} == SHIPPED
    assert head_size() == 5

    second = publish()
    assert [d["status"] for d in second] == ["already-published"] * 5
    assert [(d["policy_id"], d["seq"], d["digest"]) for d in second] == [
        (d["policy_id"], d["seq"], d["digest"]) for d in first
    ]
    assert head_size() == 5

    text = run("policy", "publish")
    assert text.exit_code == 0
    assert "0 published, 5 already in the ledger" in text.stdout
    assert head_size() == 5


def test_policy_publish_text_output(ready: Env) -> None:
    result = run("policy", "publish")
    assert result.exit_code == 0
    assert "5 published, 0 already in the ledger" in result.stdout
    assert head_size() == 5


def test_policy_list_shows_the_published_versions(ready: Env) -> None:
    published = publish()
    listed = run_json("policy", "list")["published"]
    assert [row["seq"] for row in listed] == [0, 1, 2, 3, 4]
    assert {(r["policy_id"], r["version"], r["digest"]) for r in listed} == {
        (d["policy_id"], d["version"], d["digest"]) for d in published
    }
    checked = run_json("policy", "check")["documents"]
    assert {r["policy_id"]: r["digest"] for r in listed} == {
        d["policy_id"]: d["digest"] for d in checked
    }
    text = run("policy", "list")
    assert text.exit_code == 0
    for row in listed:
        # At 80 columns the table cuts the digest short: its start is always shown.
        assert row["digest"][:16] in text.stdout
        assert f"{row['policy_id']} v1" in text.stdout


def test_decide_record_appends_one_residency_decided(ready: Env) -> None:
    publish()
    args = (*EU_REQUEST, *at("aws", "us-east-1"), "--request-id", "req-42", "--decision-id", "d-42")
    data = decide_json(*args, "--record")
    assert data["recorded"]["seq"] == 5
    assert data["recorded"]["tree_size"] == 6
    assert (data["request_id"], data["decision_id"]) == ("req-42", "d-42")
    assert data["outcome"] == "reroute"
    assert head_size() == 6

    shown = run_json("show", "5")["entry"]
    assert shown["type"] == "ResidencyDecided"
    assert shown["stream"] == "request:req-42"
    assert shown["tenant"] == "contoso-eu"
    assert shown["idempotency_key"] == "decision:d-42"
    payload = shown["payload"]
    assert payload["decision_id"] == "d-42"
    assert payload["request_id"] == "req-42"
    assert payload["outcome"] == "reroute"
    assert payload["candidate_region"] == "us-east-1"
    assert payload["chosen_region"] == data["chosen"]["region"]
    assert payload["matched_rules"] == data["matched_rules"]
    assert payload["reasons"] == data["reasons"]
    assert payload["policies"] == [
        {"digest": p["digest"], "policy_id": p["policy_id"], "version": p["version"]}
        for p in data["policies"]
    ]

    retry = decide_json(*args, "--record")
    assert retry["recorded"]["seq"] == 5
    assert head_size() == 6


def test_decide_record_generates_ids(ready: Env) -> None:
    publish()
    data = decide_json(*EU_REQUEST, *at("aws", "eu-west-1"), "--record")
    assert data["decision_id"].startswith("dec-")
    assert data["request_id"].startswith("req-")
    shown = run_json("show", str(data["recorded"]["seq"]))["entry"]
    assert shown["stream"] == f"request:{data['request_id']}"
    assert shown["idempotency_key"] == f"decision:{data['decision_id']}"


def test_decide_record_text_output(ready: Env) -> None:
    publish()
    result = decide(*EU_REQUEST, *at("aws", "eu-west-1"), "--record", "--decision-id", "d-7")
    assert result.exit_code == 0
    assert "ALLOW aws/eu-west-1" in result.stdout
    assert "recorded as d-7 at seq 5" in result.stdout


def test_decide_record_of_a_denial_is_recorded_and_exits_3(ready: Env) -> None:
    publish()
    data = decide_json(
        "--tenant", "us-federal", "--data-class", "internal", *at("aws", "us-east-1"), "--record",
        code=DENIED,
    )  # fmt: skip
    assert data["outcome"] == "deny"
    assert data["recorded"]["seq"] == 5
    assert run_json("show", "5")["entry"]["payload"]["outcome"] == "deny"


def test_decide_record_reusing_a_decision_id_for_other_facts_is_refused(ready: Env) -> None:
    publish()
    ids = ("--request-id", "req-1", "--decision-id", "d-1")
    decide_json(*EU_REQUEST, *at("aws", "eu-west-1"), *ids, "--record")
    result = decide(*EU_REQUEST, *at("aws", "us-east-1"), *ids, "--record", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "decision:d-1" in result.stderr
    assert head_size() == 6


def test_decide_record_retry_with_only_the_decision_id(ready: Env) -> None:
    publish()
    args = (*EU_REQUEST, *at("aws", "eu-west-1"), "--decision-id", "d-9", "--record")
    first = decide_json(*args)
    retry = decide(*args, "--json")
    assert retry.exit_code == 0, retry.stderr
    assert json.loads(retry.stdout)["recorded"]["seq"] == first["recorded"]["seq"]
    assert head_size() == 6


def test_decide_record_refuses_an_invalid_transfer_basis(ready: Env) -> None:
    publish()
    result = decide(*EU_REQUEST, *at("aws", "us-east-1"), "--transfer-basis", "bogus", "--record")
    assert result.exit_code == 1
    assert "--transfer-basis must be one of adequacy, scc, bcr, derogation, none" in result.stderr
    assert head_size() == 5


# --- publishing a changed policy ----------------------------------------------------------------

CHANGED_REASON = (
    "reason: The requested model tier is not offered in this region.",
    "reason: This region does not offer the requested model tier.",
)


def test_changed_text_under_a_published_version_is_refused(ready: Env) -> None:
    publish()
    changed = shipped_copy(ready.tmp, "changed")
    replace_once(changed / "default-residency.yaml", *CHANGED_REASON)
    for extra in ([], ["--json"]):
        result = run("policy", "publish", str(changed), *extra)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert "default-residency.yaml" in result.stderr
        assert "version 2" in result.stderr
        assert head_size() == 5


def test_a_refused_publish_appends_none_of_its_documents(ready: Env) -> None:
    """All or nothing: a conflict in one file appends none of the others."""
    publish(shipped_copy(ready.tmp, "first"))
    assert head_size() == 5
    changed = shipped_copy(ready.tmp, "changed")
    replace_once(changed / "default-residency.yaml", *CHANGED_REASON)
    replace_once(changed / "capability-routing.yaml", "version: 1\n", "version: 2\n")
    result = run("policy", "publish", str(changed))
    assert result.exit_code == 1
    assert head_size() == 5


def test_changed_text_published_as_version_2(ready: Env) -> None:
    publish()
    changed = shipped_copy(ready.tmp, "changed")
    replace_once(changed / "default-residency.yaml", *CHANGED_REASON)
    replace_once(changed / "default-residency.yaml", "version: 1\n", "version: 2\n")

    documents = publish(changed)
    fresh = [d for d in documents if d["status"] == "published"]
    assert [(d["policy_id"], d["version"], d["seq"]) for d in fresh] == [
        ("default-residency", 2, 5)
    ]
    assert sum(d["status"] == "already-published" for d in documents) == 4
    assert head_size() == 6
    assert len(run_json("policy", "list")["published"]) == 6

    data = decide_json(
        *INTERNAL_REQUEST, *at("aws", "sa-east-1"), "--model", "opus",
        "--policies", str(changed), "--record", code=DENIED,
    )  # fmt: skip
    assert data["recorded"]["seq"] == 6
    assert data["reasons"] == ["This region does not offer the requested model tier."]
    cited = {p["policy_id"]: p["version"] for p in data["policies"]}
    assert cited["default-residency"] == 2

    # The shipped (v1) set still decides and records, and both sets replay.
    decide_json(
        *INTERNAL_REQUEST, *at("aws", "sa-east-1"), "--model", "opus", "--record", code=DENIED
    )
    code, report = replay()
    assert code == 0
    assert report["decisions"] == 2
    assert report["policy_sets"] == 2
    assert report["discrepancies"] == []


def test_decide_record_with_an_unpublished_version_is_refused(ready: Env) -> None:
    publish()
    changed = shipped_copy(ready.tmp, "changed")
    replace_once(changed / "default-residency.yaml", *CHANGED_REASON)
    replace_once(changed / "default-residency.yaml", "version: 1\n", "version: 2\n")
    result = decide(
        *INTERNAL_REQUEST, *at("aws", "us-east-1"), "--policies", str(changed), "--record"
    )
    assert result.exit_code == 1
    assert "default-residency v2" in result.stderr
    assert "pactledger policy publish" in result.stderr
    assert head_size() == 5


# --- audit replay-decisions ---------------------------------------------------------------------


def test_replay_before_init_says_run_init(env: Env) -> None:
    result = run("audit", "replay-decisions")
    assert result.exit_code == 1
    assert "pactledger init" in result.stderr


def test_replay_of_an_empty_ledger(ready: Env) -> None:
    code, report = replay()
    assert code == 0
    assert report["decisions"] == 0
    assert report["discrepancies"] == []


def record_honest_decisions() -> dict[str, Any]:
    """Publish the shipped set and record a reroute, an allow and a denial; return the allow."""
    publish()
    decide_json(*EU_REQUEST, *at("aws", "us-east-1"), "--record")
    allowed = decide_json(*EU_REQUEST, *at("aws", "eu-west-1"), "--record")
    decide_json("--tenant", "us-federal", "--data-class", "government", *at("gcp", "us-east5"),
                "--record", code=DENIED)  # fmt: skip
    return allowed


def test_replay_of_an_honest_ledger(ready: Env) -> None:
    record_honest_decisions()
    code, report = replay()
    assert code == 0
    assert report["decisions"] == 3
    assert report["matching"] == 3
    assert report["entries_read"] == 8
    assert report["policy_sets"] == 1
    assert report["discrepancies"] == []

    text = run("audit", "replay-decisions")
    assert text.exit_code == 0
    assert "3 decisions replay identically" in text.stdout


def test_replay_catches_a_forged_decision(ready: Env) -> None:
    allowed = record_honest_decisions()
    assert allowed["outcome"] == "allow"
    forged = {
        "type": "ResidencyDecided",
        "stream": "request:forged-1",
        "tenant": "contoso-eu",
        "payload": {
            "decision_id": "dec-forged-1",
            "request_id": "forged-1",
            "data_classes": ["eu_personal"],
            "candidate_provider": "aws",
            "candidate_region": "us-east-1",
            "outcome": "allow",
            "chosen_provider": "aws",
            "chosen_region": "us-east-1",
            "matched_rules": allowed["matched_rules"],
            "reasons": allowed["reasons"],
            "policies": allowed["policies"],
            "transfer_basis": "none",
        },
    }
    appended = run("append", str(write_lines(ready.tmp / "forged.jsonl", [forged])))
    assert appended.exit_code == 0, appended.stderr  # admission checks citations, not outcomes
    assert head_size() == 9
    forged_seq = 8

    code, report = replay()
    assert code == 1
    assert report["decisions"] == 4
    assert report["matching"] == 3
    (discrepancy,) = report["discrepancies"]
    assert discrepancy["seq"] == forged_seq
    assert discrepancy["decision_id"] == "dec-forged-1"
    assert discrepancy["request_id"] == "forged-1"
    assert "outcome" in discrepancy["problem"]
    assert discrepancy["recorded"]["outcome"] == "allow"
    assert discrepancy["replayed"]["outcome"] == "reroute"
    assert (
        discrepancy["replayed"]["chosen_provider"],
        discrepancy["replayed"]["chosen_region"],
    ) in eu_regions()

    text = run("audit", "replay-decisions")
    assert text.exit_code == 1
    assert "decisions their own policies do not reproduce" in text.stdout
    assert "dec-forged-1" in text.stdout
    assert "allow" in text.stdout
    assert "aws/us-east-1" in text.stdout
    assert "reroute" in text.stdout
    assert "1 of 4 decisions differ" in text.stderr


def test_a_forged_decision_citing_unpublished_text_is_refused_at_append(ready: Env) -> None:
    allowed = record_honest_decisions()
    policies = [dict(p) for p in allowed["policies"]]
    policies[0]["digest"] = "0" * 64
    forged = {
        "type": "ResidencyDecided",
        "stream": "request:forged-2",
        "tenant": "contoso-eu",
        "payload": {
            "decision_id": "dec-forged-2",
            "request_id": "forged-2",
            "data_classes": ["eu_personal"],
            "candidate_provider": "aws",
            "candidate_region": "eu-west-1",
            "outcome": "allow",
            "chosen_provider": "aws",
            "chosen_region": "eu-west-1",
            "matched_rules": allowed["matched_rules"],
            "reasons": allowed["reasons"],
            "policies": policies,
            "transfer_basis": "none",
        },
    }
    result = run("append", str(write_lines(ready.tmp / "forged.jsonl", [forged])))
    assert result.exit_code == 1
    assert "never published" in result.stderr
    assert head_size() == 8
