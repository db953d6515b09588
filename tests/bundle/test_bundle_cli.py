"""``pactledger export`` and ``pactledger verify-bundle``, end to end on SQLite (and once on
PostgreSQL) through Typer's CliRunner (docs/bundles.md).

One ledger per module is filled the way the CLI fills it (``init``, the projection scenario
appended through a Ledger opened like the CLI's, ``checkpoint``); each test works on its own
copy.

Proves that a bundle verifies offline with the trusted key (and, with a warning, without one),
in an empty directory with every PACTLEDGER_* variable unset; that two exports of one scope are
byte-identical; that tenant, period and request scopes hold exactly their entries; that
``--entry`` prints the RFC 9162 proof ``prove inclusion`` gives; and that each of these is
caught and NAMED: a changed byte in any file, a removed file, an added file, an entry swapped
for another tenant's, a forged checkpoint (another key), a wrong trusted key. Bad input (a bad
--from, --to before --from, an unknown tenant or request, no checkpoint) exits non-zero with a
sentence and writes no file.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.bundle import format as fmt
from ledger.cli.common import open_ledger
from ledger.integrity.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.integrity.merkle import InclusionProof
from ledger.integrity.note import NoteSigner, NoteVerifier
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.cli.test_cli import run, run_json, write_seeded_key
from tests.cli.test_views_cli import copy_database
from tests.projections.scenario import fill_ledger

ORIGIN = "bundle.cli.pactledger.example/log"
ENTRIES = 300


@dataclass(frozen=True)
class Filled:
    tmp: Path
    database: Path
    key: Path
    vkey: str
    size: int
    tenants: dict[str, int]  # entries per tenant
    request_id: str


def point_at(tmp: Path, database: Path, key: Path, patch: pytest.MonkeyPatch) -> None:
    patch.setenv("PACTLEDGER_DATABASE_URL", f"sqlite:///{database}")
    patch.setenv("PACTLEDGER_SIGNING_KEY", str(key))
    patch.setenv("PACTLEDGER_KEK", str(tmp / "kek.key"))
    patch.setenv("PACTLEDGER_ORIGIN", ORIGIN)
    patch.delenv("PACTLEDGER_BROKER_URL", raising=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    tmp = tmp_path_factory.mktemp("bundle-cli")
    database, key = tmp / "ledger.db", tmp / "sig.pem"
    write_seeded_key(key, 1)
    with pytest.MonkeyPatch.context() as patch:
        point_at(tmp, database, key, patch)
        assert run("init").exit_code == 0
        ledger = open_ledger(Settings())
        fill_ledger(ledger, entries=ENTRIES, seed=7)
        assert isinstance(ledger.store, SqlLogStore)
        ledger.store.engine.dispose()
        assert run("checkpoint").exit_code == 0
        vkey = run_json("key", "show")["vkey"]
    engine = make_engine(f"sqlite:///{database}")
    try:
        entries = list(SqlLogStore(engine).iter_entries())
    finally:
        engine.dispose()
    tenants: dict[str, int] = {}
    for e in entries:
        tenants[e.tenant] = tenants.get(e.tenant, 0) + 1
    request = next(e.stream for e in entries if e.stream.startswith("request:"))
    return Filled(tmp, database, key, vkey, len(entries), tenants, request.removeprefix("request:"))


@pytest.fixture
def filled(template: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Filled:
    database = tmp_path / "ledger.db"
    copy_database(template.database, database)
    kek = tmp_path / "kek.key"
    kek.write_bytes((template.tmp / "kek.key").read_bytes())
    kek.chmod(0o600)
    point_at(tmp_path, database, template.key, monkeypatch)
    return Filled(
        tmp_path,
        database,
        template.key,
        template.vkey,
        template.size,
        template.tenants,
        template.request_id,
    )


def export(filled: Filled, *args: str, name: str = "bundle.zip") -> Path:
    out = filled.tmp / name
    result = run("export", *args, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return out


def verify(bundle: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run("verify-bundle", str(bundle), *args, "--json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def failures(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(f["check"], f["file"]) for f in report["failures"]}


def members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(bundle: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    """A copy of the bundle with ``change`` applied to its members (a valid zip again)."""
    files = members(bundle)
    change(files)
    target = bundle.with_name("tampered.zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(fmt.zip_info(name), data)
    return target


def entry_lines(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in members(bundle)[fmt.ENTRIES].splitlines()]


# --- the happy path -------------------------------------------------------------------------


def test_a_whole_log_bundle_verifies_with_the_trusted_key(filled: Filled) -> None:
    bundle = export(filled)
    code, report = verify(bundle, "--trusted-key", filled.vkey)
    assert code == 0, report["failures"]
    assert report["ok"]
    assert not report["warnings"]
    assert report["entry_count"] == filled.size
    names = set(members(bundle))
    assert set(fmt.REQUIRED) | {fmt.MANIFEST, fmt.STATEMENT, fmt.GUIDE} <= names
    assert {fmt.REPORT_RESIDENCY, fmt.REPORT_CHARGEBACK, fmt.REPORT_TRANCHES} <= names
    assert any(n.startswith("policies/") and n.endswith(".v1.yaml") for n in names)
    checks = {c["check"] for c in report["checks"]}
    assert {
        "statement-signature",
        "statement-subject",
        "files",
        "file-hash",
        "checkpoint-signature",
        "consistency",
        "entry-order",
        "entry-scope",
        "multiproof",
    } <= checks


def test_exports_are_byte_identical(filled: Filled) -> None:
    first = export(filled, "--tenant", "acme", name="one.zip")
    second = export(filled, "--tenant", "acme", name="two.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.compress_type == zipfile.ZIP_DEFLATED


def test_verify_needs_no_database_and_no_configuration(
    filled: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = export(filled)
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in list(os.environ):
        if name.startswith("PACTLEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(empty)
    filled.database.unlink()  # no database anywhere
    code, report = verify(bundle, "--trusted-key", filled.vkey)
    assert code == 0, report["failures"]
    code, report = verify(bundle)  # the bundle's own key: verified, with a warning
    assert code == 0
    assert "not" in report["warnings"][0] or "anyone" in report["warnings"][0]
    assert list(empty.iterdir()) == []


def test_the_text_output_lists_checks(filled: Filled) -> None:
    bundle = export(filled, "--tenant", "acme")
    result = run("verify-bundle", str(bundle), "--trusted-key", filled.vkey)
    assert result.exit_code == 0, result.output
    assert "✓" in result.stdout
    assert "bundle verified" in result.stdout


def test_a_tenant_and_period_scope_holds_only_its_entries(filled: Filled) -> None:
    start, end = "2026-10-05T00:00:00Z", "2026-10-20T00:00:00Z"
    bundle = export(filled, "--tenant", "acme", "--from", start, "--to", end)
    lines = entry_lines(bundle)
    assert lines
    assert {line["tenant"] for line in lines} == {"acme"}
    assert all("2026-10-05" <= line["occurred_at"] < "2026-10-20" for line in lines)
    assert [line["seq"] for line in lines] == sorted({line["seq"] for line in lines})
    manifest = json.loads(members(bundle)[fmt.MANIFEST])
    assert manifest["scope"] == {
        "tenants": ["acme"],
        "from": "2026-10-05T00:00:00.000000Z",
        "to": "2026-10-20T00:00:00.000000Z",
        "request_ids": None,
    }
    assert manifest["entry_count"] == len(lines)
    code, report = verify(bundle, "--trusted-key", filled.vkey)
    assert code == 0, report["failures"]


def test_a_request_scope_holds_its_stream(filled: Filled) -> None:
    bundle = export(filled, "--request-id", filled.request_id)
    lines = entry_lines(bundle)
    assert lines
    assert {line["stream"] for line in lines} == {f"request:{filled.request_id}"}
    code, report = verify(bundle, "--trusted-key", filled.vkey)
    assert code == 0, report["failures"]


def test_entry_prints_the_rfc9162_inclusion_proof(filled: Filled) -> None:
    bundle = export(filled, "--tenant", "acme")
    seq = entry_lines(bundle)[3]["seq"]
    code, report = verify(bundle, "--trusted-key", filled.vkey, "--entry", str(seq))
    assert code == 0
    proof = InclusionProof.from_json(report["entry_proof"])
    proof.verify()
    manifest = json.loads(members(bundle)[fmt.MANIFEST])
    expected = run_json("prove", "inclusion", str(seq), "--size", str(manifest["proof_tree_size"]))
    assert proof.to_json() == expected
    missing = run("verify-bundle", str(bundle), "--entry", "0")  # seq 0 is a policy, not acme
    assert missing.exit_code == 2
    assert "entry seq 0 is not in this bundle" in missing.output


# --- tampering: each caught and named -------------------------------------------------------


def flip_middle(data: bytes) -> bytes:
    changed = bytearray(data)
    at = len(changed) // 2
    changed[at] = ord("0") if changed[at] != ord("0") else ord("1")
    return bytes(changed)


@pytest.fixture
def acme_bundle(filled: Filled) -> Path:
    return export(filled, "--tenant", "acme")


def test_a_changed_byte_in_any_file_is_named(filled: Filled, acme_bundle: Path) -> None:
    for name in members(acme_bundle):

        def change(files: dict[str, bytes], name: str = name) -> None:
            files[name] = flip_middle(files[name])

        code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
        assert code == 1, name
        assert name in {file for _, file in failures(report)}, (name, report["failures"])


def test_a_removed_file_is_named(filled: Filled, acme_bundle: Path) -> None:
    for name in (fmt.REPORT_RESIDENCY, fmt.CHECKPOINT, fmt.ENTRIES, fmt.MANIFEST):

        def change(files: dict[str, bytes], name: str = name) -> None:
            del files[name]

        code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
        assert code == 1
        assert ("file-missing", name) in failures(report), report["failures"]


def test_an_added_file_is_named(filled: Filled, acme_bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        files["reports/extra.csv"] = b"a,b\r\n"

    code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
    assert code == 1
    assert failures(report) == {("file-extra", "reports/extra.csv")}


def test_an_entry_swapped_for_another_tenants_is_named(filled: Filled, acme_bundle: Path) -> None:
    other = export(filled, "--tenant", "globex", name="globex.zip")
    stranger = members(other)[fmt.ENTRIES].splitlines()[2]

    def change(files: dict[str, bytes]) -> None:
        lines = files[fmt.ENTRIES].splitlines()
        lines[2] = stranger
        files[fmt.ENTRIES] = (
            b"\n".join(sorted(lines, key=lambda line: json.loads(bytes(line))["seq"])) + b"\n"
        )

    code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
    assert code == 1
    found = failures(report)
    assert ("entry-scope", fmt.ENTRIES) in found
    assert ("file-hash", fmt.ENTRIES) in found
    assert ("multiproof", fmt.INCLUSION) in found
    scope = next(f for f in report["failures"] if f["check"] == "entry-scope")
    assert "'globex'" in scope["detail"]


def test_a_forged_checkpoint_is_named(filled: Filled, acme_bundle: Path) -> None:
    forger = other_signer()

    def change(files: dict[str, bytes]) -> None:
        genuine = Checkpoint.parse(files[fmt.CHECKPOINT].decode().split("\n\n")[0] + "\n")
        files[fmt.CHECKPOINT] = sign_checkpoint(genuine, forger).encode()

    code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
    assert code == 1
    found = failures(report)
    assert ("checkpoint-signature", fmt.CHECKPOINT) in found
    assert ("file-hash", fmt.CHECKPOINT) in found


def test_a_wrong_trusted_key_is_named(filled: Filled, acme_bundle: Path) -> None:
    code, report = verify(acme_bundle, "--trusted-key", other_signer().verifier.vkey)
    assert code == 1
    found = failures(report)
    assert ("statement-signature", fmt.STATEMENT) in found
    assert ("verifier-key", fmt.VERIFIER_KEY) in found
    assert ("checkpoint-signature", fmt.CHECKPOINT) in found
    assert ("checkpoint-signature", fmt.CHECKPOINT_NEWEST) in found
    text = run("verify-bundle", str(acme_bundle), "--trusted-key", other_signer().verifier.vkey)
    assert text.exit_code == 1
    assert "FAILED" in text.output
    assert "statement-signature" in text.output


def test_a_bundle_re_signed_with_another_key_fails_against_the_trusted_key(
    filled: Filled, acme_bundle: Path
) -> None:
    """Replacing the key file is not enough: the checkpoints were signed by the ledger."""
    forger = other_signer()

    def change(files: dict[str, bytes]) -> None:
        files[fmt.VERIFIER_KEY] = (forger.verifier.vkey + "\n").encode()

    code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
    assert code == 1
    assert ("verifier-key", fmt.VERIFIER_KEY) in failures(report)


def test_not_a_zip_is_named(filled: Filled) -> None:
    path = filled.tmp / "junk.zip"
    path.write_bytes(b"not a zip")
    code, report = verify(path, "--trusted-key", filled.vkey)
    assert code == 1
    assert failures(report) == {("archive", None)}


def other_signer() -> NoteSigner:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32))


# --- bad input: a clear error and no file ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--from", "yesterday"], 2, "--from: not an ISO 8601 time"),
        (["--from", "2026-10-05T00:00:00"], 2, "--from: give a zone"),
        (
            ["--from", "2026-10-20T00:00:00Z", "--to", "2026-10-05T00:00:00Z"],
            2,
            "field 'to': must be after --from",
        ),
        (["--tenant", "nobody"], 1, "no entries of tenant(s) nobody"),
        (["--tenant", "bad name"], 2, "is not a tenant name"),
        (["--request-id", "no-such-request"], 1, "no request 'no-such-request'"),
        (["--tenant", "acme", "--from", "2030-01-01T00:00:00Z"], 1, "selects no entries"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    filled: Filled, args: list[str], code: int, says: str
) -> None:
    out = filled.tmp / "refused.zip"
    result = run("export", *args, "--out", str(out))
    assert result.exit_code == code, result.output
    assert says in " ".join(result.output.split())
    assert not out.exists()
    assert not out.with_name("refused.zip.part").exists()


def test_entries_past_the_newest_checkpoint_are_refused(filled: Filled) -> None:
    from tests.domain import routed

    lines = filled.tmp / "late.jsonl"
    lines.write_text(
        json.dumps(routed(990_001, tenant="acme", occurred_at="2026-11-02T09:00:00Z")) + "\n"
    )
    assert run("append", str(lines)).exit_code == 0
    out = filled.tmp / "late.zip"
    result = run("export", "--tenant", "acme", "--out", str(out))
    assert result.exit_code == 1
    assert "run `pactledger checkpoint`" in " ".join(result.output.split())
    assert not out.exists()
    # a scope that ends before the new entry still exports, against the old checkpoint
    export(filled, "--tenant", "acme", "--to", "2026-11-01T00:00:00Z")
    assert run("checkpoint").exit_code == 0
    bundle = export(filled, "--tenant", "acme", name="after.zip")
    manifest = json.loads(members(bundle)[fmt.MANIFEST])
    assert manifest["tree_size"] == manifest["proof_tree_size"] == filled.size + 1
    code, report = verify(bundle, "--trusted-key", filled.vkey)
    assert code == 0, report["failures"]


def test_an_early_scope_keeps_its_proof_checkpoint_as_the_log_grows(filled: Filled) -> None:
    from tests.domain import routed

    early = export(filled, "--tenant", "acme", "--to", "2026-10-10T00:00:00Z", name="e1.zip")
    lines = filled.tmp / "late.jsonl"
    lines.write_text(
        json.dumps(routed(990_002, tenant="acme", occurred_at="2026-11-03T09:00:00Z")) + "\n"
    )
    assert run("append", str(lines)).exit_code == 0
    assert run("checkpoint").exit_code == 0
    again = export(filled, "--tenant", "acme", "--to", "2026-10-10T00:00:00Z", name="e2.zip")
    one, two = (json.loads(members(b)[fmt.MANIFEST]) for b in (early, again))
    assert one["proof_tree_size"] == two["proof_tree_size"] == filled.size
    assert two["tree_size"] == filled.size + 1
    assert members(early)[fmt.INCLUSION] == members(again)[fmt.INCLUSION]
    code, report = verify(again, "--trusted-key", filled.vkey)
    assert code == 0, report["failures"]


def test_no_checkpoint_is_refused(env_without_checkpoint: Path) -> None:
    out = env_without_checkpoint / "none.zip"
    result = run("export", "--out", str(out))
    assert result.exit_code == 1
    assert "run `pactledger checkpoint`" in " ".join(result.output.split())
    assert not out.exists()


@pytest.fixture
def env_without_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = tmp_path / "sig.pem"
    write_seeded_key(key, 1)
    point_at(tmp_path, tmp_path / "ledger.db", key, monkeypatch)
    assert run("init").exit_code == 0
    ledger = open_ledger(Settings())
    fill_ledger(ledger, entries=40, seed=3)
    assert isinstance(ledger.store, SqlLogStore)
    ledger.store.engine.dispose()
    return tmp_path


# --- PostgreSQL --------------------------------------------------------------------------------


def test_export_and_verify_on_postgresql(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "sig.pem"
    write_seeded_key(key, 1)
    point_at(tmp_path, tmp_path / "unused.db", key, monkeypatch)
    monkeypatch.setenv("PACTLEDGER_DATABASE_URL", postgres_url)
    assert run("init").exit_code == 0
    ledger = open_ledger(Settings())
    fill_ledger(ledger, entries=120, seed=5)
    assert isinstance(ledger.store, SqlLogStore)
    ledger.store.engine.dispose()
    assert run("checkpoint").exit_code == 0
    vkey = run_json("key", "show")["vkey"]
    first, second = tmp_path / "pg1.zip", tmp_path / "pg2.zip"
    for out in (first, second):
        result = run("export", "--tenant", "acme", "--out", str(out))
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    code, report = verify(first, "--trusted-key", vkey)
    assert code == 0, report["failures"]
    assert open_checkpoint(members(first)[fmt.CHECKPOINT].decode(), [NoteVerifier.from_vkey(vkey)])
    assert io.BytesIO(first.read_bytes()).getbuffer().nbytes > 0


@pytest.mark.parametrize("command", ["export", "verify-bundle"])
def test_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_the_hand_check_in_verify_md_runs(filled: Filled, acme_bundle: Path) -> None:
    """The ~20-line hashlib script of VERIFY.md recomputes the root; and fails on a change."""
    import subprocess
    import sys

    files = members(acme_bundle)
    guide = files[fmt.GUIDE].decode()
    script = guide.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(script.splitlines()) <= 25
    workdir = filled.tmp / "unzipped"
    (workdir / "proofs").mkdir(parents=True)
    for name in (fmt.ENTRIES, fmt.INCLUSION):
        (workdir / name).write_bytes(files[name])
    (workdir / "check.py").write_text(script)
    ran = subprocess.run([sys.executable, "check.py"], cwd=workdir, capture_output=True)
    assert ran.returncode == 0, ran.stderr
    (workdir / fmt.ENTRIES).write_bytes(flip_middle(files[fmt.ENTRIES]))
    ran = subprocess.run([sys.executable, "check.py"], cwd=workdir, capture_output=True)
    assert ran.returncode != 0


def test_a_dropped_entry_is_named(filled: Filled, acme_bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        lines = files[fmt.ENTRIES].splitlines(keepends=True)
        del lines[5]
        files[fmt.ENTRIES] = b"".join(lines)

    code, report = verify(rewrite(acme_bundle, change), "--trusted-key", filled.vkey)
    assert code == 1
    found = failures(report)
    assert ("entry-order", fmt.ENTRIES) in found  # the count differs from the manifest
    assert ("multiproof", fmt.INCLUSION) in found  # the tiling has a hole
    tiling = next(f for f in report["failures"] if f["check"] == "multiproof")
    assert "expected the tiling to continue at leaf" in tiling["detail"]
