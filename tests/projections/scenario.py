"""A deterministic, realistic mixed ledger: the workload projectors are tested on.

:func:`fill_ledger` appends about ``entries`` entries through :meth:`Ledger.append`, so every
one is admitted as in production (typed by the catalogue, priced from the list in force,
citing published policies). What it writes, all ``occurred_at`` within ten days of October
2026 (UTC) except the policies, which :func:`publish_policies` stamps with the append time:

* the shipped policies, and two versions of one price list (v2, with other rates, takes effect
  in the middle of the period and is published a day before);
* requests of four tenants: ``acme`` (internal data, US regions), ``globex`` (mostly EU
  personal data, sometimes health data or an SCC transfer basis), ``us-federal`` (a government
  tenant that ``sovereign-government`` keeps in AWS GovCloud) and ``initech`` (APAC), each
  with its business units, cost centres and applications. A request is usually a
  ``ResidencyDecided`` made with the real policies on stream ``request:<id>`` and an
  ``InferenceRouted`` placed where the decision put it, citing the decision; a few percent are
  deliberately wrong (served elsewhere, served though denied, served undecided, decided but
  never served, refused), some are retried, some re-decided;
* five capacity tranches (GB200/GB300 NVL72) from contract to delivery, delay, SLA credit and
  retirement, one in each tranche status, with routings naming a tranche only after it was
  delivered, in its tenant's requests placed at its location; two benchmarks; one erasure
  recorded on a request's stream.

Arrival order is mixed on purpose: most routings follow their decision in the same batch, some
come one or more batches later, and for a few requests the routing is appended before the
decision (in the same batch or a batch earlier). A projection's result must not depend on it.

The :class:`Scenario` returned says what was written and, independently of any projection,
which ``view_residency`` status each request must get and which status each tranche.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ledger.app.governance import decision_entry, publish_policies
from ledger.app.service import Ledger
from ledger.policy import Decision, Facts, PolicySet, load_policy_set
from tests.domain import TIERS
from tests.projections.timeline import SPAN, START, TRANCHES, Tranche, fixed_entries, stamp

RESIDENCY_STATUSES = ("compliant", "violation", "denied_but_served", "no_decision", "not_served")
VIOLATIONS = ("violation", "denied_but_served", "no_decision")
PRICED_PROVIDERS = ("aws", "azure", "gcp")  # what the price list covers
UNKNOWN_LOCATION = ("aws", "mx-central-1")  # not in the region catalogue: always denied


@dataclass(frozen=True)
class TenantProfile:
    name: str
    weight: int
    locations: tuple[str, ...]  # candidate "provider/region", drawn uniformly
    data_classes: tuple[tuple[str, ...], ...]
    transfer_bases: tuple[str, ...]
    charge_to: tuple[tuple[str, str, str], ...]  # business unit, cost centre, application


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _charges(text: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((unit, centre, app) for unit, centre, app in (c.split() for c in text.split(",")))


TENANTS = (
    TenantProfile(
        "acme",
        5,
        _words(
            "aws/us-east-1 aws/us-west-2 azure/eastus2 gcp/us-east5 gcp/us-central1 aws/us-west-1"
        ),
        (("internal",), ("internal", "source_code")),
        ("none",),
        _charges(
            "research cc-4410 contract-review, engineering cc-5120 code-assist, "
            "support cc-6230 chat-triage"
        ),
    ),
    TenantProfile(
        "globex",
        4,
        _words(
            "aws/eu-central-1 aws/eu-west-1 gcp/europe-west1 azure/swedencentral aws/us-east-1 "
            "gcp/europe-west4 azure/eastus2"
        ),
        (("eu_personal",), ("eu_personal",), ("eu_personal", "health"), ("internal",)),
        ("none", "none", "none", "scc"),
        _charges(
            "retail cc-100 customer-chat, hr cc-210 cv-screening, finance cc-330 invoice-extraction"
        ),
    ),
    TenantProfile(
        "us-federal",  # in sovereign-government's government_tenants
        2,
        _words("aws/us-gov-west-1 aws/us-gov-east-1 aws/us-gov-west-1 aws/us-east-1"),
        (("internal",), ("government",)),
        ("none",),
        _charges("benefits cc-fed-01 case-summary, records cc-fed-02 foia-redaction"),
    ),
    TenantProfile(
        "initech",
        2,
        _words("aws/ap-northeast-1 aws/ap-southeast-2 gcp/asia-southeast1"),
        (("internal",),),
        ("none",),
        _charges("sales cc-7001 lead-scoring, ops cc-7002 ticket-routing"),
    ),
)
_PROFILES = {profile.name: profile for profile in TENANTS}
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
MODEL_WEIGHTS = (50, 35, 15)


@dataclass(frozen=True)
class Scenario:
    """What :func:`fill_ledger` appended, and what the views must say about it."""

    seed: int
    entries: int  # appended by this call, policies included
    batches: int
    counts: dict[str, int]  # entries per type
    statuses: dict[str, str]  # request id -> expected view_residency status
    tranche_statuses: dict[str, str]  # tranche id -> expected view_tranches status
    tenants: tuple[str, ...]
    erased_request: str  # the request whose stream holds a SubjectErased

    def requests(self, status: str) -> list[str]:
        return sorted(r for r, s in self.statuses.items() if s == status)

    @property
    def violations(self) -> dict[str, list[str]]:
        """The requests made wrong on purpose, by violation status."""
        return {status: self.requests(status) for status in VIOLATIONS}


# --- planning requests -----------------------------------------------------------------------

# Kinds of request: how it is decided and served, and the status that must follow.
KIND_STATUS = {
    "served": "compliant",
    "retried": "compliant",  # an error, then served again at the same place
    "refused_retry": "compliant",  # refused, then served: the refusal does not count
    "redecided": "compliant",  # denied (unknown region), decided again, served there
    "elsewhere": "violation",
    "denied_served": "denied_but_served",
    "undecided": "no_decision",
    "unserved": "not_served",
    "refused": "not_served",
}

# How often each kind is drawn for a request the policies allowed (cumulative bounds; the rest
# are "served"), and how often each arrival order for a request with decision and routing.
KINDS = (
    ("elsewhere", 0.025),
    ("unserved", 0.045),
    ("refused", 0.055),
    ("refused_retry", 0.065),
    ("undecided", 0.08),
    ("retried", 0.10),
    ("redecided", 0.11),
)
ORDERS = (("deferred", 0.08), ("reversed", 0.11), ("decision_late", 0.13))

# The first requests are these, so that even a small ledger has every case and arrival order.
FORCED = [
    line.split()
    for line in """
    served        inline        acme       aws/us-east-1      claude-sonnet-4-5 internal    none
    elsewhere     inline        acme       aws/us-east-1      claude-sonnet-4-5 internal    none
    denied_served inline        us-federal aws/us-east-1      claude-sonnet-4-5 government  none
    undecided     inline        acme       gcp/us-east5       claude-haiku-4-5  internal    none
    unserved      inline        globex     aws/eu-west-1      claude-sonnet-4-5 eu_personal none
    refused       inline        acme       azure/eastus2      claude-opus-4-1   internal    none
    served        reversed      globex     aws/us-east-1      claude-sonnet-4-5 eu_personal none
    elsewhere     decision_late globex     aws/us-east-1      claude-haiku-4-5  eu_personal none
    denied_served reversed      acme       aws/us-west-1      claude-opus-4-1   internal    none
    served        deferred      initech    aws/ap-northeast-1 claude-sonnet-4-5 internal    none
    redecided     inline        us-federal aws/us-gov-west-1  claude-haiku-4-5  internal    none
    refused_retry inline        acme       aws/us-west-2      claude-sonnet-4-5 internal    none
    unserved      decision_late acme       aws/us-west-1      claude-opus-4-1   internal    none
    """.strip().splitlines()
]


@dataclass
class _Plan:
    request_id: str
    profile: TenantProfile
    model: str
    charge: tuple[str, str, str]
    decisions: list[tuple[Facts, Decision, str]]  # as recorded, in order (maybe none)
    routes: list[tuple[str, str, str]]  # provider, region, status
    order: str  # inline | deferred | reversed | decision_late
    kind: str

    @property
    def size(self) -> int:
        return len(self.decisions) + len(self.routes)


def _plan(rng: random.Random, policies: PolicySet, index: int) -> _Plan:
    if index < len(FORCED):
        kind, order, tenant, location, model, data_class, basis = FORCED[index]
        data: tuple[str, ...] = (data_class,)
        profile = _PROFILES[tenant]
        charge = profile.charge_to[index % len(profile.charge_to)]
    else:
        profile = rng.choices(TENANTS, weights=[t.weight for t in TENANTS])[0]
        model = rng.choices(MODELS, weights=MODEL_WEIGHTS)[0]
        location = rng.choice(profile.locations)
        data = rng.choice(profile.data_classes)
        basis = rng.choice(profile.transfer_bases)
        charge = rng.choice(profile.charge_to)
        kind = order = ""
    provider, region = location.split("/")
    facts = Facts(profile.name, data, provider, region, TIERS[model], basis)
    decision = policies.decide(facts)
    if not kind:
        kind = _draw_kind(rng, decision)
    request_id = f"req-{index:06d}"
    plan = _Plan(request_id, profile, model, charge, [], [], order or "inline", kind)
    chosen = (decision.chosen_provider or provider, decision.chosen_region or region)
    decided = (facts, decision, f"dec-{index:06d}")
    if kind == "redecided":
        first = Facts(profile.name, data, *UNKNOWN_LOCATION, TIERS[model], basis)
        plan.decisions = [(first, policies.decide(first), f"dec-{index:06d}-a"), decided]
    elif kind != "undecided":
        plan.decisions = [decided]
    if kind in ("served", "redecided", "undecided"):
        plan.routes = [(*chosen, "ok")]
    elif kind == "retried":
        plan.routes = [(*chosen, rng.choice(("error", "timeout"))), (*chosen, "ok")]
    elif kind == "refused_retry":
        plan.routes = [(*chosen, "refused"), (*chosen, "ok")]
    elif kind == "refused":
        plan.routes = [(*chosen, "refused")]
    elif kind == "denied_served":
        plan.routes = [(provider, region, "ok")]
    elif kind == "elsewhere":
        other = _elsewhere(rng, policies, facts, chosen, profile)
        plan.routes = [(*chosen, "ok"), (*other, "ok")] if rng.random() < 0.4 else [(*other, "ok")]
    if not order and plan.decisions and plan.routes:
        plan.order = _draw(rng, ORDERS, default="inline")
    return plan


def _draw_kind(rng: random.Random, decision: Decision) -> str:
    if decision.outcome == "deny":
        return _draw(rng, (("denied_served", 0.12),), default="unserved")
    return _draw(rng, KINDS, default="served")


def _draw(rng: random.Random, table: tuple[tuple[str, float], ...], *, default: str) -> str:
    """The first name whose cumulative bound the roll is under."""
    roll = rng.random()
    return next((name for name, below in table if roll < below), default)


def _elsewhere(
    rng: random.Random,
    policies: PolicySet,
    facts: Facts,
    chosen: tuple[str, str],
    profile: TenantProfile,
) -> tuple[str, str]:
    """Somewhere priced that offers the tier but is not where the decision placed it: the
    candidate itself when the decision rerouted it, else another of the tenant's regions."""
    if (facts.provider, facts.region) != chosen:
        return facts.provider, facts.region
    offered = [
        (info.provider, info.region)
        for info in policies.catalogue.regions
        if info.provider in PRICED_PROVIDERS
        and facts.model_tier in info.tiers
        and (info.provider, info.region) != chosen
    ]
    mine = [loc for loc in offered if f"{loc[0]}/{loc[1]}" in profile.locations]
    return rng.choice(mine or offered)


# --- entries ---------------------------------------------------------------------------------


def _decision_entries(plan: _Plan, at: datetime) -> list[dict[str, Any]]:
    entries = []
    for k, (facts, decision, decision_id) in enumerate(plan.decisions):
        when = at - timedelta(seconds=2 * (len(plan.decisions) - 1 - k))
        entries.append(
            decision_entry(
                facts,
                decision,
                request_id=plan.request_id,
                decision_id=decision_id,
                occurred_at=stamp(when),
            )
        )
    return entries


def _route_entries(rng: random.Random, plan: _Plan, at: datetime) -> list[dict[str, Any]]:
    entries = []
    business_unit, cost_center, application = plan.charge
    for k, (provider, region, status) in enumerate(plan.routes):
        when = at + timedelta(milliseconds=400 + 20_000 * k + rng.randrange(0, 3000))
        input_tokens = rng.randint(300, 24_000)
        payload: dict[str, Any] = {
            "request_id": plan.request_id,
            "business_unit": business_unit,
            "cost_center": cost_center,
            "application": application,
            "model_tier": TIERS[plan.model],
            "model": plan.model,
            "provider": provider,
            "region": region,
            "input_tokens": input_tokens,
            "output_tokens": 0 if status == "refused" else rng.randint(40, 3000),
            "status": status,
            "latency_ms": rng.randint(150, 30_000),
        }
        if status != "refused" and rng.random() < 0.3:
            payload["cached_tokens"] = rng.randint(0, input_tokens // 2)
        if plan.decisions:
            payload["decision_id"] = plan.decisions[-1][2]
        tranche = _tranche_for(plan, provider, region, status, at)
        if tranche is not None and rng.random() < 0.7:
            payload["tranche_id"] = tranche.tranche_id
            payload["rack_family"] = tranche.rack_family
        entries.append(
            {
                "type": "InferenceRouted",
                "stream": f"request:{plan.request_id}",
                "tenant": plan.profile.name,
                "occurred_at": stamp(when),
                "payload": payload,
            }
        )
    return entries


def _tranche_for(
    plan: _Plan, provider: str, region: str, status: str, at: datetime
) -> Tranche | None:
    if status != "ok" or plan.kind in ("elsewhere", "denied_served"):
        return None
    for tranche in TRANCHES:
        if (
            tranche.tenant == plan.profile.name
            and (tranche.provider, tranche.region) == (provider, region)
            and tranche.serving(at)
        ):
            return tranche
    return None


class _Emitter:
    """The append order: entries in time order, some held back until a later batch."""

    def __init__(self, rng: random.Random, batch: int) -> None:
        self.rng, self.batch = rng, batch
        self.out: list[dict[str, Any]] = []
        self._held: list[tuple[int, int, dict[str, Any]]] = []
        self._count = 0

    def emit(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.out.append(entry)
            while self._held and self._held[0][0] <= len(self.out):
                self.out.append(heapq.heappop(self._held)[2])

    def hold(self, entries: list[dict[str, Any]]) -> None:
        """Emit ``entries`` in a later batch than the one being filled now."""
        release = (len(self.out) // self.batch + 1) * self.batch
        release += self.rng.randrange(0, max(1, self.batch // 3))
        for entry in entries:
            self._count += 1
            heapq.heappush(self._held, (release, self._count, entry))

    def flush(self) -> list[dict[str, Any]]:
        while self._held:
            self.out.append(heapq.heappop(self._held)[2])
        return self.out


def _arrange(emitter: _Emitter, plan: _Plan, decided: list[Any], routed: list[Any]) -> None:
    if plan.order == "deferred":
        emitter.emit(decided)
        emitter.hold(routed)
    elif plan.order == "reversed":
        emitter.emit(routed + decided)
    elif plan.order == "decision_late":
        emitter.emit(routed)
        emitter.hold(decided)
    else:
        emitter.emit(decided + routed)


def fill_ledger(ledger: Ledger, *, entries: int, seed: int = 7, batch: int = 500) -> Scenario:
    """Append about ``entries`` entries (at least the forced cases) in batches of ``batch``."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    policies = load_policy_set()
    published = publish_policies(ledger, policies)
    appended = sum(1 for p in published if p.status == "published")
    rng = random.Random(seed)

    fixed_count = len(fixed_entries("req-000000", "acme"))
    plans: list[_Plan] = []
    planned = appended + fixed_count
    while len(plans) < len(FORCED) or planned < entries:
        plans.append(_plan(rng, policies, len(plans)))
        planned += plans[-1].size
    erased = next(p for p in plans[len(FORCED) :] + plans if p.kind == "served")
    fixed = fixed_entries(erased.request_id, erased.profile.name)

    emitter = _Emitter(rng, batch)
    slot = SPAN / len(plans)
    next_fixed = 0
    for index, plan in enumerate(plans):
        jitter = timedelta(milliseconds=rng.randrange(0, int(slot.total_seconds() * 800)))
        at = START + slot * index + timedelta(seconds=5) + jitter
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        while next_fixed < len(fixed) and fixed[next_fixed][0] <= at:
            emitter.emit([fixed[next_fixed][1]])
            next_fixed += 1
        _arrange(emitter, plan, _decision_entries(plan, at), _route_entries(rng, plan, at))
    emitter.emit([entry for _, entry in fixed[next_fixed:]])
    ordered = emitter.flush()

    batches = 0
    for first in range(0, len(ordered), batch):
        ledger.append(ordered[first : first + batch])
        batches += 1
    counts = Counter(entry["type"] for entry in ordered)
    if appended:
        counts["PolicyPublished"] += appended
    return Scenario(
        seed=seed,
        entries=appended + len(ordered),
        batches=batches,
        counts=dict(sorted(counts.items())),
        statuses={plan.request_id: KIND_STATUS[plan.kind] for plan in plans},
        tranche_statuses={t.tranche_id: t.status for t in TRANCHES},
        tenants=tuple(t.name for t in TENANTS),
        erased_request=erased.request_id,
    )
