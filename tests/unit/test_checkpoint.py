"""Known-answer and failure tests of ledger.integrity.checkpoint (C2SP tlog-checkpoint).

Proves that checkpoint bodies match golang.org/x/mod/sumdb/tlog's golden text and the C2SP
example. A real sum.golang.org checkpoint verifies under the Go checksum database key and
parses to its published size and root (tests/vectors/c2sp_note.json). Signing round-trips.
Every malformed body, tampered checkpoint, unknown signer or wrong origin is refused with
IntegrityError.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import IntegrityError
from ledger.integrity.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.integrity.merkle import leaf_hash
from ledger.integrity.note import NoteSigner, NoteVerifier

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "c2sp_note.json").read_text())
CHECKPOINTS = VECTORS["checkpoints"]
SUMDB = CHECKPOINTS["sumdb_signed"]
C2SP = CHECKPOINTS["c2sp_tlog_checkpoint_example"]
TREE = CHECKPOINTS["go_tlog_tree"]
ROOT_B64 = base64.b64encode(bytes(range(32))).decode()


def sumdb_verifier() -> NoteVerifier:
    """The sum.golang.org key, built field by field (its base64 holds '+'; see test_note)."""
    name, hex_id, encoded = SUMDB["vkey"].split("+", 2)
    raw = base64.b64decode(encoded, validate=True)
    assert raw[0] == 0x01
    return NoteVerifier(name=name, key_id=bytes.fromhex(hex_id), public_key=raw[1:])


def signer(name: str = "example.com/log") -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))


# --- published checkpoints -------------------------------------------------------------------


def test_go_tlog_golden_body() -> None:
    checkpoint = Checkpoint(TREE["origin"], TREE["size"], leaf_hash(TREE["record_ascii"].encode()))
    assert checkpoint.body() == TREE["body"]
    assert Checkpoint.parse(TREE["body"]) == checkpoint


@pytest.mark.parametrize("body", TREE["bad_bodies"], ids=["hex size", "bad root"])
def test_go_tlog_bad_bodies(body: str) -> None:
    with pytest.raises(IntegrityError):
        Checkpoint.parse(body)


def test_real_sumdb_checkpoint_verifies() -> None:
    checkpoint = open_checkpoint(SUMDB["note"], [sumdb_verifier()], origin=SUMDB["origin"])
    assert checkpoint == Checkpoint(
        SUMDB["origin"], SUMDB["size"], base64.b64decode(SUMDB["root_base64"])
    )
    assert SUMDB["note"].startswith(checkpoint.body() + "\n")


def test_real_sumdb_checkpoint_tampered() -> None:
    for old, new in [
        (str(SUMDB["size"]), str(SUMDB["size"] + 1)),
        (SUMDB["root_base64"], ROOT_B64),
        (SUMDB["origin"], "go.sum database trees"),
    ]:
        tampered = SUMDB["note"].replace(old, new, 1)
        assert tampered != SUMDB["note"]
        with pytest.raises(IntegrityError, match="does not verify"):
            open_checkpoint(tampered, [sumdb_verifier()])


def test_origin_mismatch() -> None:
    with pytest.raises(IntegrityError, match="origin"):
        open_checkpoint(SUMDB["note"], [sumdb_verifier()], origin="example.com/other")


def test_c2sp_example_parses_but_has_no_trusted_signature() -> None:
    body = C2SP["note"].split("\n\n")[0] + "\n"
    assert Checkpoint.parse(body) == Checkpoint(
        C2SP["origin"], C2SP["size"], base64.b64decode(C2SP["root_base64"])
    )
    with pytest.raises(IntegrityError, match="not signed by a trusted key"):
        open_checkpoint(C2SP["note"], [sumdb_verifier(), signer(C2SP["origin"]).verifier])


# --- signing round trip --------------------------------------------------------------------


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint("example.com/log", 0, bytes(32)),
        Checkpoint("example.com/log", 1, bytes(range(32))),
        Checkpoint("example.com/log", 2**63, bytes(range(32)), ("ext one", "ext two")),
    ],
    ids=["empty", "one", "extensions"],
)
def test_sign_and_open_round_trip(checkpoint: Checkpoint) -> None:
    key = signer()
    note = sign_checkpoint(checkpoint, key)
    assert note.startswith(checkpoint.body() + "\n")
    assert open_checkpoint(note, [key.verifier], origin="example.com/log") == checkpoint
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_wrong_key_and_extension_tampering() -> None:
    key = signer()
    note = sign_checkpoint(Checkpoint("example.com/log", 5, bytes(32), ("ext",)), key)
    with pytest.raises(IntegrityError, match="not signed by a trusted key"):
        open_checkpoint(note, [signer("example.com/other").verifier])
    with pytest.raises(IntegrityError, match="does not verify"):
        open_checkpoint(note.replace("ext\n", "exu\n"), [key.verifier])


def test_signed_note_that_is_not_a_checkpoint() -> None:
    key = signer()
    with pytest.raises(IntegrityError, match="checkpoint"):
        open_checkpoint(key.sign("just a note\n"), [key.verifier])


# --- parse failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "needs origin, size and root"),
        ("example.com/log\n", "needs origin, size and root"),
        ("example.com/log\n5\n", "needs origin, size and root"),
        (f"example.com/log\n5\n{ROOT_B64}", "needs origin, size and root"),
        (f"\n5\n{ROOT_B64}\n", "origin"),
        (f" example.com/log\n5\n{ROOT_B64}\n", "origin"),
        (f"example.com/log \n5\n{ROOT_B64}\n", "origin"),
        (f"example.com/log\n05\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n00\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n-5\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n+5\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n 5\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n5 \n{ROOT_B64}\n", "size"),
        (f"example.com/log\n1_000\n{ROOT_B64}\n", "size"),
        (f"example.com/log\n0x10\n{ROOT_B64}\n", "size"),
        (f"example.com/log\nfive\n{ROOT_B64}\n", "size"),
        ("example.com/log\n5\nThisIsn'tBase64\n", "base64"),
        (f"example.com/log\n5\n{ROOT_B64[:-1]}\n", "base64"),
        (f"example.com/log\n5\n{bytes(range(32)).hex()}\n", "root"),
        (f"example.com/log\n5\n{base64.b64encode(bytes(31)).decode()}\n", "31 bytes"),
        (f"example.com/log\n5\n{base64.b64encode(bytes(33)).decode()}\n", "33 bytes"),
        (f"example.com/log\n5\n{base64.b64encode(b'bananas').decode()}\n", "7 bytes"),
        ("example.com/log\n5\n\n", "0 bytes"),
        (f"example.com/log\n5\n{ROOT_B64}\n\n", "extension"),
        (f"example.com/log\n5\n{ROOT_B64}\next\n\n", "extension"),
    ],
    ids=repr,
)
def test_parse_failures(body: str, reason: str) -> None:
    with pytest.raises(IntegrityError, match=reason):
        Checkpoint.parse(body)


def test_parse_zero_size_and_extensions() -> None:
    body = f"example.com/log\n0\n{ROOT_B64}\nfirst\nsecond line\n"
    assert Checkpoint.parse(body) == Checkpoint(
        "example.com/log", 0, bytes(range(32)), ("first", "second line")
    )


@pytest.mark.parametrize("size", ["\u0661\u0662", "\u00b2", "\uff15"], ids=repr)
def test_parse_refuses_non_ascii_digits(size: str) -> None:
    with pytest.raises(IntegrityError, match="size"):
        Checkpoint.parse(f"example.com/log\n{size}\n{ROOT_B64}\n")
