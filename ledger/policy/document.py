"""Policy documents: parsing YAML text into validated, frozen models.

Three kinds share one envelope (``kind``, ``id``, ``version``, ``description``):

* ``regions`` — the region catalogue: provider, region, country, jurisdiction, sovereign flag
  and the model tiers offered there;
* ``residency`` — ``applies_when`` (a CEL condition saying which requests the policy governs),
  named ``sets`` of regions or tenants, and ordered ``rules`` (CEL ``when``, effect ``allow``,
  ``deny`` or ``reroute`` ``to`` a set, a ``reason`` a person can read);
* ``routing`` — ordered rules mapping request capabilities to a model tier and model.

Guarantees: a document is the exact text it was read from (``digest`` is the SHA-256 of that
text's UTF-8 bytes, which is what the ledger records); a malformed document raises
:class:`~ledger.errors.PolicyError` naming the file, the line and, where there is one, the
rule; unknown keys and duplicate keys are refused, never ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.errors import PolicyError

Provider = Literal["azure", "aws", "gcp", "anthropic"]
ModelTier = Literal["opus", "sonnet", "haiku"]
Effect = Literal["allow", "deny", "reroute"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]  # usable as ``sets.NAME``
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
PolicyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
RegionName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]  # fits ResidencyDecided.reasons
Condition = Annotated[str, Field(min_length=1, max_length=2000)]

MAX_POLICY_BYTES = 48_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionInfo(_Strict):
    provider: Provider
    region: RegionName
    name: Text | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    jurisdiction: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[a-z]{2,4})?$")]
    sovereign: bool = False
    tiers: Annotated[tuple[ModelTier, ...], Field(min_length=1)]

    @property
    def location(self) -> str:
        return f"{self.provider}/{self.region}"


class RegionSelector(_Strict):
    """A set of catalogue regions chosen by attributes (every given attribute must match)."""

    providers: tuple[Provider, ...] | None = None
    jurisdictions: tuple[str, ...] | None = None
    countries: tuple[str, ...] | None = None
    sovereign: bool | None = None

    def matches(self, info: RegionInfo) -> bool:
        return (
            (self.providers is None or info.provider in self.providers)
            and (self.jurisdictions is None or info.jurisdiction in self.jurisdictions)
            and (self.countries is None or info.country in self.countries)
            and (self.sovereign is None or info.sovereign == self.sovereign)
        )


class _Envelope(_Strict):
    id: PolicyId
    version: Annotated[int, Field(ge=1)]
    description: Annotated[str, Field(min_length=1, max_length=4000)]


class RegionCatalogueDoc(_Envelope):
    kind: Literal["regions"]
    regions: Annotated[tuple[RegionInfo, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_locations(self) -> RegionCatalogueDoc:
        seen: set[str] = set()
        for info in self.regions:
            if info.location in seen:
                raise ValueError(f"region {info.location} is listed twice")
            seen.add(info.location)
        return self


class ResidencyRule(_Strict):
    id: RuleId
    when: Condition
    effect: Effect
    to: Name | None = None
    reason: Text

    @model_validator(mode="after")
    def _reroute_has_target(self) -> ResidencyRule:
        if (self.effect == "reroute") != (self.to is not None):
            raise ValueError("'to' (a set name) is required for reroute and only for reroute")
        return self


class ResidencyPolicyDoc(_Envelope):
    kind: Literal["residency"]
    applies_when: Condition = "true"
    sets: Mapping[Name, tuple[str, ...] | RegionSelector] = Field(default_factory=dict)
    rules: Annotated[tuple[ResidencyRule, ...], Field(min_length=1)]


class RoutingRule(_Strict):
    id: RuleId
    when: Condition
    model_tier: ModelTier
    model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,99}$")]
    reason: Text


class RoutingPolicyDoc(_Envelope):
    kind: Literal["routing"]
    rules: Annotated[tuple[RoutingRule, ...], Field(min_length=1)]


Document = RegionCatalogueDoc | ResidencyPolicyDoc | RoutingPolicyDoc
_KINDS: dict[str, type[Document]] = {
    "regions": RegionCatalogueDoc,
    "residency": ResidencyPolicyDoc,
    "routing": RoutingPolicyDoc,
}


@dataclass(frozen=True)
class PolicyRef:
    """Which exact policy text made a decision."""

    policy_id: str
    version: int
    digest: str


@dataclass(frozen=True)
class PolicySource:
    """One policy document: where it came from, its exact text and what that text says."""

    file: str
    text: str
    document: Document
    lines: Mapping[tuple[str | int, ...], int]
    ref: PolicyRef

    @property
    def digest(self) -> str:
        return self.ref.digest

    def error(self, message: str, *path: str | int, rule: str | None = None) -> PolicyError:
        return PolicyError(message, file=self.file, line=_line_of(self.lines, path), rule=rule)


def _line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node of ``path`` that the text has."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_document(text: str, *, file: str) -> PolicySource:
    """Parse and validate one YAML policy document; PolicyError names file, line and rule."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"is larger than {MAX_POLICY_BYTES} bytes", file=file)
    data, lines = _load_yaml(text, file=file)
    if not isinstance(data, dict):
        raise PolicyError("must be a YAML mapping with kind, id, version", file=file, line=1)
    kind = data.get("kind")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise PolicyError(
            f"kind must be one of {', '.join(_KINDS)}, got {kind!r}",
            file=file,
            line=lines.get(("kind",), 1),
        )
    try:
        document = model.model_validate(data)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        path = tuple(p for p in error["loc"] if isinstance(p, (str, int)))
        raise PolicyError(
            f"{'.'.join(map(str, path)) or 'document'}: {error['msg']}",
            file=file,
            line=_line_of(lines, path),
            rule=_rule_at(data, path),
        ) from None
    ref = PolicyRef(document.id, document.version, digest_of(text))
    return PolicySource(file=file, text=text, document=document, lines=lines, ref=ref)


def _rule_at(data: Mapping[str, Any], path: tuple[str | int, ...]) -> str | None:
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rules = data.get("rules")
        if isinstance(rules, list) and path[1] < len(rules) and isinstance(rules[path[1]], dict):
            rule_id = rules[path[1]].get("id")
            return str(rule_id) if rule_id is not None else f"#{path[1] + 1}"
    return None


# --- YAML with line numbers -------------------------------------------------------------------


def _load_yaml(text: str, *, file: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(
            f"is not valid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    if node is None:
        raise PolicyError("is empty", file=file, line=1)
    lines: dict[tuple[str | int, ...], int] = {}
    constructor = yaml.SafeLoader("")
    return _construct(node, (), lines, constructor, file), lines


def _scalar(constructor: yaml.SafeLoader, node: yaml.Node, file: str) -> Any:
    """A scalar's value; merge keys, unknown tags and bad typed scalars (``!!int ten``) are
    refused with their line (PyYAML raises several exception types for them)."""
    try:
        return constructor.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
        raise PolicyError(
            f"is not valid policy YAML: {problem}", file=file, line=node.start_mark.line + 1
        ) from None


def _construct(
    node: yaml.Node,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    constructor: yaml.SafeLoader,
    file: str,
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                raise PolicyError(
                    "keys must be plain text (no merge keys or complex keys)",
                    file=file,
                    line=key_node.start_mark.line + 1,
                )
            key = _scalar(constructor, key_node, file)
            if not isinstance(key, str):
                raise PolicyError(
                    f"keys must be text, got {key!r}", file=file, line=key_node.start_mark.line + 1
                )
            if key in result:
                raise PolicyError(
                    f"key '{key}' appears twice", file=file, line=key_node.start_mark.line + 1
                )
            result[key] = _construct(value_node, (*path, key), lines, constructor, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, index), lines, constructor, file)
            for index, item in enumerate(node.value)
        ]
    if not isinstance(node, yaml.ScalarNode):  # pragma: no cover - compose yields no others
        raise PolicyError("holds an unsupported YAML node", file=file, line=lines[path])
    return _scalar(constructor, node, file)
