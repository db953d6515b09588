"""``pactledger provenance REQUEST_ID`` end to end on SQLite through Typer's CliRunner: the
table names every entry with its proof status against the checkpoint; ``--json`` is the API's
JSON (with proofs that verify); ``--format prov`` is PROV-JSON that the ``prov`` library parses,
without personal fields; an unknown request exits 1 with one sentence on stderr."""

from __future__ import annotations

import json

import pytest
from prov.model import ProvDocument

from ledger.integrity.merkle import InclusionProof
from tests.cli.test_cli import Env, run, run_json, write_lines
from tests.domain import price_list
from tests.provenance.scenario import DECISION, REQUEST, decision_line, routed_line


@pytest.fixture
def recorded(ready: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Policies and a price list published; the request decided and routed, a checkpoint, and
    one more inference after it."""
    monkeypatch.setenv("PACTLEDGER_KEK", str(ready.tmp / "keys" / "kek"))
    assert run("policy", "publish").exit_code == 0
    lines = [price_list(), decision_line(), routed_line()]
    result = run("append", str(write_lines(ready.tmp / "request.jsonl", lines)))
    assert result.exit_code == 0, result.output
    assert run("checkpoint").exit_code == 0
    later = [routed_line(input_tokens=7)]
    assert run("append", str(write_lines(ready.tmp / "later.jsonl", later))).exit_code == 0
    return ready


def test_the_table_shows_each_entry_and_its_proof(recorded: Env) -> None:
    result = run("provenance", REQUEST)
    assert result.exit_code == 0, result.output
    body = run_json("provenance", REQUEST)
    for entry in body["entries"]:
        assert str(entry["seq"]) in result.stdout
        assert entry["leaf_hash"][:16] in result.stdout
    assert "ResidencyDecided" in result.stdout
    assert "InferenceRouted" in result.stdout
    rows = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    }
    seqs = [e["seq"] for e in body["entries"]]
    assert set(rows) == {str(seq) for seq in seqs}
    assert "✓ verified" in rows[str(seqs[0])]
    assert "✓ verified" in rows[str(seqs[1])]
    assert "pending" in rows[str(seqs[2])]  # appended after the checkpoint
    assert f"checkpoint size {body['checkpoint']['tree_size']}" in result.stdout


def test_json_is_the_apis_answer_with_proofs_that_verify(recorded: Env) -> None:
    body = run_json("provenance", REQUEST)
    assert set(body) == {"request_id", "checkpoint", "entries"}
    assert body["request_id"] == REQUEST
    assert [e["type"] for e in body["entries"]] == [
        "ResidencyDecided",
        "InferenceRouted",
        "InferenceRouted",
    ]
    checkpoint = body["checkpoint"]
    for entry in body["entries"][:2]:
        proof = InclusionProof.from_json(entry["inclusion_proof"])
        proof.verify()
        assert proof.leaf_hash.hex() == entry["leaf_hash"]
        assert proof.root_hash.hex() == checkpoint["root_hash"]
        assert proof.tree_size == checkpoint["tree_size"]
    assert body["entries"][2]["inclusion_proof"] is None
    canonical = json.loads(body["entries"][1]["canonical"])
    assert canonical["payload"]["decision_id"] == DECISION


def test_format_prov_prints_prov_json(recorded: Env) -> None:
    result = run("provenance", REQUEST, "--format", "prov")
    assert result.exit_code == 0, result.output
    assert "end_user" not in result.stdout
    doc = ProvDocument.deserialize(content=result.stdout, format="json")
    names = {str(r.identifier) for r in doc.get_records() if r.identifier is not None}
    body = run_json("provenance", REQUEST)
    for entry in body["entries"]:
        assert f"pactledger:entry/{entry['seq']}" in names
    assert f"pactledger:decision/{DECISION}" in names
    assert run("provenance", REQUEST, "--format", "prov").stdout == result.stdout


def test_an_unknown_request_fails_with_one_sentence(recorded: Env) -> None:
    result = run("provenance", "req-404")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "no entry of request 'req-404'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert run("provenance", "req-404", "--json").exit_code == 1


def test_a_bad_format_is_a_usage_error(recorded: Env) -> None:
    result = run("provenance", REQUEST, "--format", "xml")
    assert result.exit_code == 2


def test_before_init_it_says_what_to_do(env: Env) -> None:
    result = run("provenance", REQUEST)
    assert result.exit_code == 1
    assert "pactledger init" in result.stderr


def test_help() -> None:
    result = run("provenance", "--help")
    assert result.exit_code == 0
    assert "--format" in result.stdout
