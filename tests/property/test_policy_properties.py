"""Hypothesis properties of the shipped policy set (ledger.policy).

For requests drawn from every catalogue region plus some unknown ones, the data classes,
tenants, model tiers and transfer bases the shipped policies talk about:

* ``decide`` never raises, cites every document, and names at least one rule and one reason;
* ``deny`` ⇔ no chosen location; ``allow`` ⇒ the candidate is chosen; ``reroute`` ⇒ another,
  catalogue, location is chosen and deciding there gives ``allow``;
* deciding is deterministic, and the memoised and uncached answers agree;
* EU personal data never lands outside the EU/EEA without an Art. 45-47 basis, and special
  category (health) EU personal data never does;
* a ``us-federal`` or ``government`` request never runs outside a US sovereign region.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.policy import Decision, Facts, PolicySet, load_policy_set

POLICY_SET: PolicySet = load_policy_set()

EU = ("eu", "eea")
LOCATIONS = [(info.provider, info.region) for info in POLICY_SET.catalogue.regions]
UNKNOWN = [("aws", "mars-1"), ("oracle", "us-east-1"), ("azure", "westeurope"), ("gcp", "")]
DATA_CLASSES = ("eu_personal", "health", "government", "public", "internal", "personal")
TENANTS = ("us-federal", "contoso-eu", "acme")
TIERS = (None, "opus", "sonnet", "haiku")
BASES = ("none", "adequacy", "scc", "bcr", "derogation")
SETTINGS = settings(max_examples=200, deadline=None)

locations = st.sampled_from(LOCATIONS + UNKNOWN)  # mostly catalogue regions
known_locations = st.sampled_from(LOCATIONS)
any_tenant = st.sampled_from(TENANTS)
bases_and_a_bad_one = st.sampled_from((*BASES, "consent"))


def facts_with(
    classes: st.SearchStrategy[list[str]],
    *,
    where: st.SearchStrategy[tuple[str, str]] = locations,
    tenants: st.SearchStrategy[str] = any_tenant,
    bases: st.SearchStrategy[str] = bases_and_a_bad_one,
) -> st.SearchStrategy[Facts]:
    return st.builds(
        lambda location, tenant, data_classes, tier, basis: Facts(
            tenant, tuple(data_classes), location[0], location[1], tier, basis
        ),
        where,
        tenants,
        classes,
        st.sampled_from(TIERS),
        bases,
    )


def classes_with(*required: str, without: str = "") -> st.SearchStrategy[list[str]]:
    """Data-class lists holding ``required``, never ``without``, in any order."""
    others = [c for c in DATA_CLASSES if c not in required and c != without]
    return st.lists(st.sampled_from(others), max_size=2, unique=True).flatmap(
        lambda extra: st.permutations([*required, *extra])
    )


any_facts = facts_with(st.lists(st.sampled_from(DATA_CLASSES), max_size=3, unique=True))
eu_personal_facts = facts_with(classes_with("eu_personal", without="health"), where=known_locations)
eu_health_facts = facts_with(
    classes_with("eu_personal", "health"), where=known_locations, bases=st.sampled_from(BASES)
)
federal_facts = facts_with(
    st.lists(st.sampled_from(DATA_CLASSES), min_size=1, max_size=3, unique=True),
    where=known_locations,
    tenants=st.just("us-federal"),
    bases=st.sampled_from(BASES),
)
government_data_facts = facts_with(
    classes_with("government"), where=known_locations, bases=st.sampled_from(BASES)
)


def placed(decision: Decision) -> str | None:
    """The jurisdiction the request would run in, None when denied."""
    if decision.chosen_provider is None or decision.chosen_region is None:
        return None
    info = POLICY_SET.region(decision.chosen_provider, decision.chosen_region)
    assert info is not None
    return info.jurisdiction


@SETTINGS
@given(any_facts)
def test_decide_never_raises_and_is_well_formed(facts: Facts) -> None:
    decision = POLICY_SET.decide(facts)
    assert decision.outcome in ("allow", "deny", "reroute")
    assert decision.policies == POLICY_SET.refs
    assert (decision.provider, decision.region) == (facts.provider, facts.region)
    assert decision.matched_rules
    assert decision.reasons
    assert all("/" in rule for rule in decision.matched_rules)


@SETTINGS
@given(any_facts)
def test_outcome_agrees_with_chosen_location(facts: Facts) -> None:
    decision = POLICY_SET.decide(facts)
    chosen = (decision.chosen_provider, decision.chosen_region)
    assert (decision.outcome == "deny") == (chosen == (None, None))
    assert (decision.chosen_provider is None) == (decision.chosen_region is None)
    if decision.outcome == "allow":
        assert chosen == (facts.provider, facts.region)
    if decision.outcome != "deny":
        assert POLICY_SET.region(facts.provider, facts.region) is not None
        assert not facts.missing()


@SETTINGS
@given(st.one_of(any_facts, eu_personal_facts, eu_health_facts))
def test_reroute_target_is_allowed_there(facts: Facts) -> None:
    decision = POLICY_SET.decide(facts)
    if decision.outcome != "reroute":
        return
    assert decision.chosen_provider is not None
    assert decision.chosen_region is not None
    chosen = (decision.chosen_provider, decision.chosen_region)
    assert chosen != (facts.provider, facts.region)
    target = POLICY_SET.region(*chosen)
    assert target is not None
    if facts.model_tier:
        assert facts.model_tier in target.tiers
    moved = Facts(facts.tenant, facts.data_classes, *chosen, facts.model_tier, facts.transfer_basis)
    again = POLICY_SET.decide(moved)
    assert again.outcome == "allow", again.reasons
    assert (again.chosen_provider, again.chosen_region) == chosen


@SETTINGS
@given(any_facts)
def test_decide_is_deterministic(facts: Facts) -> None:
    first = POLICY_SET.decide_uncached(facts)
    assert POLICY_SET.decide_uncached(facts) == first
    assert POLICY_SET.decide(facts) == first
    assert first.to_json() == POLICY_SET.decide_uncached(facts).to_json()


@SETTINGS
@given(eu_personal_facts)
def test_eu_personal_stays_in_boundary_without_a_basis(facts: Facts) -> None:
    jurisdiction = placed(POLICY_SET.decide(facts))
    if facts.transfer_basis not in ("adequacy", "scc", "bcr"):
        assert jurisdiction in (None, *EU)


@SETTINGS
@given(eu_personal_facts)
def test_eu_personal_in_boundary_is_never_moved(facts: Facts) -> None:
    info = POLICY_SET.region(facts.provider, facts.region)
    assert info is not None
    decision = POLICY_SET.decide(facts)
    if info.jurisdiction in EU:
        assert decision.outcome != "reroute"


@SETTINGS
@given(eu_health_facts)
def test_eu_health_data_never_leaves_whatever_the_basis(facts: Facts) -> None:
    assert placed(POLICY_SET.decide(facts)) in (None, *EU)


@SETTINGS
@given(st.one_of(federal_facts, government_data_facts))
def test_government_work_only_in_sovereign_regions(facts: Facts) -> None:
    decision = POLICY_SET.decide(facts)
    if decision.outcome == "deny":
        return
    assert decision.outcome == "allow"  # the sovereign policy never reroutes
    assert decision.chosen_provider is not None
    assert decision.chosen_region is not None
    info = POLICY_SET.region(decision.chosen_provider, decision.chosen_region)
    assert info is not None
    assert info.sovereign
    assert info.country == "US"
    assert "sovereign-government/sovereign-region" in decision.matched_rules


@SETTINGS
@given(st.sampled_from(LOCATIONS), st.sampled_from(TIERS))
def test_plain_internal_data_is_allowed_wherever_the_tier_is_offered(
    location: tuple[str, str], tier: str | None
) -> None:
    info = POLICY_SET.region(*location)
    assert info is not None
    decision = POLICY_SET.decide(Facts("acme", ("internal",), *location, model_tier=tier))
    offered = tier is None or tier in info.tiers
    assert decision.outcome == ("allow" if offered else "deny")
