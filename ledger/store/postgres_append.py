"""The PostgreSQL append path: one transaction, three round trips of waiting at most.

1. In one pipeline: lock and read the head (``SELECT … FOR UPDATE``, the single-writer lock),
   look up the batch's stream versions and idempotency keys. While the server answers, Python
   validates the inputs.
2. ``COPY`` the entries, each written as soon as it is sealed (payload canonicalised, hashed),
   so the server stores one row while Python prepares the next: storing is the slower side.
3. In one pipeline: insert the new stored Merkle subtrees and move the head; the caller
   commits.

Any error (a refused input, a conflict, a database error) aborts the COPY and the transaction
rolls back whole: nothing of the batch is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger.errors import ConfigurationError
from ledger.log.entry import EntryInput, EntryLike, Receipt, SealedEntry, format_time
from ledger.log.ids import uuid7_batch
from ledger.log.sequencer import Head, KeyedEntry, Sealer, parse_entries

_HEAD_FOR_UPDATE = (
    "SELECT origin, size, chain_head, frontier, root_hash FROM ledger_head WHERE id = 1 FOR UPDATE"
)
# Streams and keys hold no spaces (EntryInput patterns), so one space-joined text parameter
# carries the whole list: far cheaper for the driver than a thousand array elements.
_STREAM_VERSIONS = (
    "SELECT wanted, version FROM (SELECT wanted, (SELECT max(e.stream_version) FROM entries e "
    "WHERE e.stream = wanted) AS version FROM unnest(string_to_array(%s, ' ')) AS wanted) AS v "
    "WHERE version IS NOT NULL"
)
# By (tenant, key) pairs, so the lookup probes the unique (tenant, idempotency_key) index.
_KEYED = (
    "SELECT e.tenant, e.idempotency_key, e.seq, e.event_id, e.stream, e.stream_version, "
    "e.leaf_hash, e.chain_hash, e.request_digest FROM entries e "
    "JOIN unnest(string_to_array(%s, ' '), string_to_array(%s, ' ')) AS wanted(tenant, key) "
    "ON e.tenant = wanted.tenant AND e.idempotency_key = wanted.key "
    "WHERE e.idempotency_key IS NOT NULL"
)
_COPY_ENTRIES = f"COPY entries ({', '.join(SealedEntry._fields)}) FROM STDIN"
_LINES_PER_WRITE = 64  # hand rows to the server in ~40 KiB pieces while sealing goes on
_NULL = "\\N"
_BYTEA = "\\\\x"  # COPY text escapes the backslash of bytea's \x prefix
# Three space-joined text parameters: cheaper for the driver than adapting three arrays.
_INSERT_NODES = (
    "INSERT INTO merkle_nodes (level, idx, hash) SELECT level::smallint, idx::bigint, "
    "decode(hash, 'hex') FROM unnest(string_to_array(%s, ' '), string_to_array(%s, ' '), "
    "string_to_array(%s, ' ')) AS node(level, idx, hash)"
)
_MOVE_HEAD = (
    "UPDATE ledger_head SET size = %s, chain_head = %s, frontier = %s, root_hash = %s, "
    "updated_at = %s WHERE id = 1"
)


def append_postgres(
    raw: Any, inputs: Sequence[EntryLike], *, now: datetime
) -> tuple[list[Receipt], Head]:
    """Append ``inputs`` on the psycopg connection ``raw`` inside its open transaction."""
    # The lookups only need the stream names and keys, read from the raw objects: a malformed
    # one costs a useless lookup at worst, and is refused by validation just after.
    streams = " ".join({_text_field(i, "stream") for i in inputs} - {""})
    pairs = {(_text_field(i, "tenant"), _text_field(i, "idempotency_key")) for i in inputs}
    pairs = {(tenant, key) for tenant, key in pairs if tenant and key}
    with raw.pipeline():
        head_cursor = raw.execute(_HEAD_FOR_UPDATE)
        streams_cursor = raw.execute(_STREAM_VERSIONS, [streams])
        keyed_cursor = (
            raw.execute(_KEYED, [" ".join(t for t, _ in pairs), " ".join(k for _, k in pairs)])
            if pairs
            else None
        )
        parsed = parse_entries(inputs)  # while the server answers
        row = head_cursor.fetchone()
        versions: dict[str, int] = dict(streams_cursor.fetchall())
        keyed = {} if keyed_cursor is None else _keyed_entries(keyed_cursor.fetchall())
    if row is None:
        raise ConfigurationError("the ledger is not initialised: run `pactledger init`")
    head = Head(*row)
    sealer = Sealer(
        head,
        stream_versions=versions,
        keyed=keyed,
        recorded_at=now,
        event_ids=iter(uuid7_batch(len(parsed), now)),
    )
    recorded_text = format_time(now)
    with raw.cursor() as cursor, cursor.copy(_COPY_ENTRIES) as copy:
        lines: list[str] = []
        for index, inp in enumerate(parsed):
            sealed = sealer.seal(index, inp)  # canonicalises the payload: the server is busy
            if sealed is not None:
                lines.append(_copy_line(sealed, sealer.occurred_text, recorded_text))
                if len(lines) == _LINES_PER_WRITE:
                    copy.write("".join(lines))
                    lines.clear()
        copy.write("".join(lines))
        receipts, new_head = sealer.finish()  # while the server drains the last rows
    if new_head.size > head.size:
        with raw.pipeline():  # one round trip for both
            if sealer.nodes:
                raw.execute(
                    _INSERT_NODES,
                    [
                        " ".join(str(level) for level, _, _ in sealer.nodes),
                        " ".join(str(index) for _, index, _ in sealer.nodes),
                        " ".join(digest.hex() for _, _, digest in sealer.nodes),
                    ],
                )
            raw.execute(
                _MOVE_HEAD,
                [new_head.size, new_head.chain_head, new_head.frontier, new_head.root_hash, now],
            )
    return receipts, new_head


def _text_field(data: EntryLike, name: str) -> str:
    value = getattr(data, name) if isinstance(data, EntryInput) else data.get(name)
    return value if isinstance(value, str) else ""


def _copy_line(e: SealedEntry, occurred_text: str, recorded_text: str) -> str:
    """One row in COPY text format. Safe without escaping: identifiers are printable ASCII
    without backslash (EntryInput patterns), bytea goes as ``\\x`` + hex, times as ISO 8601."""
    key = _NULL if e.idempotency_key is None else e.idempotency_key
    digest = _NULL if e.request_digest is None else _BYTEA + e.request_digest.hex()
    return (
        f"{e.seq}\t{e.event_id}\t{e.stream}\t{e.stream_version}\t{e.type}\t"
        f"{e.schema_version}\t{e.tenant}\t{occurred_text}\t{recorded_text}\t"
        f"{key}\t{digest}\t{_BYTEA}{e.entry_bytes.hex()}\t{_BYTEA}{e.leaf_hash.hex()}\t"
        f"{_BYTEA}{e.prev_hash.hex()}\t{_BYTEA}{e.chain_hash.hex()}\n"
    )


def _keyed_entries(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], KeyedEntry]:
    return {(row[0], row[1]): KeyedEntry(*row[2:]) for row in rows}
