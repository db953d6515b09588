"""Backup and restore with the real PostgreSQL tools: ``pg_dump`` a ledger, restore it into a new
database, and the restored ledger verifies, keeps refusing changes, and carries on the same chain.

A ledger of 3,000 ``InferenceRouted`` entries (plus its price list) with three signed
checkpoints is dumped with ``pg_dump`` in custom format (restored with ``pg_restore``) and in
plain format (restored with ``psql``). On the restored database:

* ``pactledger verify`` (the CLI) passes, against the checkpoint notes kept outside the
  database too, and the head (size, root, chain head) is the original's;
* the append-only triggers came along: UPDATE, DELETE and TRUNCATE of ``entries`` are refused;
* appending continues the chain: the next seq is the old size, ``verify`` passes, and a new
  checkpoint is consistent with the old ones (``pactledger prove consistency``, checked
  against the two signed roots with the RFC 9162 verifier).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.integrity.merkle import verify_consistency
from tests.conftest import IN_CI, create_database, database_url, drop_database
from tests.domain import price_list, routed
from tests.faults.servers import LedgerHome, init_ledger

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TENANT = "acme"
ENTRIES, CHECKPOINT_EVERY = 3000, 1000


def entry(n: int) -> dict[str, Any]:
    return {**routed(n, tenant=TENANT), "idempotency_key": f"backup-{n}"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH: install the PostgreSQL client tools"
        if IN_CI:
            pytest.fail(f"{message} (mandatory in CI)")
        pytest.skip(message)
    return path


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command[:2])} exited {done.returncode}: {done.stderr}"


def _fill(ledger: LedgerHome, notes: Path) -> list[Path]:
    """Entries 0 … ENTRIES-1 after a price list, a checkpoint every CHECKPOINT_EVERY entries,
    each note also written to a file outside the database."""
    kept = []
    with ledger.open() as opened:
        opened.append([price_list()])
        for first in range(0, ENTRIES, CHECKPOINT_EVERY):
            for start in range(first, first + CHECKPOINT_EVERY, 500):
                opened.append([entry(n) for n in range(start, start + 500)])
            kept.append(notes / f"checkpoint-{first + CHECKPOINT_EVERY}.note")
            kept[-1].write_text(opened.checkpoint().note)
    return kept


def _refused(url: str, statement: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(statement)
    return str(caught.value)


@pytest.mark.parametrize("dump_format", ["custom", "plain"])
def test_a_restored_dump_verifies_refuses_changes_and_continues_the_chain(
    postgres_url: str, tmp_path: Path, dump_format: str
) -> None:
    original = init_ledger(postgres_url, tmp_path / "home")
    notes = _fill(original, tmp_path)
    with original.open() as opened:
        now = opened.head()
        head = {
            "size": now.size,
            "root_hash": now.root_hash.hex(),
            "chain_head": now.chain_head.hex(),
        }
    size = head["size"]
    assert size == ENTRIES + 1

    dump = tmp_path / f"ledger.{dump_format}"
    _run(_tool("pg_dump"), f"--format={dump_format}", f"--file={dump}", postgres_url)
    name = create_database()
    try:
        restored_url = database_url(name)
        if dump_format == "custom":
            _run(_tool("pg_restore"), "--exit-on-error", "--no-owner", f"--dbname={restored_url}",
                 str(dump))  # fmt: skip
        else:
            _run(_tool("psql"), "--quiet", "--set=ON_ERROR_STOP=1", f"--file={dump}",
                 restored_url)  # fmt: skip
        restored = LedgerHome(restored_url, original.home)  # same signing key, same origin
        _check_restored(restored, notes, head, tmp_path)
    finally:
        drop_database(name)


def _check_restored(
    restored: LedgerHome, notes: list[Path], head: dict[str, Any], tmp_path: Path
) -> None:
    size = head["size"]
    with restored.open() as opened:
        now = opened.head()
        assert (now.size, now.root_hash.hex(), now.chain_head.hex()) == (
            size, head["root_hash"], head["chain_head"],
        )  # fmt: skip
    report = restored.verify(*notes)
    assert (report["size"], report["root_hash"]) == (size, head["root_hash"])
    assert report["checkpoints_checked"] >= len(notes)

    for statement in (
        "UPDATE entries SET tenant = 'mallory' WHERE seq = 5",
        "DELETE FROM entries WHERE seq = (SELECT max(seq) FROM entries)",
        "TRUNCATE entries",
    ):
        assert "append-only" in _refused(restored.database_url, statement), statement

    with restored.open() as opened:
        assert opened.head().size == size  # nothing was changed by the refused statements
        receipts = opened.append([entry(n) for n in range(ENTRIES, ENTRIES + 500)])
        assert [r.seq for r in receipts] == list(range(size, size + 500))
        (retry,) = opened.append([entry(7)])  # an idempotent retry from before the backup
        assert (retry.duplicate, retry.seq) == (True, 8)  # seq 0 is the price list
        latest = opened.checkpoint()
        assert latest.tree_size == size + 500
        for note in notes[:-1]:  # each checkpoint signed before the backup is extended
            old_size, old_root = _signed(note)
            proof = opened.prove_consistency(old_size, size + 500)
            verify_consistency(
                first_size=old_size, second_size=size + 500, first_root=old_root,
                second_root=latest.root_hash, consistency_path=proof.consistency_path,
            )  # fmt: skip
    new_note = tmp_path / "after-restore.note"
    new_note.write_text(latest.note)
    report = restored.verify(*notes, new_note)
    assert report["size"] == size + 500

    old_size, old_root = _signed(notes[-1])  # the CLI proves the newest old one
    proof_json = restored.cli_json("prove", "consistency", str(old_size), str(size + 500))
    assert proof_json["first_root"] == old_root.hex()
    assert proof_json["second_root"] == latest.root_hash.hex()
    verify_consistency(
        first_size=old_size,
        second_size=size + 500,
        first_root=old_root,
        second_root=latest.root_hash,
        consistency_path=[bytes.fromhex(h) for h in proof_json["consistency_path"]],
    )


def _signed(note: Path) -> tuple[int, bytes]:
    """The tree size and root hash a signed checkpoint note states (lines two and three)."""
    lines = note.read_text().splitlines()
    return int(lines[1]), base64.b64decode(lines[2])
