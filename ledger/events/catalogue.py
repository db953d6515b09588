"""The event catalogue: which payload model reads each (type, schema version), and how old
versions are upcast to the current one.

Guarantees: every model is a frozen pydantic model with ``extra="forbid"``; a payload is read
through exactly one registered model; an entry written under version 1 of a type still reads
after version 2 exists, through the registered upcasters (``v1 → v2 → …``), without the stored
bytes ever changing. An unknown type or version is a :class:`~ledger.errors.ValidationError`,
never a silent pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pydantic
from pydantic import BaseModel, ConfigDict

from ledger.errors import ValidationError

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Part(BaseModel):
    """A frozen, strict piece of a payload (a price line, a milestone …)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Part):
    """Base of every event payload. Subclasses set ``TYPE``, ``VERSION`` and ``SUMMARY``."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = ""
    # Personal payload fields (stored only encrypted, DESIGN §2.5) and the field naming the
    # data subject whose key encrypts them.
    PERSONAL: ClassVar[tuple[str, ...]] = ()
    SUBJECT: ClassVar[str | None] = None

    def payload(self) -> dict[str, Any]:
        """The payload as ``append`` stores it: JSON values, decimals and times as text."""
        return self.model_dump(mode="json", exclude_none=True)


@dataclass
class Catalogue:
    """Maps (type, version) to a payload model, with upcasters between versions."""

    _models: dict[tuple[str, int], type[Event]] = field(default_factory=dict)
    _upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)
    _personal: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)

    def register(self, model: type[Event], *, upcast_from_previous: Upcaster | None = None) -> None:
        """Add a model; a version above 1 needs the upcaster from the version before it."""
        key = (model.TYPE, model.VERSION)
        if key in self._models:
            raise ValueError(f"{model.TYPE} v{model.VERSION} is registered twice")
        if model.VERSION > 1:
            if (model.TYPE, model.VERSION - 1) not in self._models or not upcast_from_previous:
                raise ValueError(
                    f"{model.TYPE} v{model.VERSION} needs v{model.VERSION - 1} and an upcaster"
                )
            self._upcasters[(model.TYPE, model.VERSION - 1)] = upcast_from_previous
        self._models[key] = model
        if model.PERSONAL:
            if model.SUBJECT not in model.PERSONAL:
                raise ValueError(f"{model.TYPE}: SUBJECT must name one of its PERSONAL fields")
            self._personal[model.TYPE] = (model.PERSONAL, model.SUBJECT)
        else:
            self._personal.pop(model.TYPE, None)

    def types(self) -> list[str]:
        return sorted({event_type for event_type, _ in self._models})

    def latest(self, event_type: str) -> type[Event]:
        versions = [v for t, v in self._models if t == event_type]
        if not versions:
            raise ValidationError(
                f"unknown event type '{event_type}'; known types: {', '.join(self.types())}",
                field="type",
            )
        return self._models[(event_type, max(versions))]

    def personal(self, event_type: str) -> tuple[tuple[str, ...], str] | None:
        """The personal fields of a known type and its subject field, or None."""
        return self._personal.get(event_type)  # kept by register: the newest version's

    def model(self, event_type: str, version: int) -> type[Event]:
        self.latest(event_type)  # names the type when it is unknown
        model = self._models.get((event_type, version))
        if model is None:
            raise ValidationError(
                f"{event_type} has no schema version {version}", field="schema_version"
            )
        return model

    def validate(self, event_type: str, version: int, payload: Mapping[str, Any]) -> Event:
        """Validate a payload as written (no upcasting); errors name the payload field."""
        model = self.model(event_type, version)
        try:
            return model.model_validate(payload)
        except pydantic.ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ValidationError(
                error["msg"], field=f"payload.{where}" if where else "payload"
            ) from None

    def upcast(self, event_type: str, version: int, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A stored payload in the current version's shape, without validating it again (it
        was validated when it was appended): for readers that go through many entries. An
        unknown type or version raises, like :meth:`read`."""
        latest = self.latest(event_type).VERSION
        self.model(event_type, version)
        current = dict(payload)
        while version < latest:
            current = self._upcasters[(event_type, version)](current)
            version += 1
        return current

    def read(self, event_type: str, version: int, payload: Mapping[str, Any]) -> Event:
        """Read a stored payload as the current version of its type, upcasting on the way."""
        current = dict(payload)
        latest = self.latest(event_type).VERSION
        self.model(event_type, version)
        while version < latest:
            current = self._upcasters[(event_type, version)](current)
            version += 1
        return self.validate(event_type, version, current)

    def describe(self) -> list[dict[str, Any]]:
        """One line per type: name, current version, all versions, summary."""
        rows = []
        for event_type in self.types():
            model = self.latest(event_type)
            versions = sorted(v for t, v in self._models if t == event_type)
            rows.append(
                {
                    "type": event_type,
                    "schema_version": model.VERSION,
                    "versions": versions,
                    "summary": model.SUMMARY,
                }
            )
        return rows

    def json_schema(self, event_type: str, version: int | None = None) -> dict[str, Any]:
        """The JSON Schema of the payload that ``append`` takes for this type."""
        model = self.latest(event_type) if version is None else self.model(event_type, version)
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://pactledger.example/schemas/{event_type}/v{model.VERSION}.json"
        schema["title"] = f"{event_type} v{model.VERSION} payload"
        return schema


def build_catalogue(models: Iterable[type[Event]]) -> Catalogue:
    catalogue = Catalogue()
    for model in models:
        catalogue.register(model)
    return catalogue
