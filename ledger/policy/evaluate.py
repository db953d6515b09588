"""Evaluating residency and routing policies: pure, deterministic, fail-closed.

A :class:`PolicySet` is one region catalogue, one or more residency policies and at most one
routing policy, compiled once. ``decide(facts)`` returns a :class:`Decision`; a denial is a
value, never an exception. The rules, in order:

1. Facts must be complete (tenant, at least one data class, provider, region) and the region
   must be in the catalogue; otherwise the decision is ``deny``.
2. A residency policy *applies* when its ``applies_when`` holds. Within an applicable policy
   the first rule whose ``when`` holds gives the policy's verdict; when none holds, the
   verdict is ``deny`` (fail closed).
3. No applicable policy → ``deny``. Any ``deny`` verdict → ``deny``. Otherwise any ``reroute``
   → ``reroute`` to the first region of the rerouting rules' sets (the candidate's provider
   first) where every applicable policy allows; when no region qualifies → ``deny``.
   Otherwise ``allow``.
4. A condition that fails at evaluation time (it cannot be a type error: those are caught at
   load by probing every condition) counts as a ``deny`` verdict naming the rule.

CEL variables: ``tenant``, ``data_classes`` (list), ``provider``, ``region``, ``location``
(``provider/region``), ``country``, ``jurisdiction``, ``sovereign`` (bool), ``tiers`` (model
tiers offered in the region), ``model_tier`` (``""`` when not given), ``transfer_basis``
(``"none"`` when not given), and ``sets`` (the policy's named sets). Routing rules see
``tenant``, ``data_classes`` and ``capability``.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cel

from ledger.errors import PolicyError
from ledger.policy.document import (
    PolicyRef,
    PolicySource,
    RegionCatalogueDoc,
    RegionInfo,
    RegionSelector,
    ResidencyPolicyDoc,
    RoutingPolicyDoc,
)

Outcome = Literal["allow", "deny", "reroute"]
TRANSFER_BASES = ("adequacy", "scc", "bcr", "derogation", "none")

RESIDENCY_VARIABLES = frozenset(
    {
        "tenant",
        "data_classes",
        "provider",
        "region",
        "location",
        "country",
        "jurisdiction",
        "sovereign",
        "tiers",
        "model_tier",
        "transfer_basis",
        "sets",
    }
)
ROUTING_VARIABLES = frozenset({"tenant", "data_classes", "capability"})
_REQUEST_FACTS = frozenset({"tenant", "data_classes", "model_tier", "transfer_basis"})

_MACRO_BINDING = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)
_SET_REFERENCE = re.compile(r"\bsets\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Facts:
    """What is known about a request when it is placed."""

    tenant: str
    data_classes: tuple[str, ...]
    provider: str
    region: str
    model_tier: str | None = None
    transfer_basis: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.data_classes, tuple):  # facts are hashable: decisions memoise
            object.__setattr__(self, "data_classes", tuple(self.data_classes))

    def missing(self) -> list[str]:
        gaps = [name for name in ("tenant", "provider", "region") if not getattr(self, name)]
        if not self.data_classes:
            gaps.append("data_classes")
        if self.transfer_basis not in TRANSFER_BASES:
            gaps.append(f"transfer_basis (one of {', '.join(TRANSFER_BASES)})")
        return gaps


@dataclass(frozen=True)
class Decision:
    """The outcome of ``decide``: where the request may run, and why."""

    outcome: Outcome
    provider: str
    region: str
    chosen_provider: str | None
    chosen_region: str | None
    matched_rules: tuple[str, ...]
    reasons: tuple[str, ...]
    policies: tuple[PolicyRef, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "candidate": {"provider": self.provider, "region": self.region},
            "chosen": (
                {"provider": self.chosen_provider, "region": self.chosen_region}
                if self.chosen_provider
                else None
            ),
            "matched_rules": list(self.matched_rules),
            "reasons": list(self.reasons),
            "policies": [
                {"policy_id": ref.policy_id, "version": ref.version, "digest": ref.digest}
                for ref in self.policies
            ],
        }


@dataclass(frozen=True)
class Route:
    """The model tier and model a routing rule chose for a capability."""

    model_tier: str
    model: str
    rule: str
    reason: str
    policy: PolicyRef


@dataclass(frozen=True)
class _Verdict:
    rule: str  # "policy-id/rule-id"
    effect: Outcome
    reason: str
    to: tuple[str, ...] = ()


class _Condition:
    """One compiled CEL condition, checked at load for unknown names and non-bool results."""

    def __init__(
        self,
        source: PolicySource,
        expression: str,
        *,
        path: tuple[str | int, ...],
        rule: str | None,
        variables: frozenset[str],
        sets: Mapping[str, Any] | None = None,
    ) -> None:
        self.source, self.path, self.rule = source, path, rule
        try:
            self.program = cel.compile(expression)
        except Exception as exc:  # the CEL parser's errors are not one type
            raise self._error(f"CEL syntax error: {_first_line(exc)}") from None
        bound = set(_MACRO_BINDING.findall(expression))
        # A name bound by a macro is not a fact, unless it is also a fact's name (shadowing):
        # then the fact is passed too, so the expression always sees current values.
        self.names = frozenset(self.program.variables()) - (bound - variables) - {"sets"}
        unknown = sorted(self.names - variables - {"sets"})
        if unknown:
            raise self._error(
                f"unknown name(s) {', '.join(unknown)}; "
                f"conditions can use {', '.join(sorted(variables))}"
            )
        self.sets_used = frozenset(_SET_REFERENCE.findall(expression))
        for name in self.sets_used:
            if sets is None or name not in sets:
                raise self._error(f"sets.{name} is not defined in this policy's sets")

    def _error(self, message: str) -> PolicyError:
        return self.source.error(message, *self.path, rule=self.rule)

    def holds(self, context: cel.Context) -> bool:
        """Evaluate; raises _EvaluationError when the expression fails or is not a bool."""
        try:
            result = self.program.execute(context)
        except Exception as exc:  # the CEL runtime raises many kinds; each one fails closed
            raise _EvaluationError(_first_line(exc)) from None
        if not isinstance(result, bool):
            raise _EvaluationError(f"gave {type(result).__name__} {result!r}, not true/false")
        return result

    def probe(self, context: cel.Context, facts: str) -> None:
        try:
            self.holds(context)
        except _EvaluationError as exc:
            raise self._error(f"CEL type error for {facts}: {exc}") from None


class _EvaluationError(Exception):
    pass


@dataclass
class _HeldContext:
    """A CEL context and the request facts it holds.

    Converting a value into CEL costs microseconds: the region's facts and the policy's sets
    are put in once, and a request fact only when the policy reads it and it changed."""

    context: cel.Context
    request: dict[str, Any] = field(default_factory=dict)

    def give(self, request: Mapping[str, Any], names: Sequence[str]) -> None:
        held = self.request
        changed = {name: request[name] for name in names if held.get(name, _UNSET) != request[name]}
        if changed:
            held.update(changed)
            self.context.update(
                {n: list(v) if isinstance(v, tuple) else v for n, v in changed.items()}
            )


_UNSET = object()


@dataclass
class _Rule:
    id: str
    when: _Condition
    effect: Outcome
    reason: str
    to: tuple[str, ...]
    verdict: _Verdict  # what matching this rule gives (built once: verdicts are immutable)


@dataclass
class _Residency:
    source: PolicySource
    applies: _Condition
    rules: list[_Rule]
    sets: dict[str, tuple[str, ...]]
    names: frozenset[str] = frozenset()  # the fact variables its conditions read
    sets_used: frozenset[str] = frozenset()  # the sets its conditions read

    # The request facts among them, passed per decision: those applies_when reads first, the
    # rest only when the policy applies.
    applies_names: tuple[str, ...] = ()
    rule_names: tuple[str, ...] = ()
    no_match: _Verdict | None = None

    def __post_init__(self) -> None:
        self.names = self.applies.names.union(*(rule.when.names for rule in self.rules))
        self.sets_used = self.applies.sets_used.union(*(r.when.sets_used for r in self.rules))
        self.applies_names = tuple(sorted(self.applies.names & _REQUEST_FACTS))
        self.rule_names = tuple(sorted((self.names & _REQUEST_FACTS) - set(self.applies_names)))
        self.no_match = _Verdict(
            f"{self.id}/no-rule-matched",
            "deny",
            f"no rule of policy {self.id} matched: denied, failing closed",
        )

    @property
    def id(self) -> str:
        return self.source.document.id


@dataclass
class _Routing:
    source: PolicySource
    rules: Sequence[tuple[str, _Condition, str, str, str]]  # id, when, tier, model, reason


@dataclass
class PolicySet:
    """A compiled set of policy documents; thread-safe, evaluation does no I/O."""

    sources: tuple[PolicySource, ...]
    catalogue: RegionCatalogueDoc = field(init=False)
    refs: tuple[PolicyRef, ...] = field(init=False)
    _regions: dict[str, RegionInfo] = field(init=False)
    _residency: list[_Residency] = field(init=False)
    _routing: _Routing | None = field(init=False)
    cache_size: int = 65_536
    _local: threading.local = field(init=False, default_factory=threading.local)
    _memo: Callable[[Facts], Decision] = field(init=False)

    def __post_init__(self) -> None:
        catalogues = [s for s in self.sources if isinstance(s.document, RegionCatalogueDoc)]
        if len(catalogues) != 1:
            files = ", ".join(s.file for s in catalogues) or "none"
            raise PolicyError(f"a policy set needs exactly one region catalogue, found: {files}")
        _check_unique_ids(self.sources)
        catalogue = catalogues[0].document
        assert isinstance(catalogue, RegionCatalogueDoc)
        self.catalogue = catalogue
        # Every document of the set (catalogue included), by policy id: what a decision cites.
        self.refs = tuple(sorted((s.ref for s in self.sources), key=lambda r: r.policy_id))
        self._regions = {info.location: info for info in catalogue.regions}
        self._residency = [
            self._compile_residency(s)
            for s in self.sources
            if isinstance(s.document, ResidencyPolicyDoc)
        ]
        if not self._residency:
            raise PolicyError("a policy set needs at least one residency policy")
        routing = [s for s in self.sources if isinstance(s.document, RoutingPolicyDoc)]
        if len(routing) > 1:
            raise PolicyError(
                f"at most one routing policy, found: {', '.join(s.file for s in routing)}"
            )
        self._routing = self._compile_routing(routing[0]) if routing else None
        self._probe()
        self._memo = functools.lru_cache(maxsize=self.cache_size)(self.decide_uncached)

    # --- public ---------------------------------------------------------------------------

    def region(self, provider: str, region: str) -> RegionInfo | None:
        return self._regions.get(f"{provider}/{region}")

    def decide(self, facts: Facts) -> Decision:
        """Place a request: allow, deny or reroute, with the rules and reasons.

        Decisions are memoised by their facts (``decide`` is a pure function of the facts and
        the compiled set); :meth:`decide_uncached` always evaluates.
        """
        return self._memo(facts)

    def decide_uncached(self, facts: Facts) -> Decision:
        missing = facts.missing()
        if missing:
            return self._decision(
                facts,
                "deny",
                ["facts/incomplete"],
                [f"facts are incomplete ({', '.join(missing)}): denied, failing closed"],
            )
        info = self.region(facts.provider, facts.region)
        if info is None:
            return self._decision(
                facts,
                "deny",
                [f"{self.catalogue.id}/unknown-region"],
                [
                    f"{facts.provider}/{facts.region} is not in the region catalogue "
                    f"({self.catalogue.id} v{self.catalogue.version}): unknown regions are denied"
                ],
            )
        verdicts = self._verdicts(facts, info)
        matched = [v.rule for v in verdicts]
        if not verdicts:
            return self._decision(
                facts,
                "deny",
                ["residency/no-policy-applies"],
                ["no residency policy applies to this request: denied, failing closed"],
            )
        denials = [v for v in verdicts if v.effect == "deny"]
        if denials:
            return self._decision(facts, "deny", matched, [v.reason for v in denials])
        reroutes = [v for v in verdicts if v.effect == "reroute"]
        if not reroutes:
            return self._decision(
                facts, "allow", matched, [v.reason for v in verdicts], chosen=info
            )
        reasons = [v.reason for v in reroutes]
        target = self._reroute_target(facts, info, reroutes)
        if target is None:
            reasons.append("no region of the reroute sets satisfies every applicable policy")
            return self._decision(facts, "deny", matched, reasons)
        reasons.append(f"rerouted to {target.location}")
        return self._decision(facts, "reroute", matched, reasons, chosen=target)

    def route(self, *, tenant: str, data_classes: Sequence[str], capability: str) -> Route | None:
        """The first routing rule that holds for a capability; None when none does."""
        if self._routing is None:
            return None
        context = self._routing_context()
        context.update(
            {"tenant": tenant, "data_classes": list(data_classes), "capability": capability}
        )
        for rule_id, when, tier, model, reason in self._routing.rules:
            try:
                if when.holds(context):
                    rule = f"{self._routing.source.ref.policy_id}/{rule_id}"
                    return Route(tier, model, rule, reason, self._routing.source.ref)
            except _EvaluationError:
                return None
        return None

    # --- evaluation -----------------------------------------------------------------------

    def _verdicts(self, facts: Facts, info: RegionInfo) -> list[_Verdict]:
        request = {
            "tenant": facts.tenant,
            "data_classes": facts.data_classes,
            "model_tier": facts.model_tier or "",
            "transfer_basis": facts.transfer_basis,
        }
        contexts = self._contexts()
        verdicts = []
        for policy in self._residency:
            held = contexts.get((policy.id, info.location)) or self._new_context(policy, info)
            held.give(request, policy.applies_names)
            verdict = _verdict(policy, held, request)
            if verdict is not None:
                verdicts.append(verdict)
        return verdicts

    def _reroute_target(
        self, facts: Facts, info: RegionInfo, reroutes: list[_Verdict]
    ) -> RegionInfo | None:
        locations = list(dict.fromkeys(loc for v in reroutes for loc in v.to))
        locations.sort(key=lambda loc: not loc.startswith(f"{info.provider}/"))
        for location in locations:
            target = self._regions[location]
            if target is info:
                continue
            moved = Facts(
                facts.tenant,
                facts.data_classes,
                target.provider,
                target.region,
                facts.model_tier,
                facts.transfer_basis,
            )
            verdicts = self._verdicts(moved, target)
            if verdicts and all(v.effect == "allow" for v in verdicts):
                return target
        return None

    def _decision(
        self,
        facts: Facts,
        outcome: Outcome,
        matched: Iterable[str],
        reasons: Iterable[str],
        *,
        chosen: RegionInfo | None = None,
    ) -> Decision:
        return Decision(
            outcome=outcome,
            provider=facts.provider,
            region=facts.region,
            chosen_provider=chosen.provider if chosen else None,
            chosen_region=chosen.region if chosen else None,
            matched_rules=tuple(matched),
            reasons=tuple(reasons),
            policies=self.refs,
        )

    def _contexts(self) -> dict[tuple[str, str], _HeldContext]:
        """This thread's CEL contexts, one per (policy, region): contexts are mutable, so
        threads do not share them."""
        contexts: dict[tuple[str, str], _HeldContext] | None = getattr(
            self._local, "contexts", None
        )
        if contexts is None:
            contexts = self._local.contexts = {}
        return contexts

    def _new_context(self, policy: _Residency, info: RegionInfo) -> _HeldContext:
        # Executing a CEL program copies its context, so the context holds only what the
        # policy's conditions read: the region facts they name and the sets they use.
        region = {
            "provider": info.provider,
            "region": info.region,
            "location": info.location,
            "country": info.country,
            "jurisdiction": info.jurisdiction,
            "sovereign": info.sovereign,
            "tiers": list(info.tiers),
        }
        variables: dict[str, Any] = {k: v for k, v in region.items() if k in policy.names}
        if policy.sets_used:
            variables["sets"] = {name: list(policy.sets[name]) for name in policy.sets_used}
        held = _HeldContext(cel.Context(variables))
        self._contexts()[(policy.id, info.location)] = held
        return held

    def _routing_context(self) -> cel.Context:
        context = self._local.__dict__.get("routing")
        if context is None:
            context = self._local.routing = cel.Context()
        assert isinstance(context, cel.Context)
        return context

    # --- compilation ----------------------------------------------------------------------

    def _compile_residency(self, source: PolicySource) -> _Residency:
        document = source.document
        assert isinstance(document, ResidencyPolicyDoc)
        sets = {name: self._resolve_set(source, name, spec) for name, spec in document.sets.items()}
        rules = []
        for index, rule in enumerate(document.rules):
            if rule.to is not None and rule.to not in sets:
                raise source.error(
                    f"'to: {rule.to}' names no set of this policy",
                    "rules",
                    index,
                    "to",
                    rule=rule.id,
                )
            to = sets.get(rule.to, ()) if rule.to else ()
            unknown = [loc for loc in to if loc not in self._regions]
            if unknown:
                raise source.error(
                    f"set '{rule.to}' holds {unknown[0]}, which is not a catalogue region "
                    "(reroute targets are provider/region)",
                    "rules",
                    index,
                    "to",
                    rule=rule.id,
                )
            when = _Condition(
                source,
                rule.when,
                path=("rules", index, "when"),
                rule=rule.id,
                variables=RESIDENCY_VARIABLES,
                sets=sets,
            )
            verdict = _Verdict(f"{document.id}/{rule.id}", rule.effect, rule.reason, to)
            rules.append(_Rule(rule.id, when, rule.effect, rule.reason, to, verdict))
        _check_unique_rules(source, [r.id for r in document.rules])
        applies = _Condition(
            source,
            document.applies_when,
            path=("applies_when",),
            rule=None,
            variables=RESIDENCY_VARIABLES,
            sets=sets,
        )
        return _Residency(source, applies, rules, sets)

    def _resolve_set(
        self, source: PolicySource, name: str, spec: tuple[str, ...] | RegionSelector
    ) -> tuple[str, ...]:
        if isinstance(spec, RegionSelector):
            members = tuple(i.location for i in self.catalogue.regions if spec.matches(i))
            if not members:
                raise source.error(f"set '{name}' selects no catalogue region", "sets", name)
            return members
        return spec

    def _compile_routing(self, source: PolicySource) -> _Routing:
        document = source.document
        assert isinstance(document, RoutingPolicyDoc)
        _check_unique_rules(source, [r.id for r in document.rules])
        rules = [
            (
                rule.id,
                _Condition(
                    source,
                    rule.when,
                    path=("rules", index, "when"),
                    rule=rule.id,
                    variables=ROUTING_VARIABLES,
                ),
                rule.model_tier,
                rule.model,
                rule.reason,
            )
            for index, rule in enumerate(document.rules)
        ]
        return _Routing(source, rules)

    def _probe(self) -> None:
        """Evaluate every condition against facts in every catalogue region, so a CEL type
        error (``tenant + 1``, ``data_classes > 3``) is refused at load, not at decision time.
        """
        data_classes = (["eu_personal"], ["public"], ["personal", "government"])
        tiers = ("", "opus", "sonnet", "haiku")
        for n, info in enumerate(self.catalogue.regions):
            request = {
                "tenant": "probe",
                "data_classes": data_classes[n % len(data_classes)],
                "model_tier": tiers[n % len(tiers)],
                "transfer_basis": TRANSFER_BASES[n % len(TRANSFER_BASES)],
            }
            described = f"{info.location} with data_classes {request['data_classes']}"
            for policy in self._residency:
                held = self._new_context(policy, info)
                held.give(request, [*policy.applies_names, *policy.rule_names])
                context = held.context
                policy.applies.probe(context, described)
                for rule in policy.rules:
                    rule.when.probe(context, described)
        if self._routing is not None:
            context = self._routing_context()
            for capability in ("deep_reasoning", "agentic", "high_volume_low_latency", ""):
                context.update(
                    {"tenant": "probe", "data_classes": ["public"], "capability": capability}
                )
                for _, when, *_ in self._routing.rules:
                    when.probe(context, f"capability '{capability}'")


def _verdict(policy: _Residency, held: _HeldContext, request: Mapping[str, Any]) -> _Verdict | None:
    context = held.context
    try:
        if not policy.applies.holds(context):
            return None
    except _EvaluationError as exc:
        return _Verdict(f"{policy.id}/applies_when", "deny", f"could not be evaluated: {exc}")
    held.give(request, policy.rule_names)
    for rule in policy.rules:
        try:
            if rule.when.holds(context):
                return rule.verdict
        except _EvaluationError as exc:
            return _Verdict(f"{policy.id}/{rule.id}", "deny", f"rule could not be evaluated: {exc}")
    return policy.no_match


def _check_unique_ids(sources: Sequence[PolicySource]) -> None:
    seen: dict[str, str] = {}
    for source in sources:
        policy_id = source.document.id
        if policy_id in seen:
            raise source.error(f"policy id '{policy_id}' is also used by {seen[policy_id]}", "id")
        seen[policy_id] = source.file


def _check_unique_rules(source: PolicySource, rule_ids: list[str]) -> None:
    seen: set[str] = set()
    for index, rule_id in enumerate(rule_ids):
        if rule_id in seen:
            raise source.error("rule id is used twice", "rules", index, "id", rule=rule_id)
        seen.add(rule_id)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
