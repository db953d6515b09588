"""Entries: what a client submits (:class:`EntryInput`) and what the log seals.

Guarantees:

* An :class:`EntryInput` is strictly validated: unknown fields, naive datetimes, malformed
  identifiers and non-object payloads are refused with the field named.
* The sealed entry's ``entry_bytes`` are the RFC 8785 canonical JSON of
  ``{seq, event_id, stream, stream_version, type, schema_version, tenant, occurred_at,
  recorded_at, payload}`` plus ``idempotency_key`` when one was given. Times are UTC in the
  fixed form ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. These bytes are stored as they are and are the only
  input to the leaf hash; the other stored columns are copies for indexing that ``verify``
  checks against them.
* Canonical entries are at most :data:`MAX_ENTRY_BYTES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainValidator, PrivateAttr

from ledger.errors import ValidationError
from ledger.integrity.canonical import canonical_bytes

MAX_ENTRY_BYTES = 64 * 1024

TypeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")]
# Identifiers are printable ASCII without quote or backslash: they need no JSON escaping, which
# lets entry_bytes() place them in the canonical form as they are.
StreamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}:[!#-\[\]-~]{1,200}$")]
TenantName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
IdempotencyKey = Annotated[str, Field(pattern=r"^[!#-\[\]-~]{1,200}$")]


def _json_object(value: Any) -> dict[str, Any]:
    # Only the top-level type is checked here; the canonical walk in payload_bytes() checks
    # every value inside. pydantic's own dict validation would copy the payload first.
    if type(value) is not dict:
        raise ValueError("must be a JSON object")
    return value


JsonObject = Annotated[
    dict[str, Any], PlainValidator(_json_object, json_schema_input_type=dict[str, Any])
]


class EntryInput(BaseModel):
    """One entry as a client submits it (a JSONL line, an API body)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    type: TypeName
    stream: StreamName
    tenant: TenantName
    payload: JsonObject
    schema_version: Annotated[int, Field(ge=1, le=1000, strict=True)] = 1
    occurred_at: AwareDatetime | None = None
    idempotency_key: IdempotencyKey | None = None
    expected_version: Annotated[int, Field(ge=0, strict=True)] | None = None

    def request_digest(self, payload: bytes) -> bytes:
        """SHA-256 of what the client said, so a retry can be told from a different request.

        ``payload`` is the payload's canonical bytes (:func:`payload_bytes`), which the sealer
        has already computed: the envelope fields are hashed with them, not canonicalised again.
        An entry that admission rewrote (:meth:`rewritten`) keeps the digest of the original.
        """
        private = self.__pydantic_private__  # None but on a _RewrittenEntry
        if private and private["_said_digest"] is not None:
            digest: bytes = private["_said_digest"]
            return digest
        said = {
            "type": self.type,
            "schema_version": self.schema_version,
            "stream": self.stream,
            "tenant": self.tenant,
            "occurred_at": format_time(self.occurred_at) if self.occurred_at else None,
        }
        return hashlib.sha256(canonical_bytes(said) + b"\n" + payload).digest()

    def rewritten(
        self, payload: dict[str, Any], *, said: dict[str, Any] | None = None
    ) -> EntryInput:
        """This entry with the payload the ledger stores (normalised, priced, encrypted …),
        keeping the request digest of what the client sent, so that a retry of the same
        request is still recognised after, say, a new price list took effect. ``said`` stands
        in for the client's payload in that digest (personal values blinded, so that the
        digest cannot confirm a guessed value)."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        copy = _RewrittenEntry.model_construct(
            _fields_set=self.model_fields_set, **{**fields, "payload": payload}
        )
        if self.idempotency_key is not None:
            told = self if said is None else self.model_copy(update={"payload": said})
            copy._said_digest = told.request_digest(payload_bytes(told))
        return copy


class _RewrittenEntry(EntryInput):
    """An entry admission rewrote: it remembers the digest of what the client sent. A
    subclass, so that validating the plain :class:`EntryInput` of every appended entry does
    not pay for a private attribute (it doubled the cost of ``model_validate``)."""

    _said_digest: bytes | None = PrivateAttr(default=None)


EntryLike = EntryInput | Mapping[str, Any]
"""What ``append`` takes: a validated :class:`EntryInput` or the raw JSON object of one."""


def parse_entry(data: EntryLike) -> EntryInput:
    """Validate a raw entry object (a validated one passes through); the ValidationError names
    the first field at fault."""
    if isinstance(data, EntryInput):
        return data
    try:
        return EntryInput.model_validate(data)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        raise ValidationError(error["msg"], field=field) from None


def utc_now() -> datetime:
    """The ledger clock's default: timezone-aware UTC now."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """UTC, microseconds, ``Z``: one fixed text form for every timestamp that is hashed."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetimes are not allowed; use timezone-aware UTC")
    if offset:
        moment -= offset
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - twice as fast as isoformat
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
    )


class SealedEntry(NamedTuple):
    """An entry as the log holds it, with its hashes. A tuple in column order, so a store can
    hand it to the database as a row unchanged."""

    seq: int
    event_id: str
    stream: str
    stream_version: int
    type: str
    schema_version: int
    tenant: str
    occurred_at: datetime
    recorded_at: datetime
    idempotency_key: str | None
    request_digest: bytes | None
    entry_bytes: bytes
    leaf_hash: bytes
    prev_hash: bytes
    chain_hash: bytes


class Receipt(NamedTuple):
    """What an append returns for each input: where it is in the log and how to prove it."""

    seq: int
    event_id: str
    stream: str
    stream_version: int
    leaf_hash: bytes
    chain_hash: bytes
    tree_size: int
    duplicate: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "stream": self.stream,
            "stream_version": self.stream_version,
            "leaf_hash": self.leaf_hash.hex(),
            "chain_hash": self.chain_hash.hex(),
            "tree_size": self.tree_size,
            "duplicate": self.duplicate,
        }


def payload_bytes(inp: EntryInput) -> bytes:
    """The RFC 8785 bytes of the payload; ValidationError names the field (``payload.x``)."""
    if type(inp.payload) is not dict:
        raise ValidationError(
            f"must be a JSON object, not {type(inp.payload).__name__}", field="payload"
        )
    try:
        return canonical_bytes(inp.payload)
    except ValidationError as exc:
        raise ValidationError(exc.reason, field="payload" + (exc.field or "$")[1:]) from None


def entry_bytes(
    inp: EntryInput,
    payload: bytes,
    *,
    seq: int,
    event_id: str,
    stream_version: int,
    recorded_at: str,
    occurred_at: str | None = None,
) -> bytes:
    """The RFC 8785 bytes of the entry object, given its payload's RFC 8785 bytes (and,
    optionally, ``occurred_at`` already in :func:`format_time` form).

    JCS sorts members by key and escapes nothing in these envelope values (validated ASCII
    without quote, backslash or control characters; digits; fixed-form times), so the bytes
    are the fixed key order below with the payload spliced in. A property test checks them
    against the reference implementation on the whole object.
    """
    occurred = occurred_at or (format_time(inp.occurred_at) if inp.occurred_at else recorded_at)
    key = "" if inp.idempotency_key is None else f',"idempotency_key":"{inp.idempotency_key}"'
    head = f'{{"event_id":"{event_id}"{key},"occurred_at":"{occurred}","payload":'
    tail = (
        f',"recorded_at":"{recorded_at}","schema_version":{inp.schema_version},"seq":{seq},'
        f'"stream":"{inp.stream}","stream_version":{stream_version},"tenant":"{inp.tenant}",'
        f'"type":"{inp.type}"}}'
    )
    return b"".join((head.encode(), payload, tail.encode()))


def entry_object(
    inp: EntryInput, *, seq: int, event_id: str, stream_version: int, recorded_at: str
) -> dict[str, Any]:
    """The JSON object whose canonical bytes are the entry (``recorded_at`` already formatted)."""
    obj: dict[str, Any] = {
        "seq": seq,
        "event_id": event_id,
        "stream": inp.stream,
        "stream_version": stream_version,
        "type": inp.type,
        "schema_version": inp.schema_version,
        "tenant": inp.tenant,
        "occurred_at": format_time(inp.occurred_at) if inp.occurred_at else recorded_at,
        "recorded_at": recorded_at,
        "payload": inp.payload,
    }
    if inp.idempotency_key is not None:
        obj["idempotency_key"] = inp.idempotency_key
    return obj
