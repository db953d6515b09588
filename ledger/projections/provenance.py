"""The provenance index: request id → the seqs of every entry about it (docs/projectors.md,
``provenance``).

Guarantees: an entry is about a request when its payload names a ``request_id`` or, failing
that, its stream is ``request:<id>``; each such entry is indexed once, under that id.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import Fact, Key, Rows, TableSpec

PROVENANCE = TableSpec(
    "view_provenance",
    key=("request_id", "seq"),
    columns=("request_id", "seq", "tenant", "type", "stream"),
    insert_only=True,
)
REQUEST_STREAM = "request:"


def request_of(fact: Fact) -> str | None:
    named = fact.payload.get("request_id")
    if isinstance(named, str) and named:
        return named
    if fact.stream.startswith(REQUEST_STREAM) and len(fact.stream) > len(REQUEST_STREAM):
        return fact.stream[len(REQUEST_STREAM) :]
    return None


class ProvenanceProjection:
    name = "provenance"
    tables: tuple[TableSpec, ...] = (PROVENANCE,)
    types: frozenset[str] | None = None

    def keys(self, fact: Fact) -> Iterable[tuple[str, Key]]:
        request_id = request_of(fact)
        if request_id is not None:
            yield PROVENANCE.name, (request_id, fact.seq)

    def apply(self, fact: Fact, rows: Rows) -> None:
        request_id = request_of(fact)
        if request_id is None:
            return
        rows.put(
            PROVENANCE.name,
            (request_id, fact.seq),
            {
                "request_id": request_id,
                "seq": fact.seq,
                "tenant": fact.tenant,
                "type": fact.type,
                "stream": fact.stream,
            },
        )
