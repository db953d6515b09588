"""The demo's enterprise: a deterministic scenario of governed inference on reserved capacity.

Contoso runs Claude Opus, Sonnet and Haiku through Azure, AWS and Google Cloud for four
tenants (an EU subsidiary handling personal data, a US company, an insurer and a US federal
agency), each with business units, cost centres and applications. It owns four capacity
tranches of NVIDIA GB200 and GB300 NVL72 racks in four regions, bought in stages. Over
``days`` days it serves ``requests`` requests:

* each application needs one capability (deep reasoning, agentic, high-volume low-latency);
  the routing policy turns it into a model tier, as the API's ``POST /v1/decisions/residency``
  does;
* load follows a diurnal curve (peak 14:00 UTC, quieter nights and weekends);
* every request's residency is decided by the shipped policies before it is routed: EU
  personal data aimed at a US region is rerouted into the EU, a government request outside
  a sovereign region is denied;
* a few requests are **misrouted**: served where the decision did not place them (or despite
  a denial), which the residency view must flag;
* the list prices change once, half-way (Haiku and Sonnet cheaper from version 2);
* requests served on reserved capacity name their tranche and rack family; the Stockholm
  tranche is **delivered late** (its first milestone slips three days), and the Virginia GB300
  tranche **delivers well below** its estimated throughput (its benchmarks measure ~55 % of
  the estimator's figure, below its SLA);
* EU support requests carry the end user's id and e-mail (personal data, stored encrypted);
  one of them, :data:`ERASED_SUBJECT`, asks to be erased at the end.

Guarantees: the same (seed, requests, days) gives the same entries, byte for byte (no clock,
no global random state); entries come out in ``occurred_at`` order; the expected anomalies
(misrouted request ids, the late and the under-delivering tranche) are returned with them, so
the demo's report can be checked against what was planted.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

from ledger.app.governance import decision_entry
from ledger.log.entry import format_time
from ledger.policy import Facts, PolicySet
from ledger.policy.evaluate import Route

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
PLATFORM = "contoso-platform"  # the tenant that buys capacity and publishes prices
PRICE_LIST = "claude-list"
ERASED_SUBJECT = "eu-user-0042"
ERASURE_REQUEST = "DSR-2026-0042"

# List prices per million tokens, USD: input, output, cache read. Version 2 (half-way) cuts
# Sonnet and Haiku.
PRICES = {
    1: {
        "claude-opus-4-1": ("15", "75", "1.50"),
        "claude-sonnet-4-5": ("3", "15", "0.30"),
        "claude-haiku-4-5": ("1", "5", "0.10"),
    },
    2: {
        "claude-opus-4-1": ("15", "75", "1.50"),
        "claude-sonnet-4-5": ("2.50", "12.50", "0.25"),
        "claude-haiku-4-5": ("0.80", "4", "0.08"),
    },
}


@dataclass(frozen=True)
class App:
    name: str
    capability: str
    weight: int
    personal: bool = False  # carries the end user's id and e-mail


@dataclass(frozen=True)
class Unit:
    name: str
    cost_center: str
    apps: tuple[App, ...]


@dataclass(frozen=True)
class Tenant:
    name: str
    data_classes: tuple[str, ...]
    weight: int
    units: tuple[Unit, ...]
    # Where its gateway sends requests, with weights: (provider, region, weight).
    placements: tuple[tuple[str, str, int], ...]


TENANTS = (
    Tenant(
        "contoso-eu",
        ("eu_personal",),
        5,
        (
            Unit("research", "cc-4410", (App("research-agent", "deep_reasoning", 2),)),
            Unit(
                "customer-support",
                "cc-5120",
                (
                    App("support-triage", "high_volume_low_latency", 6, personal=True),
                    App("support-copilot", "agentic", 2, personal=True),
                ),
            ),
            Unit("legal", "cc-6100", (App("contract-review", "deep_reasoning", 1),)),
        ),
        (
            ("azure", "swedencentral", 4),
            ("aws", "eu-central-1", 3),
            ("gcp", "europe-west4", 2),
            ("aws", "us-east-1", 1),  # the gateway's US default: rerouted into the EU
        ),
    ),
    Tenant(
        "contoso-us",
        ("internal",),
        4,
        (
            Unit("sales", "cc-2210", (App("email-drafting", "high_volume_low_latency", 4),)),
            Unit("engineering", "cc-3300", (App("code-assist", "agentic", 4),)),
            Unit("strategy", "cc-2400", (App("market-analysis", "deep_reasoning", 1),)),
        ),
        (("azure", "eastus2", 3), ("aws", "us-east-1", 4), ("gcp", "us-east5", 2)),
    ),
    Tenant(
        "fabrikam",
        ("internal",),
        2,
        (
            Unit("claims", "cc-7100", (App("claims-extraction", "high_volume_low_latency", 3),)),
            Unit("underwriting", "cc-7200", (App("risk-analysis", "deep_reasoning", 1),)),
        ),
        (("aws", "us-east-1", 2), ("azure", "eastus2", 1)),
    ),
    Tenant(
        "us-federal",
        ("government",),
        1,
        (
            Unit(
                "benefits",
                "cc-9100",
                (
                    App("benefits-qa", "agentic", 2),
                    App("form-extraction", "high_volume_low_latency", 3),
                ),
            ),
        ),
        (("aws", "us-gov-west-1", 8), ("aws", "us-gov-east-1", 3), ("aws", "us-east-1", 1)),
    ),
)

_TENANT_WEIGHTS = list(accumulate(t.weight for t in TENANTS))
_UNIT_WEIGHTS = {
    t.name: list(accumulate(sum(a.weight for a in u.apps) for u in t.units)) for t in TENANTS
}
_APP_WEIGHTS = {
    u.name: list(accumulate(a.weight for a in u.apps)) for t in TENANTS for u in t.units
}
_PLACEMENT_WEIGHTS = {t.name: list(accumulate(p[2] for p in t.placements)) for t in TENANTS}

# Token shapes per capability: (input range, output range, share of input read from cache).
SHAPES = {
    "deep_reasoning": ((4_000, 30_000), (800, 4_000), 0.3),
    "agentic": ((2_000, 16_000), (300, 2_000), 0.5),
    "high_volume_low_latency": ((200, 2_000), (20, 300), 0.2),
}


@dataclass(frozen=True)
class TrancheSpec:
    tranche_id: str
    provider: str
    region: str
    rack_family: str
    racks: int
    price_per_gpu_hour: str
    # (milestone, day due, racks); a late tranche slips ``delay_days`` on its first milestone.
    milestones: tuple[tuple[str, int, int], ...]
    delay_days: int = 0
    delivers: Decimal = Decimal("1.0")  # measured throughput ÷ the estimator's figure


TRANCHES = (
    TrancheSpec(
        "t-azure-eastus2-gb200", "azure", "eastus2", "gb200-nvl72", 4, "3.20",
        (("m1", 0, 2), ("m2", 6, 2)),
    ),
    TrancheSpec(
        "t-azure-swedencentral-gb200", "azure", "swedencentral", "gb200-nvl72", 2, "3.60",
        (("m1", 1, 2),), delay_days=3,
    ),
    TrancheSpec(
        "t-aws-us-east-1-gb300", "aws", "us-east-1", "gb300-nvl72", 2, "4.10",
        (("m1", 0, 1), ("m2", 4, 1)), delivers=Decimal("0.55"),
    ),
    TrancheSpec(
        "t-gcp-europe-west4-gb300", "gcp", "europe-west4", "gb300-nvl72", 2, "4.30",
        (("m1", 0, 2),),
    ),
)  # fmt: skip
GPUS_PER_RACK = 72
SLA_WORKLOAD = "mlperf-llama2-70b"
SLA_SHARE = Decimal("0.8")  # the SLA minimum is 80 % of the estimator's figure
CREDIT_RATE = Decimal("0.10")


@dataclass
class Scenario:
    """The entries, in ``occurred_at`` order, and what was planted in them."""

    entries: list[dict[str, Any]]
    start: datetime
    end: datetime
    requests: int
    outcomes: dict[str, int]
    misrouted: list[str]
    late_tranche: str
    under_delivering_tranche: str
    erased_subject: str = ERASED_SUBJECT
    erasure_request: str = ERASURE_REQUEST
    personal_requests: int = 0
    subject_requests: list[str] = field(default_factory=list)


# Estimated tokens/s/GPU of a rack for the SLA workload: given by the caller (the estimator),
# so that this module stays free of it and the benchmarks agree with what reconcile computes.
Capacity = Callable[[str], Decimal]


def build_scenario(
    policy_set: PolicySet,
    capacity: Capacity,
    *,
    seed: int = 7,
    requests: int = 50_000,
    days: int = 14,
) -> Scenario:
    """The whole scenario (see the module docstring)."""
    if requests < 1 or days < 1:
        raise ValueError("requests and days must be positive")
    rng = random.Random(seed)
    end = START + timedelta(days=days)
    timed: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(at: datetime, entry: dict[str, Any]) -> None:
        entry["occurred_at"] = format_time(at)
        timed.append((at, len(timed), entry))

    add(START, price_list(1, START))
    add(START + timedelta(days=days / 2), price_list(2, START + timedelta(days=days / 2)))
    delivered: dict[tuple[str, str], list[tuple[datetime, TrancheSpec]]] = {}
    for spec in TRANCHES:
        for at, entry in tranche_entries(spec, capacity, rng, days=days):
            add(at, entry)
            if entry["type"] == "TrancheDelivered":
                delivered.setdefault((spec.provider, spec.region), []).append((at, spec))

    plan = _Requests(policy_set, rng, seed, delivered)
    for n, at in enumerate(request_times(requests, days, rng)):
        for entry in plan.request(n, at, misroute=_misroute(n, requests)):
            add(at, entry)
    timed.sort(key=lambda item: (item[0], item[1]))
    return Scenario(
        entries=[entry for _, _, entry in timed],
        start=START,
        end=end,
        requests=requests,
        outcomes=dict(sorted(plan.outcomes.items())),
        misrouted=plan.misrouted,
        late_tranche=next(s.tranche_id for s in TRANCHES if s.delay_days),
        under_delivering_tranche=next(s.tranche_id for s in TRANCHES if s.delivers < 1),
        personal_requests=plan.personal,
        subject_requests=plan.subject_requests,
    )


def request_times(count: int, days: int, rng: random.Random) -> list[datetime]:
    """``count`` instants over ``days`` days on a diurnal curve (peak 14:00 UTC, nights at a
    fifth of it, weekends at half), sorted."""
    hours = days * 24
    weights = []
    for h in range(hours):
        at = START + timedelta(hours=h)
        daily = 0.2 + 0.8 * max(0.0, math.cos((at.hour - 14) / 24 * 2 * math.pi)) ** 2
        weights.append(daily * (0.5 if at.weekday() >= 5 else 1.0))
    total = sum(weights)
    exact = [count * w / total for w in weights]
    per_hour = [int(x) for x in exact]
    by_remainder = sorted(range(hours), key=lambda h: (-(exact[h] - per_hour[h]), h))
    for h in by_remainder[: count - sum(per_hour)]:
        per_hour[h] += 1
    times: list[datetime] = []
    for h, n in enumerate(per_hour):
        base = START + timedelta(hours=h)
        offsets = sorted(rng.randrange(3_600_000_000) for _ in range(n))
        times.extend(base + timedelta(microseconds=o) for o in offsets)
    return times


def price_list(version: int, effective_from: datetime) -> dict[str, Any]:
    prices = [
        {
            "model": model,
            "provider": provider,
            "input_per_million": rates[0],
            "output_per_million": rates[1],
            "cached_input_per_million": rates[2],
        }
        for model, rates in PRICES[version].items()
        for provider in ("azure", "aws", "gcp")
    ]
    return {
        "type": "PriceListPublished",
        "stream": f"price-list:{PRICE_LIST}",
        "tenant": PLATFORM,
        "idempotency_key": f"price-list:{PRICE_LIST}:v{version}",
        "payload": {
            "price_list_id": PRICE_LIST,
            "version": version,
            "effective_from": format_time(effective_from),
            "prices": prices,
        },
    }


def tranche_entries(
    spec: TrancheSpec, capacity: Capacity, rng: random.Random, *, days: int
) -> list[tuple[datetime, dict[str, Any]]]:
    """Contract, delays, deliveries and benchmarks of one tranche."""
    stream = {"stream": f"tranche:{spec.tranche_id}", "tenant": PLATFORM}
    gpus = spec.racks * GPUS_PER_RACK
    estimate = capacity(spec.rack_family)
    contract = {
        "tranche_id": spec.tranche_id,
        "provider": spec.provider,
        "region": spec.region,
        "rack_family": spec.rack_family,
        "racks": spec.racks,
        "gpus": gpus,
        "power_mw": str(Decimal("0.132") * spec.racks),
        "committed_usd": str(Decimal(spec.price_per_gpu_hour) * gpus * 24 * 365 * 3),
        "price_per_gpu_hour": spec.price_per_gpu_hour,
        "milestones": [
            {"name": name, "due": format_time(START + timedelta(days=day)), "racks": racks}
            for name, day, racks in spec.milestones
        ],
        "sla": {
            "reference_workload": SLA_WORKLOAD,
            "min_tokens_per_s_per_gpu": str((estimate * SLA_SHARE).quantize(Decimal(1))),
            "credit_rate": str(CREDIT_RATE),
        },
    }
    out: list[tuple[datetime, dict[str, Any]]] = [
        (START - timedelta(days=30), {"type": "TrancheContracted", **stream, "payload": contract})
    ]
    for index, (name, day, racks) in enumerate(spec.milestones):
        due = START + timedelta(days=day)
        at = due
        if index == 0 and spec.delay_days:
            at = due + timedelta(days=spec.delay_days)
            out.append(
                (
                    due - timedelta(days=1),
                    {
                        "type": "TrancheDelayed",
                        **stream,
                        "payload": {
                            "tranche_id": spec.tranche_id,
                            "milestone": name,
                            "original_due": format_time(due),
                            "new_due": format_time(at),
                            "reason": "liquid-cooling loop commissioning failed acceptance",
                        },
                    },
                )
            )
        if at >= START + timedelta(days=days):
            continue
        out.append(
            (
                at,
                {
                    "type": "TrancheDelivered",
                    **stream,
                    "payload": {
                        "tranche_id": spec.tranche_id,
                        "racks_delivered": racks,
                        "gpus_delivered": racks * GPUS_PER_RACK,
                        "delivered_at": format_time(at),
                        "milestone": name,
                    },
                },
            )
        )
        measured = estimate * spec.delivers * Decimal(rng.uniform(0.97, 1.04))
        out.append(
            (
                at + timedelta(hours=6),
                benchmark(spec, f"{spec.tranche_id}-{name}", measured, at + timedelta(hours=6)),
            )
        )
    return out


def benchmark(
    spec: TrancheSpec, benchmark_id: str, per_gpu: Decimal, at: datetime
) -> dict[str, Any]:
    gpus = GPUS_PER_RACK  # one rack under test
    return {
        "type": "BenchmarkRecorded",
        "stream": f"benchmark:{benchmark_id}",
        "tenant": PLATFORM,
        "payload": {
            "benchmark_id": benchmark_id,
            "tranche_id": spec.tranche_id,
            "rack_family": spec.rack_family,
            "model": "llama-2-70b",
            "precision": "fp4",
            "gpus": gpus,
            "workload": {
                "name": SLA_WORKLOAD,
                "input_tokens": 222,
                "output_tokens": 294,
                "scenario": "server",
            },
            "measured_tokens_per_s": str((per_gpu * gpus).quantize(Decimal("0.1"))),
            "harness_digest": hashlib.sha256(f"mlperf-v6.0:{benchmark_id}".encode()).hexdigest(),
            "measured_at": format_time(at),
        },
    }


def _misroute(n: int, requests: int) -> bool:
    """About one request in 5,000 (at least three) is served where it was not placed."""
    every = max(requests // max(3, requests // 5000), 1)
    return n % every == every // 2


class _Requests:
    def __init__(
        self,
        policy_set: PolicySet,
        rng: random.Random,
        seed: int,
        delivered: dict[tuple[str, str], list[tuple[datetime, TrancheSpec]]],
    ) -> None:
        self.policy_set, self.rng, self.seed, self.delivered = policy_set, rng, seed, delivered
        self.outcomes: dict[str, int] = {}
        self.misrouted: list[str] = []
        self.personal = 0
        self.subject_requests: list[str] = []
        self._routes: dict[tuple[str, str], Route] = {}

    def request(self, n: int, at: datetime, *, misroute: bool) -> list[dict[str, Any]]:
        rng = self.rng
        tenant = rng.choices(TENANTS, cum_weights=_TENANT_WEIGHTS)[0]
        if misroute:  # alternately EU personal data and a government workload
            tenant = TENANTS[0] if len(self.misrouted) % 2 == 0 else TENANTS[3]
        unit = rng.choices(tenant.units, cum_weights=_UNIT_WEIGHTS[tenant.name])[0]
        app = rng.choices(unit.apps, cum_weights=_APP_WEIGHTS[unit.name])[0]
        provider, region, _ = rng.choices(
            tenant.placements, cum_weights=_PLACEMENT_WEIGHTS[tenant.name]
        )[0]
        if misroute:
            provider, region = "aws", "us-east-1"  # the gateway's US default
        route = self._route(tenant, app.capability)
        request_id = f"req-{self.seed:03d}-{n:07d}"
        facts = Facts(tenant.name, tenant.data_classes, provider, region, route.model_tier)
        decision = self.policy_set.decide(facts)
        self.outcomes[decision.outcome] = self.outcomes.get(decision.outcome, 0) + 1
        decided = decision_entry(
            facts, decision, request_id=request_id, decision_id=f"dec-{request_id}"
        )
        served: tuple[str, str] | None = (
            None
            if decision.outcome == "deny"
            else (decision.chosen_provider or provider, decision.chosen_region or region)
        )
        if misroute:
            # Served where the gateway first aimed, whatever the decision said: EU personal
            # data in a US region (a violation), a government workload outside its sovereign
            # regions despite the denial (denied but served).
            self.misrouted.append(request_id)
            served = (provider, region)
        if served is None:
            return [decided]
        return [decided, self._routed(request_id, tenant, unit, app, route, served, at)]

    def _route(self, tenant: Tenant, capability: str) -> Route:
        key = (tenant.name, capability)
        if key not in self._routes:
            found = self.policy_set.route(
                tenant=tenant.name, data_classes=tenant.data_classes, capability=capability
            )
            assert found is not None  # every demo capability has a routing rule
            self._routes[key] = found
        return self._routes[key]

    def _routed(
        self,
        request_id: str,
        tenant: Tenant,
        unit: Unit,
        app: App,
        route: Route,
        served: tuple[str, str],
        at: datetime,
    ) -> dict[str, Any]:
        rng = self.rng
        (lo_in, hi_in), (lo_out, hi_out), cached_share = SHAPES[app.capability]
        tokens_in = int(math.exp(rng.uniform(math.log(lo_in), math.log(hi_in))))
        cached = int(tokens_in * cached_share) if rng.random() < 0.6 else 0
        payload: dict[str, Any] = {
            "request_id": request_id,
            "business_unit": unit.name,
            "cost_center": unit.cost_center,
            "application": app.name,
            "model_tier": route.model_tier,
            "model": route.model,
            "provider": served[0],
            "region": served[1],
            "decision_id": f"dec-{request_id}",
            "input_tokens": tokens_in - cached,
            "cached_tokens": cached,
            "output_tokens": int(math.exp(rng.uniform(math.log(lo_out), math.log(hi_out)))),
            "time_to_first_token_ms": rng.randint(150, 1_800),
            "latency_ms": rng.randint(400, 30_000),
        }
        tranche = self._tranche(served, at)
        if tranche is not None:
            payload["tranche_id"] = tranche.tranche_id
            payload["rack_family"] = tranche.rack_family
            payload["deployment"] = f"{served[0]}-{served[1]}-{route.model}"
        if app.personal:
            user = (  # one end user in a hundred or so is the one who will ask for erasure
                ERASED_SUBJECT if self.personal % 97 == 0 else f"eu-user-{rng.randrange(400):04d}"
            )
            payload["end_user_id"] = user
            payload["end_user_email"] = f"{user}@customers.contoso.example"
            self.personal += 1
            if user == ERASED_SUBJECT:
                self.subject_requests.append(request_id)
        return {
            "type": "InferenceRouted",
            "stream": f"request:{request_id}",
            "tenant": tenant.name,
            "idempotency_key": f"route-{request_id}",
            "payload": payload,
        }

    def _tranche(self, served: tuple[str, str], at: datetime) -> TrancheSpec | None:
        """The tranche serving this placement, if one has been delivered there by ``at``
        (most requests of such a region run on reserved capacity)."""
        found = [spec for when, spec in self.delivered.get(served, []) if when <= at]
        if not found or self.rng.random() < 0.2:
            return None
        return found[0]
