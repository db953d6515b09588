"""An attacker with DBA rights edits the database directly; ``pactledger verify`` must notice.

Proves, on SQLite and on PostgreSQL, that:

* without dropping triggers the database itself refuses UPDATE/DELETE (and PostgreSQL TRUNCATE)
  on the append-only tables, and refuses to move the head row backwards or delete it;
* once an attacker drops the triggers, every kind of tampering (a changed entry, a re-hashed
  entry, a deleted row, two swapped rows, a truncated tail with or without a rewound head, a
  forged or altered checkpoint, a bad Merkle node, a bad head, an untrusted external note) makes
  ``pactledger verify --json`` exit 1 and name the kind and the first bad seq;
* an intact log verifies with exit 0 and ``ok: true``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy import exc as sa_exc
from typer.testing import CliRunner

from ledger.app.keys import load_signer
from ledger.app.service import Ledger
from ledger.cli.main import app
from ledger.integrity.canonical import canonical_bytes
from ledger.integrity.chain import GENESIS_CHAIN_HASH, chain_next
from ledger.integrity.checkpoint import Checkpoint, sign_checkpoint
from ledger.integrity.merkle import CompactRange, leaf_hash
from ledger.integrity.note import NoteSigner
from ledger.log.entry import EntryInput
from ledger.store.engine import make_engine
from ledger.store.tables import checkpoints, entries, ledger_head, merkle_nodes
from tests.conftest import ORIGIN, TickingClock, open_sql_store

SIZE = 40
CHECKPOINT_SIZES = (10, 25, 33)

# Which trigger guards which (table, statement), per dialect.
TRIGGERS = {
    "sqlite": {
        ("entries", "UPDATE"): "entries_no_update",
        ("entries", "DELETE"): "entries_no_delete",
        ("merkle_nodes", "UPDATE"): "merkle_nodes_no_update",
        ("merkle_nodes", "DELETE"): "merkle_nodes_no_delete",
        ("checkpoints", "UPDATE"): "checkpoints_no_update",
        ("checkpoints", "DELETE"): "checkpoints_no_delete",
        ("ledger_head", "UPDATE"): "ledger_head_forward_only",
    },
    "postgresql": {
        ("entries", "UPDATE"): "entries_append_only",
        ("entries", "DELETE"): "entries_append_only",
        ("merkle_nodes", "UPDATE"): "merkle_nodes_append_only",
        ("merkle_nodes", "DELETE"): "merkle_nodes_append_only",
        ("checkpoints", "UPDATE"): "checkpoints_append_only",
        ("checkpoints", "DELETE"): "checkpoints_append_only",
        ("ledger_head", "UPDATE"): "ledger_head_forward_only",
    },
}


@dataclass
class World:
    """A 40-entry ledger with checkpoints at 10, 25 and 33, and the attacker's own engine."""

    url: str
    engine: Engine
    signer: NoteSigner
    ledger: Ledger
    notes: dict[int, Path] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def unlock(self, table: str, *statements: str) -> None:
        """Drop the triggers guarding ``statements`` on ``table``, as a DBA attacker would."""
        for statement in statements:
            name = TRIGGERS[self.dialect][(table, statement)]
            if name in self.dropped:
                continue
            suffix = f" ON {table}" if self.dialect == "postgresql" else ""
            with self.engine.begin() as conn:
                conn.execute(text(f"DROP TRIGGER {name}{suffix}"))
            self.dropped.add(name)

    def row(self, seq: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = conn.execute(select(entries).where(entries.c.seq == seq)).one()
        return dict(found._mapping)

    def leaves(self) -> list[bytes]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(entries.c.leaf_hash).order_by(entries.c.seq)).scalars())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


def _inputs(start: int, count: int) -> list[EntryInput]:
    result = []
    for n in range(start, start + count):
        data: dict[str, Any] = {
            "type": "TrancheDelayed",
            "stream": f"tranche:t-{n % 4}",
            "tenant": f"tenant-{n % 3}",
            "payload": {
                "tranche_id": f"t-{n % 4}",
                "milestone": f"m{n}",
                "original_due": "2026-12-01T00:00:00.000000Z",
                "new_due": "2027-01-15T00:00:00.000000Z",
                "reason": f"event {n}",
            },
        }
        if n % 5 == 0:
            data["idempotency_key"] = f"req-{n}"
        result.append(EntryInput.model_validate(data))
    return result


def seeded_key(seed: int) -> Ed25519PrivateKey:
    """A fixed Ed25519 key. Seeds 1-3 give verifier keys with no '+' in their base64 part:
    NoteVerifier.from_vkey cannot parse those that have one yet (see tests/cli/test_cli.py)."""
    assert seed in (1, 2, 3)
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    store = open_sql_store(db_url, clock=TickingClock())
    key_path = tmp_path / "signing-key.pem"
    key_path.write_bytes(
        seeded_key(1).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    key_path.chmod(0o600)  # load_signer refuses a key others can read
    signer = load_signer(key_path, ORIGIN)
    ledger = Ledger(store=store, signer=signer, clock=TickingClock())
    built = World(url=db_url, engine=make_engine(db_url), signer=signer, ledger=ledger)
    done = 0
    for target in (*CHECKPOINT_SIZES, SIZE):
        ledger.append(_inputs(done, target - done))
        done = target
        if target in CHECKPOINT_SIZES:
            record = ledger.checkpoint()
            assert record.tree_size == target
            path = tmp_path / f"checkpoint-{target}.note"
            path.write_text(record.note, encoding="utf-8")
            built.notes[target] = path
    assert ledger.head().size == SIZE
    monkeypatch.setenv("PACTLEDGER_DATABASE_URL", db_url)
    monkeypatch.setenv("PACTLEDGER_SIGNING_KEY", str(key_path))
    monkeypatch.setenv("PACTLEDGER_ORIGIN", ORIGIN)
    yield built
    built.engine.dispose()
    store.engine.dispose()


def verify_cli(*args: str) -> tuple[int, dict[str, Any]]:
    """Run ``pactledger verify --json ARGS``; return the exit code and the parsed JSON."""
    result = CliRunner().invoke(app, ["verify", "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def assert_tampered(kind: str, seq: int | None, *args: str) -> dict[str, Any]:
    code, report = verify_cli(*args)
    assert code == 1, report
    assert report["ok"] is False
    assert (report["kind"], report["seq"]) == (kind, seq), report
    assert isinstance(report["error"], str)
    assert report["error"]
    return report


def rewrite_payload(entry_bytes: bytes, **changes: Any) -> bytes:
    obj = orjson.loads(entry_bytes)
    obj["payload"].update(changes)
    return canonical_bytes(obj)


# --- the intact log ----------------------------------------------------------------------------


def test_intact_log_verifies(world: World) -> None:
    code, report = verify_cli()
    assert code == 0
    assert report["ok"] is True
    assert report["size"] == SIZE
    head = world.ledger.head()
    assert report["root_hash"] == head.root_hash.hex()
    assert report["chain_head"] == head.chain_head.hex()
    assert report["checkpoints_checked"] == len(CHECKPOINT_SIZES)
    assert report["nodes_checked"] > 0


def test_intact_log_verifies_against_external_notes(world: World) -> None:
    against = [arg for path in world.notes.values() for arg in ("--against", str(path))]
    code, report = verify_cli(*against, "--trusted-key", world.signer.verifier.vkey)
    assert code == 0
    assert report["ok"] is True
    assert report["checkpoints_checked"] == 2 * len(CHECKPOINT_SIZES)


def test_intact_log_human_output(world: World) -> None:
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert f"log intact: {SIZE} entries" in result.stdout


# --- the database refuses edits while its triggers are in place --------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET tenant = 'evil' WHERE seq = 3",
        "DELETE FROM entries WHERE seq = 39",
        "DELETE FROM entries",
        "UPDATE merkle_nodes SET level = level",
        "DELETE FROM merkle_nodes",
        "UPDATE checkpoints SET note = 'forged'",
        "DELETE FROM checkpoints",
    ],
)
def test_append_only_tables_refuse_changes(world: World, statement: str) -> None:
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), world.engine.begin() as conn:
        conn.execute(text(statement))
    code, report = verify_cli()
    assert (code, report["ok"], report["size"]) == (0, True, SIZE)


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("table", ["entries", "merkle_nodes", "checkpoints", "ledger_head"])
def test_postgres_refuses_truncate(world: World, table: str) -> None:
    assert world.dialect == "postgresql"
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), world.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert world.ledger.head().size == SIZE
    assert verify_cli()[0] == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_head SET size = size - 1",
        "UPDATE ledger_head SET size = 0",
        "UPDATE ledger_head SET origin = 'elsewhere.example/log'",
        "DELETE FROM ledger_head",
    ],
)
def test_head_only_moves_forward(world: World, statement: str) -> None:
    with pytest.raises(sa_exc.DBAPIError, match="head"), world.engine.begin() as conn:
        conn.execute(text(statement))
    head = world.ledger.head()
    assert (head.size, head.origin) == (SIZE, ORIGIN)


# --- (a) a changed entry ------------------------------------------------------------------------


def test_changed_entry_bytes(world: World) -> None:
    k = 17
    forged = rewrite_payload(world.row(k)["entry_bytes"], tokens=0)
    world.unlock("entries", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == k).values(entry_bytes=forged))
    report = assert_tampered("changed", k)
    assert "leaf hash" in report["error"]


def test_changed_entry_human_output(world: World) -> None:
    k = 4
    forged = rewrite_payload(world.row(k)["entry_bytes"], note="rewritten")
    world.unlock("entries", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == k).values(entry_bytes=forged))
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 1
    assert "log verification FAILED (changed at seq 4)" in result.stderr


def test_garbage_entry_bytes(world: World) -> None:
    world.unlock("entries", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == 8).values(entry_bytes=b"\xffnot json"))
    assert_tampered("changed", 8)


def test_changed_column_copy(world: World) -> None:
    world.unlock("entries", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == 22).values(tenant="someone-else"))
    report = assert_tampered("changed", 22)
    assert "tenant" in report["error"]


def test_changed_occurred_at_column(world: World) -> None:
    k = 12
    moved = world.row(k)["occurred_at"].replace(year=2001)
    world.unlock("entries", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == k).values(occurred_at=moved))
    assert_tampered("changed", k)


# --- (b) a changed entry whose own hashes were recomputed ---------------------------------------


def test_changed_entry_with_recomputed_hashes(world: World) -> None:
    k = 17
    row = world.row(k)
    forged = rewrite_payload(row["entry_bytes"], tokens=1)
    leaf = leaf_hash(forged)
    world.unlock("entries", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(
            update(entries)
            .where(entries.c.seq == k)
            .values(
                entry_bytes=forged, leaf_hash=leaf, chain_hash=chain_next(row["prev_hash"], leaf)
            )
        )
    code, report = verify_cli()
    assert code == 1
    assert report["ok"] is False
    assert report["seq"] in (k, k + 1)
    assert report["kind"] in ("changed", "inconsistent-checkpoint")


def test_rewritten_history_is_caught_only_by_checkpoints(world: World) -> None:
    """The smartest attacker re-derives every chain link, Merkle node and the head."""
    k = 17
    rows = [world.row(seq) for seq in range(SIZE)]
    rows[k]["entry_bytes"] = rewrite_payload(rows[k]["entry_bytes"], tokens=2)
    compact, chain, nodes = CompactRange(), GENESIS_CHAIN_HASH, []
    for row in rows:
        row["leaf_hash"] = leaf_hash(row["entry_bytes"])
        row["prev_hash"], chain = chain, chain_next(chain, row["leaf_hash"])
        row["chain_hash"] = chain
        nodes.extend(compact.append(row["leaf_hash"]))
    world.unlock("entries", "UPDATE")
    world.unlock("merkle_nodes", "DELETE")
    with world.engine.begin() as conn:
        for row in rows[k:]:
            conn.execute(
                update(entries)
                .where(entries.c.seq == row["seq"])
                .values(
                    **{c: row[c] for c in ("entry_bytes", "leaf_hash", "prev_hash", "chain_hash")}
                )
            )
        conn.execute(delete(merkle_nodes))
        conn.execute(
            insert(merkle_nodes), [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes]
        )
        conn.execute(
            update(ledger_head).values(
                chain_head=chain, frontier=compact.to_bytes(), root_hash=compact.root()
            )
        )
    # The stored checkpoint at 25 is the first signed root above seq 17.
    assert_tampered("inconsistent-checkpoint", 24)
    # Deleting the stored checkpoints hides the rewrite from the database alone...
    world.unlock("checkpoints", "DELETE")
    with world.engine.begin() as conn:
        conn.execute(delete(checkpoints))
    code, report = verify_cli()
    assert (code, report["ok"]) == (0, True)
    # ...but not from a checkpoint kept outside it.
    assert_tampered("inconsistent-checkpoint", 32, "--against", str(world.notes[33]))


# --- (c) a deleted row --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 20])
def test_deleted_row(world: World, k: int) -> None:
    world.unlock("entries", "DELETE")
    with world.engine.begin() as conn:
        conn.execute(delete(entries).where(entries.c.seq == k))
    assert_tampered("missing", k)


# --- (d) two swapped rows -----------------------------------------------------------------------


@pytest.mark.parametrize(("i", "j"), [(5, 30), (31, 6), (11, 12)])
def test_swapped_rows(world: World, i: int, j: int) -> None:
    first, second = world.row(i), world.row(j)
    world.unlock("entries", "DELETE")
    with world.engine.begin() as conn:
        conn.execute(delete(entries).where(entries.c.seq.in_([i, j])))
        conn.execute(insert(entries), [{**second, "seq": i}, {**first, "seq": j}])
    report = assert_tampered("reordered", min(i, j))
    assert "reordered" in report["error"]


# --- (e) a truncated tail -----------------------------------------------------------------------


def _delete_tail(world: World, cut: int) -> None:
    world.unlock("entries", "DELETE")
    with world.engine.begin() as conn:
        conn.execute(delete(entries).where(entries.c.seq >= cut))


def test_truncated_below_stored_checkpoint(world: World) -> None:
    _delete_tail(world, 30)
    report = assert_tampered("truncated", 30)
    assert "33" in report["error"]


def test_truncated_above_last_checkpoint(world: World) -> None:
    _delete_tail(world, 36)
    report = assert_tampered("truncated", 36)
    assert "head" in report["error"]


def test_truncated_with_rewound_head_and_no_stored_checkpoints(world: World) -> None:
    cut = 30
    leaves = world.leaves()[:cut]
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    chain_head = world.row(cut - 1)["chain_hash"]
    _delete_tail(world, cut)
    world.unlock("merkle_nodes", "DELETE")
    world.unlock("checkpoints", "DELETE")
    world.unlock("ledger_head", "UPDATE")
    with world.engine.begin() as conn:
        for level in range(1, 7):
            # Drop every node that covers a removed leaf.
            conn.execute(
                delete(merkle_nodes).where(
                    merkle_nodes.c.level == level, (merkle_nodes.c.idx + 1) * (1 << level) > cut
                )
            )
        conn.execute(delete(checkpoints))
        conn.execute(
            update(ledger_head).values(
                size=cut,
                chain_head=chain_head,
                frontier=compact.to_bytes(),
                root_hash=compact.root(),
            )
        )
    # The database alone now tells a consistent story of 30 entries...
    code, report = verify_cli()
    assert (code, report["ok"], report["size"]) == (0, True, cut)
    code, report = verify_cli("--against", str(world.notes[25]))
    assert (code, report["ok"]) == (0, True)
    # ...which a checkpoint kept outside the database refutes.
    report = assert_tampered("truncated", cut, "--against", str(world.notes[33]))
    assert str(world.notes[33]) in report["error"]
    assert_tampered(
        "truncated", cut, "--against", str(world.notes[10]), "--against", str(world.notes[33])
    )


# --- (f) forged or altered checkpoints ----------------------------------------------------------


def test_checkpoint_signed_by_another_key_of_the_same_name(world: World) -> None:
    forger = NoteSigner(ORIGIN, seeded_key(2))
    head = world.ledger.head()
    note = sign_checkpoint(Checkpoint(ORIGIN, head.size, head.root_hash), forger)
    with world.engine.begin() as conn:  # inserting needs no dropped trigger
        conn.execute(
            insert(checkpoints).values(
                tree_size=head.size,
                root_hash=head.root_hash,
                key_name=ORIGIN,
                key_id=forger.verifier.key_id,
                note=note,
                created_at=world.row(0)["recorded_at"],
            )
        )
    report = assert_tampered("bad-checkpoint", None)
    assert f"stored checkpoint at size {SIZE}" in report["error"]
    assert "not signed by a trusted key" in report["error"]


def test_checkpoint_with_altered_root_in_note(world: World) -> None:
    original = world.notes[25].read_text(encoding="utf-8")
    true_root = base64.b64encode(world.ledger.prove_consistency(25, 25).first_root).decode()
    fake_root = bytes(range(32))
    altered = original.replace(true_root, base64.b64encode(fake_root).decode())
    assert altered != original
    world.unlock("checkpoints", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(
            update(checkpoints)
            .where(checkpoints.c.tree_size == 25)
            .values(note=altered, root_hash=fake_root)
        )
    report = assert_tampered("bad-checkpoint", None)
    assert "stored checkpoint at size 25" in report["error"]
    assert "does not verify" in report["error"]


def test_checkpoint_with_altered_root_column(world: World) -> None:
    world.unlock("checkpoints", "UPDATE")
    with world.engine.begin() as conn:
        conn.execute(
            update(checkpoints).where(checkpoints.c.tree_size == 10).values(root_hash=bytes(32))
        )
    report = assert_tampered("bad-checkpoint", None)
    assert "stored checkpoint at size 10" in report["error"]


def test_validly_signed_checkpoint_of_another_history(world: World, tmp_path: Path) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 20, bytes(range(32))), world.signer)
    path = tmp_path / "other-history.note"
    path.write_text(note, encoding="utf-8")
    assert_tampered("inconsistent-checkpoint", 19, "--against", str(path))


# --- (g) a bad Merkle node ----------------------------------------------------------------------


def test_altered_merkle_node(world: World) -> None:
    world.unlock("merkle_nodes", "UPDATE")
    with world.engine.begin() as conn:
        result = conn.execute(
            update(merkle_nodes)
            .where(merkle_nodes.c.level == 4, merkle_nodes.c.idx == 1)
            .values(hash=bytes(32))
        )
        assert result.rowcount == 1
    report = assert_tampered("bad-node", 16)
    assert "different" in report["error"]


def test_deleted_merkle_node(world: World) -> None:
    world.unlock("merkle_nodes", "DELETE")
    with world.engine.begin() as conn:
        conn.execute(delete(merkle_nodes).where(merkle_nodes.c.level == 5, merkle_nodes.c.idx == 0))
    report = assert_tampered("bad-node", 0)
    assert "missing" in report["error"]


# --- the head row -------------------------------------------------------------------------------


def test_altered_head_root_at_same_size(world: World) -> None:
    # The forward-only trigger lets the size stay; verify still compares the root.
    with world.engine.begin() as conn:
        conn.execute(update(ledger_head).values(root_hash=bytes(32)))
    report = assert_tampered("bad-head", SIZE)
    assert "head row" in report["error"]


def test_entry_smuggled_past_the_head(world: World) -> None:
    last = world.row(SIZE - 1)
    extra = rewrite_payload(last["entry_bytes"], n=SIZE)
    obj = orjson.loads(extra)
    obj.update(seq=SIZE, event_id="01900000-0000-7000-8000-000000000000", stream_version=99)
    data = canonical_bytes(obj)
    leaf = leaf_hash(data)
    with world.engine.begin() as conn:
        conn.execute(
            insert(entries).values(
                {
                    **last,
                    "seq": SIZE,
                    "event_id": obj["event_id"],
                    "stream_version": 99,
                    "idempotency_key": obj.get("idempotency_key"),
                    "entry_bytes": data,
                    "leaf_hash": leaf,
                    "prev_hash": last["chain_hash"],
                    "chain_hash": chain_next(last["chain_hash"], leaf),
                }
            )
        )
    assert_tampered("bad-head", SIZE)


# --- (h) an external note signed by an untrusted key --------------------------------------------


def test_against_note_signed_by_untrusted_key(world: World, tmp_path: Path) -> None:
    stranger = NoteSigner(ORIGIN, seeded_key(3))
    head = world.ledger.head()
    path = tmp_path / "stranger.note"
    path.write_text(sign_checkpoint(Checkpoint(ORIGIN, head.size, head.root_hash), stranger))
    report = assert_tampered("bad-checkpoint", None, "--against", str(path))
    assert f"checkpoint {path}" in report["error"]
    assert "not signed by a trusted key" in report["error"]


def test_against_genuine_note_with_untrusted_trusted_key(world: World) -> None:
    stranger = NoteSigner(ORIGIN, seeded_key(3))
    report = assert_tampered("bad-checkpoint", None, "--trusted-key", stranger.verifier.vkey)
    assert "stored checkpoint" in report["error"]


def test_against_note_of_another_origin(world: World, tmp_path: Path) -> None:
    head = world.ledger.head()
    path = tmp_path / "elsewhere.note"
    path.write_text(
        sign_checkpoint(Checkpoint("other.example/log", head.size, head.root_hash), world.signer)
    )
    report = assert_tampered("bad-checkpoint", None, "--against", str(path))
    assert "origin" in report["error"]
