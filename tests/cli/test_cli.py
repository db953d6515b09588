"""The ``pactledger`` command line, end to end on SQLite through Typer's CliRunner.

Proves that ``init`` creates a 0600 signing key once and is idempotent; that ``append`` reports
counts and seqs (text and ``--json``), is idempotent for keyed lines, and refuses every bad
input with exit 1, the line number and the field, appending nothing; that ``head --json``,
``checkpoint`` (an exact C2SP note), ``key show``, ``show --canonical`` (the exact hashed bytes)
and ``prove inclusion|consistency --json`` (proofs that verify, in the DESIGN §2.4 shape) print
what they promise; that out-of-range seqs and sizes, and commands before ``init``, fail with a
sentence saying what to do; and that every command has ``--help``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.integrity.chain import GENESIS_CHAIN_HASH, chain_next
from ledger.integrity.checkpoint import open_checkpoint
from ledger.integrity.merkle import EMPTY_ROOT, ConsistencyProof, InclusionProof
from ledger.integrity.note import NoteVerifier
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from ledger.store.verifications import SqlVerificationLog

ORIGIN = "cli.pactledger.example/log"
HEX_HASH = 64
INCLUSION_KEYS = {"leaf_index", "tree_size", "leaf_hash", "root_hash", "audit_path"}
CONSISTENCY_KEYS = {"first_size", "second_size", "first_root", "second_root", "consistency_path"}


@dataclass
class Env:
    tmp: Path
    database: Path
    key: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    def store(self) -> SqlLogStore:
        return SqlLogStore(make_engine(self.url))


def run(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), input=stdin)
    # Failures must be clean exits, never tracebacks.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    return result


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def head_size() -> int:
    size: int = run_json("head")["size"]
    return size


def delay(n: int, **changes: Any) -> dict[str, Any]:
    """A TrancheDelayed payload: a catalogued event that needs nothing published first."""
    payload: dict[str, Any] = {
        "tranche_id": "gb300-fra-1",
        "milestone": f"m{n}",
        "original_due": "2026-12-01T00:00:00Z",
        "new_due": "2027-01-15T00:00:00Z",
        "reason": f"slip {n}",
    }
    payload.update(changes)
    return payload


def entry(n: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "TrancheDelayed",
        "stream": "model:a",
        "tenant": "acme",
        "payload": delay(n),
    }
    data.update(extra)
    return data


def oversized_price_list() -> dict[str, Any]:
    """A catalogue-valid price list whose canonical entry exceeds 64 KiB."""
    line = {"provider": "aws", "input_per_million": "3", "output_per_million": "15"}
    prices = [{"model": f"m-{i:03d}-" + "x" * 190, **line} for i in range(300)]
    payload = {"price_list_id": "big", "version": 1, "effective_from": "2026-01-01T00:00:00Z"}
    return {
        "type": "PriceListPublished",
        "stream": "price-list:big",
        "tenant": "governance",
        "payload": {**payload, "prices": prices},
    }


def write_lines(path: Path, lines: Sequence[dict[str, Any] | str]) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def write_seeded_key(path: Path, seed: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)  # load_signer refuses a key others can read


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Settings pointing into tmp_path; nothing created yet."""
    found = Env(tmp=tmp_path, database=tmp_path / "ledger.db", key=tmp_path / "keys" / "sig.pem")
    monkeypatch.setenv("PACTLEDGER_DATABASE_URL", found.url)
    monkeypatch.setenv("PACTLEDGER_SIGNING_KEY", str(found.key))
    monkeypatch.setenv("PACTLEDGER_KEK", str(tmp_path / "keys" / "kek.key"))
    monkeypatch.setenv("PACTLEDGER_ORIGIN", ORIGIN)
    return found


@pytest.fixture
def ready(env: Env) -> Env:
    """An initialised, empty ledger with a fixed key (seed 1), so runs are reproducible."""
    env.key.parent.mkdir()
    write_seeded_key(env.key, 1)
    result = run("init")
    assert result.exit_code == 0, result.output
    return env


@pytest.fixture
def filled(ready: Env) -> Env:
    """Seven entries on two streams, some keyed, one with non-ASCII text, one checkpoint at 5."""
    lines = [
        entry(0, idempotency_key="req-0"),
        entry(1, payload=delay(1, reason="café ☕ 𝄞")),
        entry(2, stream="model:b", occurred_at="2026-01-02T03:04:05.678+02:00"),
        entry(3, schema_version=1),
        entry(4, idempotency_key="req-4"),
    ]
    assert run("append", str(write_lines(ready.tmp / "first.jsonl", lines))).exit_code == 0
    assert run("checkpoint").exit_code == 0
    more = [entry(5), entry(6, stream="model:b")]
    assert run("append", str(write_lines(ready.tmp / "second.jsonl", more))).exit_code == 0
    return ready


# --- help ---------------------------------------------------------------------------------------

COMMANDS = [
    [],
    ["init"],
    ["append"],
    ["head"],
    ["checkpoint"],
    ["key"],
    ["key", "show"],
    ["show"],
    ["prove"],
    ["prove", "inclusion"],
    ["prove", "consistency"],
    ["verify"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "pactledger")
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


# --- before init --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["head"],
        ["head", "--json"],
        ["checkpoint"],
        ["key", "show"],
        ["show", "0"],
        ["prove", "inclusion", "0"],
        ["prove", "consistency", "0", "1"],
        ["verify"],
        ["append", "FILE"],
    ],
    ids=" ".join,
)
def test_commands_before_init_say_run_init(env: Env, command: list[str]) -> None:
    events = write_lines(env.tmp / "events.jsonl", [entry(0)])
    args = [str(events) if arg == "FILE" else arg for arg in command]
    result = run(*args)
    assert result.exit_code == 1
    assert "pactledger init" in result.stderr
    assert result.stdout == ""


def test_verify_json_reports_every_failure_as_json(env: Env) -> None:
    """verify --json is read by scripts: even a setup error is a JSON report on stdout."""
    result = run("verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["kind"] == "error"
    assert "pactledger init" in report["error"]


def test_checkpoint_without_key_says_run_init(ready: Env) -> None:
    ready.key.unlink()
    for command in (["checkpoint"], ["key", "show"]):
        result = run(*command)
        assert result.exit_code == 1
        assert "no signing key" in result.stderr
        assert "pactledger init" in result.stderr


# --- init ---------------------------------------------------------------------------------------


def test_init_creates_private_key_and_is_idempotent(env: Env) -> None:
    first = run_json("init")
    assert set(first) == {
        "database", "origin", "size", "signing_key", "key_created", "vkey", "kek", "kek_created",
    }  # fmt: skip
    assert first["kek_created"] is True
    assert first["origin"] == ORIGIN
    assert first["size"] == 0
    assert first["key_created"] is True
    assert first["signing_key"] == str(env.key)
    assert env.key.stat().st_mode & 0o777 == 0o600
    assert first["vkey"].startswith(f"{ORIGIN}+")
    pem = env.key.read_bytes()
    assert b"PRIVATE KEY" in pem

    second = run("init")
    assert second.exit_code == 0
    assert "signing key kept" in second.stdout
    assert ORIGIN in second.stdout
    assert env.key.read_bytes() == pem
    again = run_json("init")
    assert again["key_created"] is False
    assert again["vkey"] == first["vkey"]
    assert env.key.stat().st_mode & 0o777 == 0o600


def test_init_keeps_entries(ready: Env) -> None:
    run("append", str(write_lines(ready.tmp / "e.jsonl", [entry(0), entry(1)])))
    before = run_json("head")
    assert run_json("init")["size"] == 2
    assert run_json("head") == before


def test_init_refuses_a_database_of_another_origin(
    ready: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACTLEDGER_ORIGIN", "other.example/log")
    result = run("init")
    assert result.exit_code == 1
    assert ORIGIN in result.stderr
    assert "PACTLEDGER_ORIGIN" in result.stderr


# --- append -------------------------------------------------------------------------------------


def test_append_json_summary(ready: Env) -> None:
    first = write_lines(ready.tmp / "a.jsonl", [entry(n) for n in range(5)])
    assert run_json("append", str(first)) == {
        "appended": 5,
        "duplicates": 0,
        "first_seq": 0,
        "last_seq": 4,
        "tree_size": 5,
    }
    second = write_lines(ready.tmp / "b.jsonl", [entry(n) for n in range(3)])
    assert run_json("append", str(second)) == {
        "appended": 3,
        "duplicates": 0,
        "first_seq": 5,
        "last_seq": 7,
        "tree_size": 8,
    }
    assert head_size() == 8


def test_append_text_summary(ready: Env) -> None:
    events = write_lines(ready.tmp / "a.jsonl", [entry(n) for n in range(3)])
    result = run("append", str(events))
    assert result.exit_code == 0
    assert "appended 3 entries (seq 0–2); tree size 3" in result.stdout


def test_append_from_stdin(ready: Env) -> None:
    lines = "".join(json.dumps(entry(n)) + "\n" for n in range(2))
    result = run("append", "-", "--json", stdin=lines)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["appended"] == 2


def test_reappending_keyed_lines_appends_nothing(ready: Env) -> None:
    keyed = [entry(n, idempotency_key=f"req-{n}") for n in range(4)]
    events = write_lines(ready.tmp / "keyed.jsonl", keyed)
    assert run_json("append", str(events))["appended"] == 4
    head = run_json("head")
    assert run_json("append", str(events)) == {
        "appended": 0,
        "duplicates": 4,
        "first_seq": None,
        "last_seq": None,
        "tree_size": 4,
    }
    assert run_json("head") == head
    text = run("append", str(events))
    assert text.exit_code == 0
    assert "4 lines were already in the log" in text.stdout
    assert head_size() == 4


def test_reappending_partly_keyed_file_appends_only_unkeyed_lines(ready: Env) -> None:
    lines = [entry(0, idempotency_key="k0"), entry(1), entry(2, idempotency_key="k2")]
    events = write_lines(ready.tmp / "mixed.jsonl", lines)
    run_json("append", str(events))
    assert run_json("append", str(events)) == {
        "appended": 1,
        "duplicates": 2,
        "first_seq": 3,
        "last_seq": 3,
        "tree_size": 4,
    }


GOOD = entry(100)

BAD_INPUTS = {
    "invalid JSON": ([GOOD, '{"type": "x", "stream": '], ["line 2", "not JSON"]),
    "missing field": (
        [GOOD, {k: v for k, v in entry(1).items() if k != "tenant"}],
        ["line 2", "field 'tenant'", "Field required"],
    ),
    "unknown field": (
        [GOOD, entry(1, colour="red")],
        ["line 2", "field 'colour'", "Extra inputs are not permitted"],
    ),
    "naive occurred_at": (
        [GOOD, entry(1, occurred_at="2026-01-01T00:00:00")],
        ["line 2", "field 'occurred_at'", "timezone"],
    ),
    "payload not an object": (
        [GOOD, entry(1, payload=[1, 2])],
        ["line 2", "field 'payload'", "JSON object"],
    ),
    "schema_version a string": (
        [GOOD, entry(1, schema_version="2")],
        ["line 2", "field 'schema_version'", "integer"],
    ),
    "bad stream name": (
        [GOOD, entry(1, stream="NoKindSeparator")],
        ["line 2", "field 'stream'"],
    ),
    "integer beyond 2**53": (
        [
            GOOD,
            entry(
                1,
                type="TrancheRetired",
                payload={
                    "tranche_id": "t",
                    "racks_retired": 2**53,
                    "retired_at": "2026-11-01T00:00:00Z",
                },
            ),
        ],
        ["line 2", "field 'payload.racks_retired'", "2**53"],
    ),
    "unknown event type": (
        [GOOD, entry(1, type="InferenceCompleted")],
        ["line 2", "field 'type'", "unknown event type 'InferenceCompleted'", "TrancheDelayed"],
    ),
    "unknown schema version": (
        [GOOD, entry(1, schema_version=7)],
        ["line 2", "field 'schema_version'", "no schema version 7"],
    ),
    "payload field missing": (
        [GOOD, entry(1, payload={k: v for k, v in delay(1).items() if k != "milestone"})],
        ["line 2", "field 'payload.milestone'", "Field required"],
    ),
    "payload field of the wrong type": (
        [GOOD, entry(1, payload=delay(1, new_due=1767225600))],
        ["line 2", "field 'payload.new_due'", "RFC 3339"],
    ),
    "payload field unknown": (
        [GOOD, entry(1, payload=delay(1, colour="red"))],
        ["line 2", "field 'payload.colour'", "Extra inputs are not permitted"],
    ),
    "naive datetime in the payload": (
        [GOOD, entry(1, payload=delay(1, new_due="2027-01-15T00:00:00"))],
        ["line 2", "field 'payload.new_due'", "timezone"],
    ),
    "money as a float": (
        [
            GOOD,
            entry(
                1,
                type="PriceListPublished",
                stream="price-list:p",
                payload={
                    "price_list_id": "p",
                    "version": 1,
                    "effective_from": "2026-01-01T00:00:00Z",
                    "prices": [
                        {
                            "model": "claude-haiku-4-5",
                            "provider": "aws",
                            "input_per_million": 0.8,
                            "output_per_million": "4",
                        }
                    ],
                },
            ),
        ],
        ["line 2", "field 'payload.prices.0.input_per_million'", "never floats"],
    ),
    "occurred_at far in the future": (
        [GOOD, entry(1, occurred_at="2999-01-01T00:00:00Z")],
        ["line 2", "field 'occurred_at'", "future"],
    ),
    "entry over 64 KiB": (
        [GOOD, oversized_price_list()],
        ["line 2", "field 'payload'", "65536-byte limit"],
    ),
    "expected_version mismatch": (
        [GOOD, entry(1, expected_version=1)],
        ["line 2", "stream 'model:a'", "expected version 1", "at version 4"],
    ),
    "idempotency key reused with different content": (
        [GOOD, entry(1, idempotency_key="seed-0", payload=delay(0, reason="other"))],
        ["line 2", "idempotency key 'seed-0'", "different content", "seq 0"],
    ),
    "idempotency key reused within the file": (
        [entry(1, idempotency_key="new"), GOOD, entry(2, idempotency_key="new")],
        ["line 3", "idempotency key 'new'", "different content"],
    ),
    "blank lines still count": (
        [GOOD, "", "   ", entry(1, colour="red")],
        ["line 4", "field 'colour'"],
    ),
    "every bad line is listed": (
        [entry(1, colour="red"), GOOD, "nope", entry(2, payload="x")],
        ["line 1", "line 3", "line 4", "field 'colour'", "field 'payload'"],
    ),
    "empty file": ([], ["holds no entries"]),
    "only blank lines": (["", "  "], ["holds no entries"]),
}


@pytest.mark.parametrize(("lines", "expected"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_appends_nothing(
    ready: Env, lines: list[dict[str, Any] | str], expected: list[str]
) -> None:
    seed = [entry(n, idempotency_key=f"seed-{n}") for n in range(3)]
    run_json("append", str(write_lines(ready.tmp / "seed.jsonl", seed)))
    before = run_json("head")
    events = write_lines(ready.tmp / "bad.jsonl", lines)
    for args in (["append", str(events)], ["append", str(events), "--json"]):
        result = run(*args)
        assert result.exit_code == 1
        assert result.stdout == ""
        message = result.stderr
        for fragment in expected:
            assert fragment in message, message
        if lines and "holds no entries" not in expected:
            assert "nothing was appended" in message
    assert run_json("head") == before


def test_missing_file(ready: Env) -> None:
    result = run("append", str(ready.tmp / "absent.jsonl"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr
    assert "absent.jsonl" in result.stderr
    assert head_size() == 0


def test_bad_stream_message_shows_the_pattern(ready: Env) -> None:
    result = run("append", str(write_lines(ready.tmp / "bad.jsonl", [entry(1, stream="NoColon")])))
    assert result.exit_code == 1
    assert "^[a-z][a-z0-9_-]{0,63}:" in result.stderr


@pytest.mark.parametrize("case", ["idempotency key", "file name"])
def test_error_text_with_brackets_is_printed_verbatim(ready: Env, case: str) -> None:
    if case == "file name":
        args = ["append", str(ready.tmp / "[/x].jsonl")]
        expected = "[/x].jsonl"
    else:
        keyed = write_lines(ready.tmp / "a.jsonl", [entry(1, idempotency_key="[/x]")])
        assert run("append", str(keyed)).exit_code == 0
        other = write_lines(ready.tmp / "b.jsonl", [entry(2, idempotency_key="[/x]")])
        args = ["append", str(other)]
        expected = "idempotency key '[/x]'"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert expected in result.stderr


# --- head ---------------------------------------------------------------------------------------


def test_head_json_of_empty_log(ready: Env) -> None:
    assert run_json("head") == {
        "origin": ORIGIN,
        "size": 0,
        "root_hash": EMPTY_ROOT.hex(),
        "chain_head": GENESIS_CHAIN_HASH.hex(),
        "latest_checkpoint": None,
    }


def test_head_json_shape(filled: Env) -> None:
    head = run_json("head")
    assert set(head) == {"origin", "size", "root_hash", "chain_head", "latest_checkpoint"}
    assert head["origin"] == ORIGIN
    assert head["size"] == 7
    assert len(head["root_hash"]) == HEX_HASH
    assert head["chain_head"] == run_json("show", "6")["chain_hash"]
    latest = head["latest_checkpoint"]
    assert set(latest) == {"tree_size", "root_hash", "created_at", "behind_by"}
    assert (latest["tree_size"], latest["behind_by"]) == (5, 2)
    assert latest["root_hash"] == run_json("prove", "inclusion", "0", "--size", "5")["root_hash"]
    text = run("head")
    assert text.exit_code == 0
    assert ORIGIN in text.stdout
    assert head["root_hash"] in text.stdout
    assert "2 entries behind" in text.stdout


# --- checkpoint and key -------------------------------------------------------------------------


def test_checkpoint_prints_exactly_a_signed_note(filled: Env) -> None:
    result = run("checkpoint")
    assert result.exit_code == 0
    note = result.stdout
    vkey = run("key", "show").stdout
    assert vkey.endswith("\n")
    verifier = NoteVerifier.from_vkey(vkey.strip())
    checkpoint = open_checkpoint(note, [verifier], origin=ORIGIN)
    head = run_json("head")
    assert checkpoint.size == head["size"] == 7
    assert checkpoint.root_hash.hex() == head["root_hash"]
    lines = note.split("\n")
    assert lines[:2] == [ORIGIN, "7"]
    assert lines[3] == ""
    assert lines[4].startswith(f"— {ORIGIN} ")
    assert note.endswith("\n")
    assert not note.endswith("\n\n")
    assert note == filled.store().checkpoints()[-1].note
    assert head["latest_checkpoint"]["behind_by"] == 0
    # Signing again at the same size returns the stored note.
    assert run("checkpoint").stdout == note
    assert len(filled.store().checkpoints()) == 2


def test_key_show_json(ready: Env) -> None:
    data = run_json("key", "show")
    assert set(data) == {"vkey", "name", "key_id"}
    assert data["name"] == ORIGIN
    verifier = NoteVerifier.from_vkey(data["vkey"])
    assert verifier.key_id.hex() == data["key_id"]
    assert data["vkey"] == run_json("init")["vkey"]


def test_any_printed_vkey_is_accepted_as_trusted_key(env: Env) -> None:
    env.key.parent.mkdir()
    write_seeded_key(env.key, 8)  # its vkey's base64 part holds a '+'
    assert run("init").exit_code == 0
    vkey = run("key", "show").stdout.strip()
    assert vkey.count("+") > 2
    result = run("verify", "--json", "--trusted-key", vkey)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True


# --- show ---------------------------------------------------------------------------------------


def test_show_canonical_prints_the_stored_bytes(filled: Env) -> None:
    store = filled.store()
    chain = GENESIS_CHAIN_HASH
    for seq in range(7):
        result = run("show", str(seq), "--canonical")
        assert result.exit_code == 0
        stored = store.entry(seq)
        assert result.stdout_bytes == stored.entry_bytes
        assert not result.stdout_bytes.endswith(b"\n")
        shown = run_json("show", str(seq))
        assert set(shown) == {"entry", "leaf_hash", "prev_hash", "chain_hash"}
        assert hashlib.sha256(b"\x00" + result.stdout_bytes).hexdigest() == shown["leaf_hash"]
        assert shown["entry"] == json.loads(result.stdout_bytes)
        assert shown["entry"]["seq"] == seq
        assert shown["prev_hash"] == chain.hex()
        chain = chain_next(chain, bytes.fromhex(shown["leaf_hash"]))
        assert shown["chain_hash"] == chain.hex()
    assert "café ☕ 𝄞".encode() in run("show", "1", "--canonical").stdout_bytes
    assert run_json("show", "2")["entry"]["occurred_at"] == "2026-01-02T01:04:05.678000Z"


def test_show_text(filled: Env) -> None:
    result = run("show", "0")
    assert result.exit_code == 0
    assert run_json("show", "0")["leaf_hash"] in result.stdout


# --- proofs -------------------------------------------------------------------------------------


def test_prove_inclusion_json(filled: Env) -> None:
    root = run_json("head")["root_hash"]
    for size in (None, 1, 5, 6):
        tree_size = 7 if size is None else size
        for seq in range(tree_size):
            extra = [] if size is None else ["--size", str(size)]
            data = run_json("prove", "inclusion", str(seq), *extra)
            assert set(data) == INCLUSION_KEYS
            assert (data["leaf_index"], data["tree_size"]) == (seq, tree_size)
            assert data["leaf_hash"] == run_json("show", str(seq))["leaf_hash"]
            if size is None:
                assert data["root_hash"] == root
            InclusionProof.from_json(data).verify()
    text = run("prove", "inclusion", "3")
    assert text.exit_code == 0
    assert json.loads(text.stdout)["leaf_index"] == 3


def test_prove_consistency_json(filled: Env) -> None:
    roots = {
        n: run_json("prove", "inclusion", "0", "--size", str(n))["root_hash"] for n in range(1, 8)
    }
    for first in range(8):
        for second in range(max(first, 1), 8):
            data = run_json("prove", "consistency", str(first), str(second))
            assert set(data) == CONSISTENCY_KEYS
            assert (data["first_size"], data["second_size"]) == (first, second)
            if first:
                assert data["first_root"] == roots[first]
            assert data["second_root"] == roots[second]
            ConsistencyProof.from_json(data).verify()
    text = run("prove", "consistency", "2", "7")
    assert text.exit_code == 0
    assert json.loads(text.stdout)["second_size"] == 7


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["show", "7"], "no entry at seq 7: the log holds seq 0 to 6"),
        (["show", "1000"], "no entry at seq 1000"),
        (["show", "7", "--canonical"], "no entry at seq 7"),
        (["prove", "inclusion", "7"], "seq 7 is not in a tree of size 7"),
        (["prove", "inclusion", "5", "--size", "5"], "seq 5 is not in a tree of size 5"),
        (["prove", "inclusion", "0", "--size", "8"], "tree size 8 must be between 0 and"),
        (["prove", "inclusion", "0", "--size", "0"], "seq 0 is not in a tree of size 0"),
        (["prove", "consistency", "5", "3"], "first size 5 must be between 0 and"),
        (["prove", "consistency", "1", "8"], "tree size 8 must be between 0 and"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_out_of_range(filled: Env, command: list[str], message: str) -> None:
    result = run(*command)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_show_on_empty_log_says_it_is_empty(ready: Env) -> None:
    result = run("show", "0")
    assert result.exit_code == 1
    assert "no entry at seq 0" in result.stderr
    assert "-1" not in result.stderr


# --- verify -------------------------------------------------------------------------------------


def test_verify_intact_log(filled: Env) -> None:
    assert run("checkpoint").exit_code == 0
    note = filled.tmp / "kept.note"
    note.write_text(run("checkpoint").stdout, encoding="utf-8")
    vkey = run("key", "show").stdout.strip()
    report = run_json("verify", "--against", str(note), "--trusted-key", vkey)
    assert report["ok"] is True
    assert report["size"] == 7
    assert report["root_hash"] == run_json("head")["root_hash"]
    assert report["checkpoints_checked"] == 3
    text = run("verify")
    assert text.exit_code == 0
    assert "log intact: 7 entries" in text.stdout
    # each run is recorded, for the dashboard's overview
    latest = SqlVerificationLog(make_engine(filled.url)).latest()
    assert latest is not None
    assert (latest.ok, latest.tree_size, latest.source) == (True, 7, "cli")
    assert latest.root_hash is not None
    assert latest.root_hash.hex() == report["root_hash"]


def test_verify_unreadable_note(filled: Env) -> None:
    result = run("verify", "--against", str(filled.tmp / "absent.note"))
    assert result.exit_code == 1
    assert "cannot read checkpoint note" in result.stderr


def test_tlog_proof_verifies_offline_against_the_published_vkey(filled: Env) -> None:
    """`prove inclusion --tlog-proof` gives a C2SP proof that checks with the vkey alone."""
    from ledger.integrity.note import NoteVerifier
    from ledger.integrity.tlog_proof import verify_tlog_proof

    vkey = run("key", "show").stdout.strip()
    canonical = run("show", "3", "--canonical").stdout_bytes
    result = run("prove", "inclusion", "3", "--tlog-proof")
    assert result.exit_code == 0, result.output
    proof, checkpoint = verify_tlog_proof(
        result.stdout,
        leaf=hashlib.sha256(b"\x00" + canonical).digest(),
        verifiers=[NoteVerifier.from_vkey(vkey)],
        origin=ORIGIN,
    )
    assert proof.index == 3
    assert checkpoint.size == 5
    beyond = run("prove", "inclusion", "6", "--tlog-proof")
    assert beyond.exit_code == 1
    assert "pactledger checkpoint" in beyond.stderr


def test_demo_runs_end_to_end_and_catches_tampering(tmp_path: Path) -> None:
    """The README's first command: a small run records, proves, verifies and catches an edited
    payload (the whole scenario is checked in tests/integration/test_demo.py)."""
    result = run(
        "demo", "--out", str(tmp_path / "demo"), "--requests", "600", "--days", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["replay"]["decisions"] == 600  # one residency decision per request
    assert figures["replay"]["identical"] == 600
    ledger = figures["ledger"]
    assert ledger["verified"] is True
    assert figures["tamper"]["kind"] == "changed"
    assert ledger["entries"] // 3 <= figures["tamper"]["seq"] < ledger["entries"]
    assert ledger["checkpoints"] >= 1
    assert (tmp_path / "demo" / "checkpoint.txt").read_text().startswith("demo.pactledger.example")


def test_checkpoint_json_carries_the_exact_note(filled: Env) -> None:
    text = run("checkpoint").stdout
    data = run_json("checkpoint")
    assert data["note"] == text
    assert data["tree_size"] == run_json("head", "--json")["size"]
    assert data["root_hash"] == run_json("head", "--json")["root_hash"]


def test_append_refuses_a_line_with_a_key_twice(ready: Env) -> None:
    entry = {"type": "TrancheDelayed", "stream": "tranche:t1", "tenant": "acme"}
    line = json.dumps({**entry, "payload": delay(1)})
    doubled = line[:-1] + ', "tenant": "other"}'  # "tenant" twice: a reader keeps one of them
    path = ready.tmp / "dup.jsonl"
    path.write_text(line + "\n" + doubled + "\n", encoding="utf-8")
    result = run("append", str(path))
    assert result.exit_code == 1
    assert "line 2: key 'tenant' twice in one object" in result.output
    assert head_size() == 0
