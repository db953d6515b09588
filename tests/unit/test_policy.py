"""The policy engine (ledger.policy): shipped policies, routing, loading errors, fail-closed.

Proves that:

* the shipped policies place realistic requests as the GDPR boundary, the sovereign-cloud rule
  and the tier catalogue say (allow, reroute into the EU/EEA of the same provider, deny), each
  decision naming the rule that made it and citing every document by the SHA-256 of its text;
* capabilities route to the documented tier and model, and an unknown capability to none;
* every malformed policy (bad YAML, duplicate or unknown keys, bad CEL, unknown names or sets,
  type errors, conflicting documents) is refused at load with a PolicyError naming the file,
  the line and, where there is one, the rule;
* decisions fail closed: no rule matched, no policy applies, no reroute target or a condition
  that fails at evaluation time all give ``deny``, never an exception;
* memoised and uncached decisions agree, and a PolicySet gives the same answers from threads.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.errors import PolicyError
from ledger.policy import (
    Decision,
    Facts,
    PolicySet,
    load_policy_set,
    policy_set_from_texts,
    read_policy_dir,
    shipped_policy_dir,
)
from ledger.policy.document import MAX_POLICY_BYTES

EU = ("eu", "eea")


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return load_policy_set()


# --- helpers: small policy sets written to tmp_path -------------------------------------------

REGIONS = """\
kind: regions
id: regions
version: 1
description: A tiny catalogue for tests.
regions:
  - provider: aws
    region: eu-west-1
    country: IE
    jurisdiction: eu
    tiers: [opus, sonnet, haiku]
  - provider: aws
    region: us-east-1
    country: US
    jurisdiction: us
    tiers: [sonnet, haiku]
  - provider: gcp
    region: europe-west1
    country: BE
    jurisdiction: eu
    tiers: [sonnet]
  - provider: gcp
    region: us-east5
    country: US
    jurisdiction: us
    tiers: [opus, sonnet, haiku]
"""


def rule(
    rule_id: str,
    when: str = "true",
    *,
    effect: str = "allow",
    to: str | None = None,
    extra: str = "",
) -> str:
    """One residency rule as YAML list item (``when`` double-quoted, JSON-style)."""
    lines = [f"  - id: {rule_id}", f"    when: {json.dumps(when)}", f"    effect: {effect}"]
    if to is not None:
        lines.append(f"    to: {to}")
    lines.append(f"    reason: Rule {rule_id} of a test policy.")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def residency(
    *rules: str,
    policy_id: str = "residency",
    applies_when: str = "true",
    sets: str = "",
) -> str:
    """A residency document; ``sets`` is the YAML body under ``sets:`` (already indented)."""
    text = (
        "kind: residency\n"
        f"id: {policy_id}\n"
        "version: 1\n"
        "description: A test policy.\n"
        f"applies_when: {json.dumps(applies_when)}\n"
    )
    if sets:
        text += "sets:\n" + sets
    return text + "rules:\n" + "".join(rules or (rule("allow-all"),))


def write_set(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def load_texts(tmp_path: Path, **files: str) -> PolicySet:
    """Load a directory holding the tiny catalogue plus ``files`` (name with dashes → .yaml)."""
    docs = {"regions.yaml": REGIONS} | {
        f"{name.replace('_', '-')}.yaml": text for name, text in files.items()
    }
    return load_policy_set(write_set(tmp_path / "policies", docs))


def load_error(tmp_path: Path, **files: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_texts(tmp_path, **files)
    return caught.value


def line_of(text: str, fragment: str, *, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``text`` containing ``fragment``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(hits) >= occurrence, f"{fragment!r} occurs {len(hits)} time(s)"
    return hits[occurrence - 1]


def test_helpers_make_a_valid_set(tmp_path: Path) -> None:
    policy_set = load_texts(tmp_path, residency=residency())
    decision = policy_set.decide(Facts("acme", ("internal",), "aws", "us-east-1"))
    assert decision.outcome == "allow"
    assert decision.matched_rules == ("residency/allow-all",)


# --- the shipped policies ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    facts: Facts
    outcome: str
    rule: str
    chosen: tuple[str, str] | None = None  # exact reroute target, when one is expected
    same_provider: bool = True  # a reroute stays with the candidate's provider


def eu(
    provider: str, region: str, *, model_tier: str | None = None, transfer_basis: str = "none"
) -> Facts:
    """A request of an EU tenant carrying EU personal data."""
    return Facts("contoso-eu", ("eu_personal",), provider, region, model_tier, transfer_basis)


CASES = {
    "eu-personal-in-eu": Case(eu("aws", "eu-west-1"), "allow", "eu-data-boundary/inside-boundary"),
    "eu-personal-to-us-no-basis": Case(
        eu("aws", "us-east-1"), "reroute", "eu-data-boundary/keep-in-boundary"
    ),
    "eu-personal-to-us-scc": Case(
        eu("aws", "us-east-1", transfer_basis="scc"), "allow", "eu-data-boundary/safeguards"
    ),
    "eu-personal-to-us-bcr": Case(
        eu("gcp", "us-east5", transfer_basis="bcr"), "allow", "eu-data-boundary/safeguards"
    ),
    "eu-personal-to-us-adequacy": Case(
        eu("aws", "us-west-2", transfer_basis="adequacy"), "allow", "eu-data-boundary/adequacy"
    ),
    "eu-personal-adequacy-to-brazil": Case(
        eu("aws", "sa-east-1", transfer_basis="adequacy"),
        "reroute",
        "eu-data-boundary/keep-in-boundary",
    ),
    "eu-personal-derogation": Case(
        eu("aws", "us-east-1", transfer_basis="derogation"),
        "reroute",
        "eu-data-boundary/keep-in-boundary",
    ),
    "eu-health-scc-stays": Case(
        Facts("contoso-eu", ("eu_personal", "health"), "aws", "us-east-1", None, "scc"),
        "reroute",
        "eu-data-boundary/special-category-stays",
    ),
    "azure-eastus2-to-swedencentral": Case(
        eu("azure", "eastus2"),
        "reroute",
        "eu-data-boundary/keep-in-boundary",
        chosen=("azure", "swedencentral"),
    ),
    "gcp-opus-reroute-keeps-tier": Case(
        eu("gcp", "us-east5", model_tier="opus"),
        "reroute",
        "eu-data-boundary/keep-in-boundary",
        chosen=("gcp", "europe-west1"),
    ),
    "anthropic-us-has-no-eu-region": Case(
        eu("anthropic", "us"), "reroute", "eu-data-boundary/keep-in-boundary", same_provider=False
    ),
    "us-federal-commercial": Case(
        Facts("us-federal", ("internal",), "aws", "us-east-1"),
        "deny",
        "sovereign-government/outside-sovereign",
    ),
    "us-federal-govcloud": Case(
        Facts("us-federal", ("internal",), "aws", "us-gov-west-1"),
        "allow",
        "sovereign-government/sovereign-region",
    ),
    "us-federal-eu-personal-nowhere": Case(
        Facts("us-federal", ("eu_personal",), "aws", "us-gov-west-1"),
        "deny",
        "eu-data-boundary/keep-in-boundary",
    ),
    "government-data-commercial": Case(
        Facts("acme", ("government",), "gcp", "us-central1"),
        "deny",
        "sovereign-government/outside-sovereign",
    ),
    "government-data-govcloud": Case(
        Facts("acme", ("government",), "aws", "us-gov-east-1"),
        "allow",
        "sovereign-government/sovereign-region",
    ),
    "unknown-region": Case(
        Facts("acme", ("internal",), "aws", "mars-1"), "deny", "region-catalogue/unknown-region"
    ),
    "unknown-provider": Case(
        Facts("acme", ("internal",), "oracle", "us-east-1"),
        "deny",
        "region-catalogue/unknown-region",
    ),
    "tier-not-offered-first-party": Case(
        Facts("acme", ("internal",), "anthropic", "us", model_tier="haiku"),
        "deny",
        "default-residency/tier-not-offered",
    ),
    "no-data-classes": Case(Facts("acme", (), "aws", "us-east-1"), "deny", "facts/incomplete"),
    "empty-tenant": Case(Facts("", ("internal",), "aws", "us-east-1"), "deny", "facts/incomplete"),
    "empty-region": Case(Facts("acme", ("internal",), "aws", ""), "deny", "facts/incomplete"),
    "bad-transfer-basis": Case(
        Facts("acme", ("eu_personal",), "aws", "us-east-1", transfer_basis="consent"),
        "deny",
        "facts/incomplete",
    ),
    "internal-in-us": Case(
        Facts("acme", ("internal",), "aws", "us-east-1", model_tier="opus"),
        "allow",
        "default-residency/tier-offered",
    ),
}


def check_decision(policy_set: PolicySet, facts: Facts, decision: Decision) -> None:
    """What holds for every decision, whatever the outcome."""
    assert decision.policies == policy_set.refs
    assert (decision.provider, decision.region) == (facts.provider, facts.region)
    assert decision.matched_rules
    assert decision.reasons
    chosen = (decision.chosen_provider, decision.chosen_region)
    if decision.outcome == "deny":
        assert chosen == (None, None)
        assert decision.to_json()["chosen"] is None
    elif decision.outcome == "allow":
        assert chosen == (facts.provider, facts.region)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_shipped_policies_decide(shipped: PolicySet, case: Case) -> None:
    decision = shipped.decide(case.facts)
    check_decision(shipped, case.facts, decision)
    assert decision.outcome == case.outcome, decision.reasons
    assert case.rule in decision.matched_rules
    if case.outcome != "reroute":
        return
    assert decision.chosen_provider is not None
    assert decision.chosen_region is not None
    target = shipped.region(decision.chosen_provider, decision.chosen_region)
    assert target is not None
    assert target.jurisdiction in EU
    assert decision.reasons[-1] == f"rerouted to {target.location}"
    if case.same_provider:
        assert target.provider == case.facts.provider
    if case.chosen is not None:
        assert (target.provider, target.region) == case.chosen
    if case.facts.model_tier:
        assert case.facts.model_tier in target.tiers


def test_unknown_region_reason_names_the_catalogue(shipped: PolicySet) -> None:
    decision = shipped.decide(Facts("acme", ("internal",), "aws", "mars-1"))
    assert decision.matched_rules == ("region-catalogue/unknown-region",)
    assert "aws/mars-1 is not in the region catalogue" in decision.reasons[0]


def test_incomplete_facts_name_every_gap(shipped: PolicySet) -> None:
    decision = shipped.decide(Facts("", (), "", "", transfer_basis="maybe"))
    assert decision.matched_rules == ("facts/incomplete",)
    for gap in ("tenant", "provider", "region", "data_classes", "transfer_basis"):
        assert gap in decision.reasons[0]


def test_tier_not_offered_in_a_catalogue_region(shipped: PolicySet) -> None:
    info = next(i for i in shipped.catalogue.regions if "opus" not in i.tiers and not i.sovereign)
    facts = Facts("acme", ("internal",), info.provider, info.region, model_tier="opus")
    decision = shipped.decide(facts)
    check_decision(shipped, facts, decision)
    assert decision.outcome == "deny"
    assert decision.matched_rules == ("default-residency/tier-not-offered",)


def test_reroute_impossible_is_denied_with_reason(shipped: PolicySet) -> None:
    decision = shipped.decide(Facts("us-federal", ("eu_personal",), "aws", "us-gov-west-1"))
    assert decision.outcome == "deny"
    assert "no region of the reroute sets satisfies every applicable policy" in decision.reasons


def test_decisions_cite_every_document_by_digest(shipped: PolicySet) -> None:
    directory = shipped_policy_dir()
    assert {ref.policy_id for ref in shipped.refs} == {
        "region-catalogue",
        "eu-data-boundary",
        "sovereign-government",
        "default-residency",
        "capability-routing",
    }
    assert [ref.policy_id for ref in shipped.refs] == sorted(r.policy_id for r in shipped.refs)
    for source in shipped.sources:
        assert source.ref in shipped.refs
        raw = (directory / source.file).read_bytes()
        assert source.ref.digest == hashlib.sha256(raw).hexdigest()
        assert source.ref.digest == hashlib.sha256(source.text.encode()).hexdigest()
    decision = shipped.decide(Facts("acme", ("internal",), "aws", "us-east-1"))
    assert decision.policies == shipped.refs
    assert decision.to_json()["policies"] == [
        {"policy_id": r.policy_id, "version": r.version, "digest": r.digest} for r in shipped.refs
    ]


def test_shipped_set_compiles_from_its_recorded_texts(shipped: PolicySet) -> None:
    again = policy_set_from_texts((s.file, s.text) for s in read_policy_dir())
    assert again.refs == shipped.refs
    facts = eu("aws", "us-east-1")
    assert again.decide(facts) == shipped.decide(facts)


# --- routing ----------------------------------------------------------------------------------

ROUTES = {
    "deep_reasoning": ("opus", "claude-opus-4-1", "capability-routing/deep-reasoning"),
    "agentic": ("sonnet", "claude-sonnet-4-5", "capability-routing/agentic"),
    "high_volume_low_latency": (
        "haiku",
        "claude-haiku-4-5",
        "capability-routing/high-volume-low-latency",
    ),
}


@pytest.mark.parametrize(("capability", "expected"), ROUTES.items(), ids=ROUTES.keys())
def test_capability_routes_to_tier(
    shipped: PolicySet, capability: str, expected: tuple[str, str, str]
) -> None:
    route = shipped.route(tenant="acme", data_classes=["internal"], capability=capability)
    assert route is not None
    assert (route.model_tier, route.model, route.rule) == expected
    assert route.policy.policy_id == "capability-routing"
    assert route.policy in shipped.refs
    assert route.reason


@pytest.mark.parametrize("capability", ["poetry", "", "Agentic", "deep-reasoning"])
def test_unknown_capability_is_not_routed(shipped: PolicySet, capability: str) -> None:
    assert shipped.route(tenant="acme", data_classes=["internal"], capability=capability) is None


def test_set_without_routing_policy_routes_nothing(tmp_path: Path) -> None:
    policy_set = load_texts(tmp_path, residency=residency())
    assert policy_set.route(tenant="acme", data_classes=["x"], capability="agentic") is None


# --- loading errors ---------------------------------------------------------------------------


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    text = residency().replace("version: 1\n", "version: [1\n")
    error = load_error(tmp_path, residency=text)
    assert error.file == "residency.yaml"
    assert error.line is not None
    assert error.line >= line_of(text, "version: [1")
    assert "is not valid YAML" in str(error)
    assert str(error).startswith(f"residency.yaml:{error.line}: ")


def test_tab_indentation_is_invalid_yaml(tmp_path: Path) -> None:
    text = residency().replace("  - id: allow-all", "\t- id: allow-all")
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line) == ("residency.yaml", line_of(text, "\t- id"))
    assert "is not valid YAML" in error.reason


def test_duplicate_key_names_the_duplicate_line(tmp_path: Path) -> None:
    text = residency(rule("r1", extra="    effect: deny"))
    error = load_error(tmp_path, residency=text)
    assert error.file == "residency.yaml"
    assert error.line == line_of(text, "effect: deny")
    assert "key 'effect' appears twice" in error.reason


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    text = residency() + "version: 2\n"
    error = load_error(tmp_path, residency=text)
    assert error.line == line_of(text, "version:", occurrence=2)
    assert "key 'version' appears twice" in error.reason


def test_unknown_key_in_rule_names_rule_and_line(tmp_path: Path) -> None:
    text = residency(rule("first"), rule("second", extra="    colour: red"))
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, "colour: red"),
        "second",
    )
    assert "rules.1.colour" in error.reason
    assert "Extra inputs are not permitted" in error.reason
    assert f"residency.yaml:{error.line}, rule 'second': " in str(error)


def test_reroute_without_to(tmp_path: Path) -> None:
    text = residency(rule("first"), rule("move", effect="reroute"))
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, "id: move"),
        "move",
    )
    assert "'to' (a set name) is required for reroute" in error.reason


def test_to_on_an_allow_rule(tmp_path: Path) -> None:
    text = residency(rule("stay", to="anywhere"))
    error = load_error(tmp_path, residency=text)
    assert (error.line, error.rule) == (line_of(text, "id: stay"), "stay")
    assert "only for reroute" in error.reason


def test_to_naming_an_unknown_set(tmp_path: Path) -> None:
    sets = "    eu:\n      jurisdictions: [eu]\n"
    text = residency(rule("move", effect="reroute", to="nope"), sets=sets)
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, "to: nope"),
        "move",
    )
    assert "'to: nope' names no set of this policy" in error.reason


def test_to_naming_a_set_of_non_regions(tmp_path: Path) -> None:
    sets = "    tenants: [acme, contoso]\n"
    text = residency(rule("move", effect="reroute", to="tenants"), sets=sets)
    error = load_error(tmp_path, residency=text)
    assert (error.line, error.rule) == (line_of(text, "to: tenants"), "move")
    assert "holds acme, which is not a catalogue region" in error.reason


def test_set_selecting_no_region(tmp_path: Path) -> None:
    sets = "    martian:\n      jurisdictions: [mars]\n"
    text = residency(sets=sets)
    error = load_error(tmp_path, residency=text)
    assert error.file == "residency.yaml"
    # The line of the selector's body (the node the set name maps to).
    assert error.line == line_of(text, "jurisdictions: [mars]")
    assert error.rule is None
    assert "set 'martian' selects no catalogue region" in error.reason


def test_cel_syntax_error(tmp_path: Path) -> None:
    text = residency(rule("first", "tenant == 'a'"), rule("broken", "tenant =="))
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, 'when: "tenant =="'),
        "broken",
    )
    assert "CEL syntax error" in error.reason


def test_cel_syntax_error_in_applies_when(tmp_path: Path) -> None:
    text = residency(applies_when="'eu' in")
    error = load_error(tmp_path, residency=text)
    assert (error.line, error.rule) == (line_of(text, "applies_when:"), None)
    assert "CEL syntax error" in error.reason


@pytest.mark.parametrize("when", ["tenant + 1 == 2", "data_classes > 3", "size(tenant) > 'x'"])
def test_cel_type_error_is_caught_at_load(tmp_path: Path, when: str) -> None:
    text = residency(rule("first", "tenant == 'a'"), rule("typed", when))
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, json.dumps(when)),
        "typed",
    )
    assert "CEL type error" in error.reason


def test_unknown_variable_lists_known_names(tmp_path: Path) -> None:
    text = residency(rule("paint", "colour == 'red'"))
    error = load_error(tmp_path, residency=text)
    assert (error.line, error.rule) == (line_of(text, "colour =="), "paint")
    assert "unknown name(s) colour" in error.reason
    for name in ("data_classes", "jurisdiction", "tenant", "transfer_basis", "tiers"):
        assert name in error.reason


def test_macro_variables_are_not_unknown_names(tmp_path: Path) -> None:
    text = residency(rule("any-health", "data_classes.exists(d, d == 'health')"), rule("rest"))
    policy_set = load_texts(tmp_path, residency=text)
    decision = policy_set.decide(Facts("acme", ("health",), "aws", "us-east-1"))
    assert decision.matched_rules == ("residency/any-health",)


def test_undefined_set(tmp_path: Path) -> None:
    sets = "    eu:\n      jurisdictions: [eu]\n"
    text = residency(rule("in-set", "location in sets.nope"), sets=sets)
    error = load_error(tmp_path, residency=text)
    assert (error.line, error.rule) == (line_of(text, "sets.nope"), "in-set")
    assert "sets.nope is not defined" in error.reason


def test_non_bool_condition(tmp_path: Path) -> None:
    text = residency(rule("stringy", "tenant"))
    error = load_error(tmp_path, residency=text)
    assert (error.line, error.rule) == (line_of(text, 'when: "tenant"'), "stringy")
    assert "not true/false" in error.reason


def test_duplicate_rule_ids(tmp_path: Path) -> None:
    text = residency(rule("same", "tenant == 'a'"), rule("other"), rule("same"))
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, "id: same", occurrence=2),
        "same",
    )
    assert "rule id is used twice" in error.reason


def test_two_catalogues(tmp_path: Path) -> None:
    error = load_error(tmp_path, residency=residency(), regions_2=REGIONS.replace("id: r", "id: s"))
    assert (error.file, error.line, error.rule) == (None, None, None)
    assert "exactly one region catalogue" in error.reason
    assert "regions.yaml" in error.reason
    assert "regions-2.yaml" in error.reason


def test_no_catalogue(tmp_path: Path) -> None:
    directory = write_set(tmp_path / "p", {"residency.yaml": residency()})
    with pytest.raises(PolicyError, match="exactly one region catalogue, found: none"):
        load_policy_set(directory)


def test_no_residency_policy(tmp_path: Path) -> None:
    error = load_error(tmp_path)
    assert error.file is None
    assert "at least one residency policy" in error.reason


def test_duplicate_policy_ids_across_files(tmp_path: Path) -> None:
    error = load_error(tmp_path, a=residency(policy_id="eu"), b=residency(policy_id="eu"))
    assert (error.file, error.line) == ("b.yaml", 2)
    assert "policy id 'eu' is also used by a.yaml" in error.reason


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"], ids=["empty", "nl", "comment"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line) == ("residency.yaml", 1)
    assert error.reason == "is empty"


@pytest.mark.parametrize("text", ["- kind: residency\n", "just text\n", "42\n"])
def test_non_mapping_document(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line) == ("residency.yaml", 1)
    assert "must be a YAML mapping" in error.reason


def test_wrong_kind(tmp_path: Path) -> None:
    text = "# a policy\n\n" + residency().replace("kind: residency", "kind: policy")
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line) == ("residency.yaml", 3)
    assert "kind must be one of regions, residency, routing, got 'policy'" in error.reason


def test_missing_kind(tmp_path: Path) -> None:
    text = residency().replace("kind: residency\n", "")
    error = load_error(tmp_path, residency=text)
    assert error.line == 1
    assert "got None" in error.reason


def test_non_text_key(tmp_path: Path) -> None:
    text = residency() + "1: one\n"
    error = load_error(tmp_path, residency=text)
    assert error.line == line_of(text, "1: one")
    assert "keys must be text" in error.reason


def test_bad_field_value_names_the_line(tmp_path: Path) -> None:
    text = REGIONS.replace("country: BE", "country: belgium")
    directory = write_set(tmp_path / "p", {"regions.yaml": text, "residency.yaml": residency()})
    with pytest.raises(PolicyError) as caught:
        load_policy_set(directory)
    assert (caught.value.file, caught.value.line) == ("regions.yaml", line_of(text, "belgium"))
    assert "regions.2.country" in caught.value.reason


def test_region_listed_twice(tmp_path: Path) -> None:
    text = REGIONS + "  - provider: aws\n    region: eu-west-1\n    country: IE\n"
    text += "    jurisdiction: eu\n    tiers: [haiku]\n"
    directory = write_set(tmp_path / "p", {"regions.yaml": text, "residency.yaml": residency()})
    with pytest.raises(PolicyError, match="region aws/eu-west-1 is listed twice"):
        load_policy_set(directory)


def test_directory_with_no_yaml(tmp_path: Path) -> None:
    directory = write_set(tmp_path / "p", {"README.md": "# nothing\n", "notes.txt": "x"})
    with pytest.raises(PolicyError) as caught:
        load_policy_set(directory)
    assert (caught.value.file, caught.value.line) == (str(directory), None)
    assert "holds no *.yaml policy documents" in caught.value.reason


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is not a directory") as caught:
        load_policy_set(tmp_path / "absent")
    assert caught.value.file == str(tmp_path / "absent")


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    text = residency()
    text += "#" * (MAX_POLICY_BYTES - len(text.encode())) + "x\n"
    assert len(text.encode()) > MAX_POLICY_BYTES
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line) == ("residency.yaml", None)
    assert f"is larger than {MAX_POLICY_BYTES} bytes" in error.reason


def test_file_at_the_size_limit_loads(tmp_path: Path) -> None:
    text = residency()
    text += "#" * (MAX_POLICY_BYTES - len(text.encode()) - 1) + "\n"
    assert len(text.encode()) == MAX_POLICY_BYTES
    load_texts(tmp_path, residency=text)


def test_non_utf8_file(tmp_path: Path) -> None:
    directory = write_set(tmp_path / "p", {"regions.yaml": REGIONS})
    (directory / "residency.yaml").write_bytes(residency().encode() + b"# \xff\xfe\n")
    with pytest.raises(PolicyError, match="is not UTF-8 text") as caught:
        load_policy_set(directory)
    assert caught.value.file == "residency.yaml"


@pytest.mark.parametrize(
    "tail",
    [
        "extra: &base\n  a: 1\nother:\n  <<: *base\n",
        "other: !Ref something\n",
        "other: !!int ten\n",
        "other: !!timestamp yesterday\n",
    ],
    ids=["merge-key", "unknown-tag", "bad-int-tag", "bad-timestamp-tag"],
)
def test_yaml_construction_errors_are_policy_errors(tmp_path: Path, tail: str) -> None:
    error = load_error(tmp_path, residency=residency() + tail)
    assert error.file == "residency.yaml"
    assert error.line is not None


# --- fail closed ------------------------------------------------------------------------------


def test_no_rule_matched_is_denied(tmp_path: Path) -> None:
    text = residency(rule("acme-only", "tenant == 'acme'"), policy_id="narrow")
    policy_set = load_texts(tmp_path, residency=text)
    decision = policy_set.decide(Facts("contoso", ("internal",), "aws", "us-east-1"))
    assert decision.outcome == "deny"
    assert decision.matched_rules == ("narrow/no-rule-matched",)
    assert "failing closed" in decision.reasons[0]
    assert policy_set.decide(Facts("acme", ("internal",), "aws", "us-east-1")).outcome == "allow"


def test_no_policy_applies_is_denied(tmp_path: Path) -> None:
    text = residency(applies_when="'health' in data_classes")
    policy_set = load_texts(tmp_path, residency=text)
    decision = policy_set.decide(Facts("acme", ("internal",), "aws", "us-east-1"))
    assert decision.outcome == "deny"
    assert decision.matched_rules == ("residency/no-policy-applies",)
    assert policy_set.decide(Facts("acme", ("health",), "aws", "us-east-1")).outcome == "allow"


def test_reroute_with_no_acceptable_target_is_denied(tmp_path: Path) -> None:
    sets = "    eu:\n      jurisdictions: [eu]\n"
    boundary = residency(
        rule("inside", "jurisdiction == 'eu'"),
        rule("move", effect="reroute", to="eu"),
        policy_id="boundary",
        sets=sets,
    )
    us_only = residency(rule("us", "country == 'US'"), policy_id="us-only")
    policy_set = load_texts(tmp_path, boundary=boundary, us_only=us_only)
    decision = policy_set.decide(Facts("acme", ("internal",), "aws", "us-east-1"))
    assert decision.outcome == "deny"
    assert (decision.chosen_provider, decision.chosen_region) == (None, None)
    assert decision.matched_rules == ("boundary/move", "us-only/us")
    assert decision.reasons[-1] == (
        "no region of the reroute sets satisfies every applicable policy"
    )


def test_reroute_prefers_candidate_provider_then_set_order(tmp_path: Path) -> None:
    sets = "    eu: [gcp/europe-west1, aws/eu-west-1]\n"
    boundary = residency(
        rule("inside", "jurisdiction == 'eu'"),
        rule("move", effect="reroute", to="eu"),
        sets=sets,
    )
    policy_set = load_texts(tmp_path, residency=boundary)
    from_aws = policy_set.decide(Facts("acme", ("x",), "aws", "us-east-1"))
    assert (from_aws.outcome, from_aws.chosen_provider, from_aws.chosen_region) == (
        "reroute",
        "aws",
        "eu-west-1",
    )
    from_gcp = policy_set.decide(Facts("acme", ("x",), "gcp", "us-east5"))
    assert (from_gcp.chosen_provider, from_gcp.chosen_region) == ("gcp", "europe-west1")


def test_reroute_skips_targets_that_another_policy_denies(tmp_path: Path) -> None:
    sets = "    eu:\n      jurisdictions: [eu]\n"
    boundary = residency(
        rule("inside", "jurisdiction == 'eu'"),
        rule("move", effect="reroute", to="eu"),
        policy_id="boundary",
        sets=sets,
    )
    tiers = residency(
        rule("offered", "model_tier == '' || model_tier in tiers"),
        rule("not-offered", effect="deny"),
        policy_id="tiers",
    )
    policy_set = load_texts(tmp_path, boundary=boundary, tiers=tiers)
    sonnet = policy_set.decide(Facts("acme", ("x",), "gcp", "us-east5", "sonnet"))
    assert (sonnet.chosen_provider, sonnet.chosen_region) == ("gcp", "europe-west1")
    # gcp/europe-west1 offers no opus: the reroute leaves the candidate's provider.
    opus = policy_set.decide(Facts("acme", ("x",), "gcp", "us-east5", "opus"))
    assert (opus.outcome, opus.chosen_provider, opus.chosen_region) == (
        "reroute",
        "aws",
        "eu-west-1",
    )
    assert opus.matched_rules == ("boundary/move", "tiers/offered")


def test_runtime_error_the_probe_cannot_see_is_a_denial(tmp_path: Path) -> None:
    # int('x') fails only for tenant 'x'; the load-time probe uses tenant 'probe'.
    text = residency(rule("numeric", "tenant == 'x' && int(tenant) == 1"), rule("rest"))
    policy_set = load_texts(tmp_path, residency=text)
    decision = policy_set.decide(Facts("x", ("a",), "aws", "us-east-1"))
    assert decision.outcome == "deny"
    assert decision.matched_rules == ("residency/numeric",)
    assert decision.reasons[0].startswith("rule could not be evaluated: ")
    assert policy_set.decide(Facts("y", ("a",), "aws", "us-east-1")).matched_rules == (
        "residency/rest",
    )


@pytest.mark.parametrize(
    "when",
    [
        "tenant == 'x' && data_classes[5] == 'a'",
        "tenant == 'x' && 1 / (size(tenant) - 1) == 1",
        "tenant == 'x' && 9223372036854775807 + size(tenant) > 0",
    ],
    ids=["index-out-of-range", "division-by-zero", "overflow"],
)
def test_runtime_error_of_any_kind_is_a_denial(tmp_path: Path, when: str) -> None:
    text = residency(rule("fragile", when), rule("rest"))
    policy_set = load_texts(tmp_path, residency=text)
    decision = policy_set.decide(Facts("x", ("a",), "aws", "us-east-1"))
    assert decision.outcome == "deny"
    assert decision.matched_rules == ("residency/fragile",)
    assert decision.reasons[0].startswith("rule could not be evaluated: ")
    assert policy_set.decide(Facts("y", ("a",), "aws", "us-east-1")).outcome == "allow"


def test_probe_failure_of_any_kind_is_a_policy_error(tmp_path: Path) -> None:
    text = residency(rule("fragile", "data_classes[5] == 'a'"))
    error = load_error(tmp_path, residency=text)
    assert (error.file, error.line, error.rule) == (
        "residency.yaml",
        line_of(text, "data_classes[5]"),
        "fragile",
    )
    assert "index out of bounds" in error.reason


def test_fact_also_used_as_macro_variable_is_current(tmp_path: Path) -> None:
    text = residency(
        rule("shadow", "tenant == 'acme' && data_classes.exists(tenant, tenant == 'internal')")
    )
    policy_set = load_texts(tmp_path, residency=text)
    assert policy_set.decide(Facts("acme", ("internal",), "aws", "us-east-1")).outcome == "allow"


# --- memoisation and threads ------------------------------------------------------------------


def sample_facts(policy_set: PolicySet) -> list[Facts]:
    facts = []
    for n, info in enumerate(policy_set.catalogue.regions):
        for tenant, classes in (
            ("contoso-eu", ("eu_personal",)),
            ("contoso-eu", ("eu_personal", "health")),
            ("us-federal", ("internal",)),
            ("acme", ("government",)),
            ("acme", ("public",)),
        ):
            tier = (None, "opus", "sonnet", "haiku")[n % 4]
            basis = ("none", "scc", "adequacy", "derogation", "bcr")[n % 5]
            facts.append(Facts(tenant, classes, info.provider, info.region, tier, basis))
    facts.append(Facts("acme", ("internal",), "aws", "mars-1"))
    facts.append(Facts("acme", (), "aws", "us-east-1"))
    return facts


def test_decide_equals_decide_uncached(shipped: PolicySet) -> None:
    for facts in sample_facts(shipped):
        first = shipped.decide(facts)
        assert first == shipped.decide_uncached(facts)
        assert shipped.decide(facts) is first  # memoised


def test_decisions_are_the_same_from_several_threads(shipped: PolicySet) -> None:
    facts = sample_facts(shipped) * 3
    # A fresh set, so the worker threads build their own contexts and nothing is memoised.
    policy_set = load_policy_set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(policy_set.decide_uncached, facts))
        memoised = list(pool.map(policy_set.decide, facts))
    serial = [shipped.decide_uncached(f) for f in facts]
    assert threaded == serial
    assert memoised == serial
    with ThreadPoolExecutor(max_workers=4) as pool:
        routes = list(
            pool.map(
                lambda c: policy_set.route(tenant="acme", data_classes=["x"], capability=c),
                [*ROUTES, "unknown"] * 10,
            )
        )
    assert [r.model_tier if r else None for r in routes] == ["opus", "sonnet", "haiku", None] * 10
