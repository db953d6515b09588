"""Personal data and ``pactledger erase``, end to end on SQLite (and the erasure use case on
PostgreSQL).

Proves: personal fields are stored only as ciphertext (no plaintext in the database files),
readers see them in clear until erasure and ``[erased]`` after; erasure inside the retention
period needs an erasure request and otherwise appends nothing; it is recorded once
(``SubjectErased``), is idempotent, destroys the wrapped key in the database files too, and
leaves ``verify``, inclusion proofs and checkpoints intact; a missing or over-readable
key-encryption key refuses personal data with a sentence saying what to do.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.app.personal_data import erase_subject, reveal
from ledger.app.service import Ledger
from ledger.errors import ValidationError
from ledger.privacy import Vault
from ledger.store.engine import make_engine
from ledger.store.subject_keys import SqlSubjectKeys
from tests.cli import test_cli
from tests.cli.test_cli import Env, run, run_json, write_lines
from tests.conftest import open_sql_store
from tests.domain import price_list, routed

env = test_cli.env
ready = test_cli.ready

ALICE = {
    "end_user_id": "alice-4711",
    "end_user_email": "alice.wonder@example.eu",
    "end_user_note": "asked about her mortgage arrears",
}
PLAINTEXTS = [v.encode() for v in ALICE.values()]


def database_bytes(env: Env) -> bytes:
    files = [env.database, *(Path(f"{env.database}{suffix}") for suffix in ("-wal", "-shm"))]
    return b"".join(f.read_bytes() for f in files if f.exists())


def keyed(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {**entry, "idempotency_key": key}


def append(env: Env, *entries: dict[str, Any]) -> Any:
    return run("append", str(write_lines(env.tmp / "in.jsonl", list(entries))))


@pytest.fixture
def with_alice(ready: Env) -> Env:
    result = append(
        ready, price_list(), keyed(routed(1, **ALICE), "r1"), routed(2, tenant="globex")
    )
    assert result.exit_code == 0, result.output
    return ready


def alice_entry() -> dict[str, Any]:
    data: dict[str, Any] = run_json("show", "1")
    assert data["entry"]["payload"]["request_id"] == "req-1"
    return data


def test_personal_fields_are_stored_only_encrypted(with_alice: Env) -> None:
    stored = alice_entry()["entry"]["payload"]
    for field, value in ALICE.items():
        assert stored[field].startswith("pdk1:")
        assert value not in stored[field]
    found = database_bytes(with_alice)
    assert found  # the files were read
    for plain in PLAINTEXTS:
        assert plain not in found
    assert b"alice" not in found


def test_readers_see_personal_fields_in_clear_beside_the_stored_entry(with_alice: Env) -> None:
    assert alice_entry()["personal"] == ALICE
    assert "personal" not in run_json("show", "2")  # no personal data, nothing to show


def test_an_idempotent_retry_with_personal_data_is_a_duplicate(with_alice: Env) -> None:
    size = test_cli.head_size()
    result = run("append", "--json", str(write_lines(with_alice.tmp / "again.jsonl", [
        keyed(routed(1, **ALICE), "r1")
    ])))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert test_cli.head_size() == size


def test_erasure_inside_retention_needs_an_erasure_request(with_alice: Env) -> None:
    size = test_cli.head_size()
    result = run("erase", "alice-4711")
    assert result.exit_code == 1
    assert "183-day retention period" in result.output
    assert "--request" in result.output
    assert test_cli.head_size() == size
    assert alice_entry()["personal"] == ALICE


def test_erasure_is_recorded_once_and_reads_show_erased(with_alice: Env) -> None:
    assert run("checkpoint").exit_code == 0
    proof_before = run_json("prove", "inclusion", "1", "--size", "3")
    size = test_cli.head_size()

    first = run_json("erase", "alice-4711", "--request", "DSR-2026-118", "--reason", "Art. 17")
    assert [e["tenant"] for e in first["erased"]] == ["acme"]
    assert first["erased"][0]["seq"] == size
    assert test_cli.head_size() == size + 1
    recorded = run_json("show", str(size))["entry"]
    assert recorded["type"] == "SubjectErased"
    assert recorded["payload"]["request_ref"] == "DSR-2026-118"
    assert "alice" not in json.dumps(recorded)

    again = run_json("erase", "alice-4711", "--request", "DSR-2026-118")
    assert again["erased"] == []
    assert again["already"][0]["seq"] == size
    assert test_cli.head_size() == size + 1

    assert alice_entry()["personal"] == dict.fromkeys(ALICE, "[erased]")
    assert run("verify").exit_code == 0
    assert run("checkpoint").exit_code == 0
    assert run("verify").exit_code == 0  # both checkpoints, consistent
    assert run_json("prove", "inclusion", "1", "--size", "3") == proof_before


def test_erasure_destroys_the_wrapped_key_in_the_database_files(with_alice: Env) -> None:
    keys = SqlSubjectKeys(make_engine(with_alice.url))
    (wrapped,) = [k.wrapped_key for k in _all_keys(keys) if k.wrapped_key]
    assert wrapped in database_bytes(with_alice)
    assert run("erase", "alice-4711", "--request", "DSR-1").exit_code == 0
    assert wrapped not in database_bytes(with_alice)
    keys.engine.dispose()


def test_after_the_retention_period_no_request_is_needed(with_alice: Env) -> None:
    with sqlite3.connect(with_alice.database) as db:
        db.execute(
            "UPDATE subject_keys SET last_used_at = ?",
            ((datetime.now(UTC) - timedelta(days=184)).isoformat(),),
        )
    result = run_json("erase", "alice-4711", "--tenant", "acme")
    assert result["subject_erased"] is True


def test_unknown_subjects_and_tenants_are_clear_errors(with_alice: Env) -> None:
    result = run("erase", "bob", "--request", "DSR-2")
    assert result.exit_code == 1
    assert "no personal data of subject 'bob'" in result.output
    result = run("erase", "alice-4711", "--tenant", "globex", "--request", "DSR-2")
    assert result.exit_code == 1
    assert "tenant(s) globex" in result.output


def test_without_a_kek_personal_data_is_refused_and_nothing_written(
    ready: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACTLEDGER_KEK", str(ready.tmp / "missing.key"))
    size = test_cli.head_size()
    result = append(ready, price_list(), routed(1, **ALICE))
    assert result.exit_code == 1
    assert "payload.end_user_id" in result.output
    assert "pactledger init" in result.output
    assert test_cli.head_size() == size
    for plain in PLAINTEXTS:
        assert plain not in database_bytes(ready)


def test_a_kek_readable_by_others_is_refused(ready: Env) -> None:
    kek = ready.tmp / "keys" / "kek.key"
    kek.chmod(0o644)
    result = run("head")
    assert result.exit_code == 1
    assert f"chmod 600 {kek}" in result.output


def test_init_creates_the_kek_private(env: Env) -> None:
    env.key.parent.mkdir()
    assert run("init").exit_code == 0
    kek = env.tmp / "keys" / "kek.key"
    assert kek.stat().st_mode & 0o777 == 0o600
    before = kek.read_bytes()
    assert run("init").exit_code == 0
    assert kek.read_bytes() == before  # never overwritten


def test_too_much_personal_data_is_refused_naming_the_field(ready: Env) -> None:
    result = append(ready, price_list(), routed(1, end_user_id="a", end_user_note="x" * 1025))
    assert result.exit_code == 1
    assert "payload.end_user_note" in result.output
    assert test_cli.head_size() == 0


@pytest.mark.postgres
def test_erasure_on_postgresql(postgres_url: str) -> None:
    store = open_sql_store(postgres_url)
    keys = SqlSubjectKeys(store.engine)
    ledger = Ledger(store=store, vault=Vault(bytes(range(32)), keys, lambda: datetime.now(UTC)))
    ledger.append([price_list(), routed(1, **ALICE)])
    (entry,) = [e for e in store.iter_entries() if e.seq == 1]
    assert reveal(ledger, [entry]) == [ALICE]
    with pytest.raises(ValidationError):
        erase_subject(ledger, "alice-4711", retention_days=183)
    assert ledger.head().size == 2
    result = erase_subject(ledger, "alice-4711", request_ref="DSR-3", retention_days=183)
    assert result["erased"][0]["seq"] == 2
    assert reveal(ledger, [entry]) == [dict.fromkeys(ALICE, "[erased]")]
    assert (
        erase_subject(ledger, "alice-4711", request_ref="DSR-3", retention_days=183)["erased"] == []
    )
    assert ledger.head().size == 3
    ledger.verify()
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT wrapped_key FROM subject_keys").all()
    assert rows == [(None,)]
    store.engine.dispose()


def _all_keys(keys: SqlSubjectKeys) -> list[Any]:
    with keys.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT key_id FROM subject_keys").all()
    return list(keys.get([r.key_id for r in rows]).values())


def bundle_text(path: Path) -> bytes:
    """Every file of a bundle, decompressed."""
    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def test_after_erasure_bundles_hold_no_plaintext_and_old_bundles_still_verify(
    with_alice: Env,
) -> None:
    assert run("checkpoint").exit_code == 0
    old = with_alice.tmp / "before.zip"
    assert run("export", "--tenant", "acme", "--out", str(old)).exit_code == 0
    vkey = run_json("key", "show")["vkey"]
    for plain in PLAINTEXTS:  # even before erasure a bundle holds ciphertext only
        assert plain not in bundle_text(old)

    assert run("erase", "alice-4711", "--request", "DSR-7").exit_code == 0
    assert run("checkpoint").exit_code == 0
    new = with_alice.tmp / "after.zip"
    assert run("export", "--tenant", "acme", "--out", str(new)).exit_code == 0

    for bundle in (old, new):
        checked = run("verify-bundle", str(bundle), "--trusted-key", vkey)
        assert checked.exit_code == 0, checked.output
        for plain in PLAINTEXTS:
            assert plain not in bundle_text(bundle)
    assert b"SubjectErased" in bundle_text(new)
    for plain in PLAINTEXTS:
        assert plain not in database_bytes(with_alice)
    assert run("verify").exit_code == 0
