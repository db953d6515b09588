"""Residency decisions per second, in process, on one core, with the shipped policies.

What it measures, in one run (default 100,000 decisions per row, one thread):

1. ``pactledger/stream`` — :meth:`PolicySet.decide` over a realistic request stream: a few
   tenants (an EU tenant sending EU personal data, a US tenant, a government tenant), every
   catalogue region plus 2 % unknown ones, the three model tiers, mostly no transfer basis.
   ``decide`` memoises by facts, as it runs in the API; the stream has a few thousand distinct
   fact combinations, so most decisions are cache hits after the first pass.
2. ``pactledger/uncached`` — :meth:`PolicySet.decide_uncached` over the same stream: every
   decision evaluated, CEL conditions and all (the cost of a cold cache).
3. ``cel-per-call/uncached`` — the peer a hand-rolled evaluator would be: the same policies'
   CEL conditions evaluated with ``cel.evaluate(source, dict)`` (parse + evaluate per call, a
   fresh context per call), first-match per policy, on the same stream. It returns only the
   per-policy verdicts (no reroute search), so it does less work than row 2.

The target (issue 3) is at least 20,000 decisions/s on one core for the stream. Outcomes are
checked: rows 1 and 2 must agree decision for decision, and the mix of outcomes is reported.

Run it from the repository root::

    .venv/bin/python -m benchmarks.decisions
    .venv/bin/python -m benchmarks.decisions --decisions 20000 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import cel

from ledger.policy import Facts, PolicySet, load_policy_set
from ledger.policy.document import ResidencyPolicyDoc

TARGET = 20_000
TENANTS = [  # tenant, data classes, weight
    ("contoso-eu", ("eu_personal",), 40),
    ("contoso-eu", ("eu_personal", "health"), 5),
    ("contoso-us", ("internal",), 35),
    ("contoso-us", ("public",), 10),
    ("us-federal", ("government",), 10),
]
TIERS = [None, "opus", "sonnet", "haiku"]
BASES = ["none"] * 8 + ["scc", "adequacy"]


def request_stream(policy_set: PolicySet, count: int, *, seed: int) -> list[Facts]:
    rng = random.Random(seed)
    regions = [(r.provider, r.region) for r in policy_set.catalogue.regions]
    weights = [w for *_, w in TENANTS]
    stream = []
    for _ in range(count):
        tenant, classes, _ = rng.choices(TENANTS, weights)[0]
        provider, region = (
            rng.choice(regions)
            if rng.random() > 0.02
            else ("aws", f"xx-nowhere-{rng.randint(1, 9)}")
        )
        stream.append(
            Facts(tenant, classes, provider, region, rng.choice(TIERS), rng.choice(BASES))
        )
    return stream


def naive_peer(policy_set: PolicySet) -> Callable[[Facts], list[str]]:
    """First-match verdicts per policy with ``cel.evaluate`` per call (no compilation kept)."""
    policies = [
        s.document for s in policy_set.sources if isinstance(s.document, ResidencyPolicyDoc)
    ]
    sets = {
        p.id: {name: list(policy_set._residency[i].sets[name]) for name in p.sets}
        for i, p in enumerate(policies)
    }

    def verdicts(facts: Facts) -> list[str]:
        info = policy_set.region(facts.provider, facts.region)
        if info is None:
            return ["deny"]
        found = []
        for policy in policies:
            context = {
                "tenant": facts.tenant,
                "data_classes": list(facts.data_classes),
                "provider": info.provider,
                "region": info.region,
                "location": info.location,
                "country": info.country,
                "jurisdiction": info.jurisdiction,
                "sovereign": info.sovereign,
                "tiers": list(info.tiers),
                "model_tier": facts.model_tier or "",
                "transfer_basis": facts.transfer_basis,
                "sets": sets[policy.id],
            }
            if not cel.evaluate(policy.applies_when, context):
                continue
            for rule in policy.rules:
                if cel.evaluate(rule.when, context):
                    found.append(rule.effect)
                    break
        return found

    return verdicts


def timed(action: Callable[[Facts], Any], stream: Sequence[Facts]) -> tuple[float, list[Any]]:
    began = time.perf_counter()
    results = [action(facts) for facts in stream]
    return time.perf_counter() - began, results


def run(decisions: int, seed: int) -> dict[str, Any]:
    policy_set = load_policy_set()
    stream = request_stream(policy_set, decisions, seed=seed)
    distinct = len(set(stream))
    cached_seconds, cached = timed(policy_set.decide, stream)
    uncached_seconds, uncached = timed(policy_set.decide_uncached, stream)
    if cached != uncached:
        raise SystemExit("decide and decide_uncached disagree: a bug, not a benchmark result")
    peer_count = min(decisions, 20_000)  # the peer is slow; its rate is per decision anyway
    peer_seconds, _ = timed(naive_peer(policy_set), stream[:peer_count])
    rates = {
        "pactledger/stream": decisions / cached_seconds,
        "pactledger/uncached": decisions / uncached_seconds,
        "cel-per-call/uncached": peer_count / peer_seconds,
    }
    return {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "threads": 1,
        },
        "decisions": decisions,
        "distinct_facts": distinct,
        "outcomes": dict(Counter(d.outcome for d in cached)),
        "results": [
            {"name": name, "unit": "decisions/s", "value": round(rate)}
            for name, rate in rates.items()
        ],
        "ratios": {
            "uncached_vs_cel_per_call": round(
                rates["pactledger/uncached"] / rates["cel-per-call/uncached"], 1
            ),
        },
        "target": {
            "decisions_per_s": TARGET,
            "stream_met": rates["pactledger/stream"] >= TARGET,
            "uncached_met": rates["pactledger/uncached"] >= TARGET,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args.decisions, args.seed)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{report['decisions']:,} decisions, {report['distinct_facts']:,} distinct facts")
    print(f"outcomes: {report['outcomes']}")
    for row in report["results"]:
        print(f"  {row['name']:<24} {row['value']:>12,} {row['unit']}")
    print(f"uncached / cel-per-call: {report['ratios']['uncached_vs_cel_per_call']}×")
    target = report["target"]
    print(
        f"target {TARGET:,}/s: stream {'met' if target['stream_met'] else 'NOT met'}, "
        f"uncached {'met' if target['uncached_met'] else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
