"""Known-answer and failure tests of ledger.integrity.note (C2SP signed notes, Ed25519).

Proves that pactledger reads and writes the published signed-note examples byte for byte:
the C2SP example key and note, and the golang.org/x/mod/sumdb/note PeterNeumann and EnochRoot
keys and signatures (tests/vectors/c2sp_note.json). Ed25519 is deterministic, so the seed
from the published signer key must reproduce the published signature. Also proves that every
malformed note or verifier key, every bad signature by a trusted key, and every note without a
trusted signature is refused with IntegrityError.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import IntegrityError
from ledger.integrity.note import (
    NoteSigner,
    NoteVerifier,
    SignatureLine,
    key_id,
    open_note,
    split_note,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "c2sp_note.json").read_text())
C2SP = VECTORS["c2sp_example"]
GO = VECTORS["go_sumdb_note"]
EM_DASH = "\u2014"


def go_seed() -> bytes:
    """The Ed25519 seed of the published Go signer key: the 32 bytes after the 0x01 type."""
    prefix1, prefix2, name, hex_id, encoded = GO["skey"].split("+", 4)
    assert (prefix1, prefix2, name, hex_id) == ("PRIVATE", "KEY", GO["name"], GO["key_id"])
    raw = base64.b64decode(encoded)
    assert raw[0] == 0x01
    assert len(raw) == 33
    return raw[1:]


def go_signer() -> NoteSigner:
    return NoteSigner(GO["name"], Ed25519PrivateKey.from_private_bytes(go_seed()))


PETER = NoteVerifier.from_vkey(GO["vkey"])
ENOCH = NoteVerifier.from_vkey(GO["enoch_vkey"])
PETER_LINE: str = GO["signature_line"]
ENOCH_LINE: str = GO["enoch_signature_line"]
TEXT: str = GO["text"]


def resigned_line(line: str, *, name: str | None = None, key_hash: str | None = None) -> str:
    """A copy of a signature line under another key name or key ID (same signature bytes)."""
    old_name, encoded = line.removeprefix(f"{EM_DASH} ").removesuffix("\n").split(" ")
    raw = base64.b64decode(encoded)
    if key_hash is not None:
        raw = bytes.fromhex(key_hash) + raw[4:]
    return f"{EM_DASH} {name or old_name} {base64.b64encode(raw).decode()}\n"


# --- the published examples --------------------------------------------------------------


def test_c2sp_example_key() -> None:
    verifier = NoteVerifier.from_vkey(C2SP["vkey"])
    assert verifier.name == C2SP["name"]
    assert verifier.key_id == bytes.fromhex(C2SP["key_id"])
    assert key_id(C2SP["name"], verifier.public_key) == bytes.fromhex(C2SP["key_id"])
    assert verifier.vkey == C2SP["vkey"]


def test_c2sp_example_note_opens() -> None:
    verifier = NoteVerifier.from_vkey(C2SP["vkey"])
    opened = open_note(C2SP["note"], [verifier])
    assert opened.text == C2SP["text"]
    assert opened.verified_by == (verifier,)


def test_go_keys_parse() -> None:
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == bytes.fromhex("c74f20a3")
    assert PETER.vkey == GO["vkey"]
    assert ENOCH.name == "EnochRoot"
    assert ENOCH.key_id == bytes.fromhex("af0cfe78")
    assert ENOCH.vkey == GO["enoch_vkey"]


def test_go_seed_reproduces_published_signature_and_note() -> None:
    signer = go_signer()
    assert signer.verifier == PETER
    assert signer.verifier.vkey == GO["vkey"]
    assert signer.signature_line(TEXT) == PETER_LINE
    assert signer.sign(TEXT) == GO["note"]


def test_go_note_opens_and_splits() -> None:
    assert open_note(GO["note"], [PETER]).text == TEXT
    text, lines = split_note(GO["note"])
    assert text == TEXT
    signature = base64.b64decode(PETER_LINE.split(" ")[2])
    assert lines == [SignatureLine("PeterNeumann", signature[:4], signature[4:])]


def test_go_doubly_signed_note() -> None:
    """TestOpen: one of two signatures verified, both verified, none known."""
    note = f"{TEXT}\n{PETER_LINE}{ENOCH_LINE}"
    assert open_note(note, [PETER]).verified_by == (PETER,)
    assert open_note(note, [ENOCH]).verified_by == (ENOCH,)
    assert open_note(note, [PETER, ENOCH]).verified_by == (PETER, ENOCH)
    with pytest.raises(IntegrityError, match="not signed by a trusted key"):
        open_note(note, [])
    with pytest.raises(IntegrityError, match="not signed by a trusted key"):
        open_note(note, [NoteVerifier.from_vkey(C2SP["vkey"])])


def test_go_duplicated_verified_and_unverified_signatures() -> None:
    """TestOpen: repeated known and unknown signatures, one unknown one mangled."""
    mangled_enoch = ENOCH_LINE[:60] + "ABCD" + ENOCH_LINE[60:]
    note = f"{TEXT}\n{PETER_LINE}{PETER_LINE}{ENOCH_LINE}{ENOCH_LINE}{mangled_enoch}"
    opened = open_note(note, [PETER])
    assert opened.text == TEXT
    assert set(opened.verified_by) == {PETER}


def test_sixteen_signatures_are_accepted() -> None:
    """C2SP signed-note: verifiers MUST accept at least 16 signatures."""
    note = f"{TEXT}\n{PETER_LINE * 15}{ENOCH_LINE}"
    assert open_note(note, [PETER, ENOCH]).text == TEXT


def test_text_may_hold_empty_lines_and_del() -> None:
    signer = go_signer()
    text = "first\n\nthird \x7f line\n"
    opened = open_note(signer.sign(text), [PETER])
    assert opened.text == text


# --- refused notes ---------------------------------------------------------------------------


@pytest.mark.parametrize("message", GO["bad_messages"], ids=range(len(GO["bad_messages"])))
def test_go_malformed_notes(message: str) -> None:
    with pytest.raises(IntegrityError):
        open_note(message, [PETER])


def test_go_invalid_signature_by_known_key() -> None:
    note = f"{TEXT}\n{PETER_LINE[:60]}ABCD{PETER_LINE[60:]}"
    with pytest.raises(IntegrityError, match="does not verify"):
        open_note(note, [PETER])


def test_go_too_many_signatures() -> None:
    note = f"{TEXT}\n{PETER_LINE * 101}"
    with pytest.raises(IntegrityError, match="more than 100"):
        open_note(note, [PETER])
    with pytest.raises(IntegrityError, match="more than 100"):
        open_note(note, [])


def test_tampered_text_is_refused() -> None:
    verifier = NoteVerifier.from_vkey(C2SP["vkey"])
    tampered = C2SP["note"].replace("example message", "exemplary message")
    assert tampered != C2SP["note"]
    with pytest.raises(IntegrityError, match="does not verify"):
        open_note(tampered, [verifier])
    tampered_go = GO["note"].replace("problem is", "problem was")
    with pytest.raises(IntegrityError, match="does not verify"):
        open_note(tampered_go, [PETER])


def test_signature_of_other_text_is_refused() -> None:
    note = f"Another text.\n\n{PETER_LINE}"
    with pytest.raises(IntegrityError, match="does not verify"):
        open_note(note, [PETER])


@pytest.mark.parametrize(
    "line",
    [
        resigned_line(PETER_LINE, key_hash="c74f20a4"),
        resigned_line(PETER_LINE, name="PeterNeuman"),
        resigned_line(PETER_LINE, name="CarmenSandiego"),
    ],
    ids=["same name other key id", "other name same key id", "misnamed"],
)
def test_signature_by_unknown_key_is_ignored(line: str) -> None:
    """C2SP: signatures that share a name or an ID (not both) with a known key are ignored."""
    with pytest.raises(IntegrityError, match="not signed by a trusted key"):
        open_note(f"{TEXT}\n{line}", [PETER])
    assert open_note(f"{TEXT}\n{line}{PETER_LINE}", [PETER]).verified_by == (PETER,)


def test_note_without_blank_line() -> None:
    with pytest.raises(IntegrityError, match="blank line"):
        open_note(f"{TEXT}{PETER_LINE}", [PETER])


def test_note_without_final_newline() -> None:
    with pytest.raises(IntegrityError, match="newline"):
        open_note(GO["note"].removesuffix("\n"), [PETER])


def test_note_without_signature_lines() -> None:
    with pytest.raises(IntegrityError):
        open_note(f"{TEXT}\n\n", [PETER])


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\r", "\x0b", "\x1b", "\x1f"], ids=repr)
def test_control_characters_are_refused(char: str) -> None:
    with pytest.raises(IntegrityError, match="control"):
        open_note(f"{TEXT[:10]}{char}{TEXT[10:]}\n{PETER_LINE}", [PETER])
    with pytest.raises(IntegrityError, match="control"):
        open_note(f"{TEXT}\n{PETER_LINE[:-1]}{char}\n", [PETER])
    with pytest.raises(IntegrityError, match="control"):
        go_signer().sign(f"a{char}b\n")


@pytest.mark.parametrize(
    "line",
    [
        f"{EM_DASH} PeterNeumann !!!!\n",
        f"{EM_DASH} PeterNeumann AAAA\n",
        f"{EM_DASH}  {PETER_LINE.split(' ')[2]}",
        f"{EM_DASH} PeterNeumann\n",
        f"-- PeterNeumann {PETER_LINE.split(' ')[2]}",
        f"{EM_DASH}PeterNeumann {PETER_LINE.split(' ')[2]}",
        PETER_LINE.replace(" x08go", " x08go "),
    ],
    ids=[
        "not base64",
        "too short",
        "empty name",
        "no signature",
        "ascii dashes",
        "no space",
        "space in signature",
    ],
)
def test_malformed_signature_lines(line: str) -> None:
    with pytest.raises(IntegrityError):
        open_note(f"{TEXT}\n{line}", [PETER])


def test_signer_refuses_text_without_final_newline() -> None:
    with pytest.raises(IntegrityError, match="newline"):
        go_signer().sign("no newline")


@pytest.mark.parametrize("name", ["", "has space", "a+b", "tab\tname", "new\nline"], ids=repr)
def test_signer_refuses_invalid_key_names(name: str) -> None:
    with pytest.raises(ValueError, match="key name"):
        NoteSigner(name, Ed25519PrivateKey.from_private_bytes(go_seed()))


# --- verifier keys ---------------------------------------------------------------------------


def _go_vkey_manglings() -> list[str]:
    """TestNewVerifier: every proper substring and every one-byte increment of the key."""
    vkey = GO["vkey"].encode()
    mangled = {
        vkey[i:j].decode()
        for i in range(len(vkey) + 1)
        for j in range(i + 1, len(vkey) + 1)
        if (i, j) != (0, len(vkey))
    }
    for i in range(len(vkey)):
        mangled.add((vkey[:i] + bytes([vkey[i] + 1]) + vkey[i + 1 :]).decode())
    return sorted(mangled)


def test_go_vkey_manglings_are_refused() -> None:
    accepted = []
    for vkey in _go_vkey_manglings():
        try:
            NoteVerifier.from_vkey(vkey)
        except IntegrityError:
            continue
        accepted.append(vkey)
    assert accepted == []


@pytest.mark.parametrize(
    "vkey",
    [
        *GO["bad_vkeys"],
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+zzzzzzzz+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "PeterNeumann",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!",
        "",
    ],
    ids=repr,
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(IntegrityError):
        NoteVerifier.from_vkey(vkey)


PLUS_KEYS = VECTORS["vkeys_with_plus_in_key"]


@pytest.mark.parametrize("case", PLUS_KEYS, ids=[c["name"] for c in PLUS_KEYS])
def test_vkey_with_plus_in_key_prints(case: dict[str, str]) -> None:
    name, hex_id, encoded = case["vkey"].split("+", 2)
    raw = base64.b64decode(encoded, validate=True)
    verifier = NoteVerifier(name=name, key_id=bytes.fromhex(hex_id), public_key=raw[1:])
    assert key_id(name, raw[1:]) == bytes.fromhex(case["key_id"])
    assert verifier.vkey == case["vkey"]


@pytest.mark.parametrize("case", PLUS_KEYS, ids=[c["name"] for c in PLUS_KEYS])
def test_vkey_with_plus_in_key_parses(case: dict[str, str]) -> None:
    verifier = NoteVerifier.from_vkey(case["vkey"])
    assert verifier.name == case["name"]
    assert verifier.key_id == bytes.fromhex(case["key_id"])
    assert verifier.vkey == case["vkey"]


def _seed_cases() -> list[object]:
    cases: list[object] = []
    for n in range(16):
        seed = bytes([n]) * 32
        signer = NoteSigner("example.com/log", Ed25519PrivateKey.from_private_bytes(seed))
        has_plus = "+" in signer.verifier.vkey.split("+", 2)[2]
        cases.append(pytest.param(seed, id=f"seed{n}{'-plus' if has_plus else ''}"))
    return cases


@pytest.mark.parametrize("seed", _seed_cases())
def test_own_vkey_round_trips(seed: bytes) -> None:
    signer = NoteSigner("example.com/log", Ed25519PrivateKey.from_private_bytes(seed))
    verifier = NoteVerifier.from_vkey(signer.verifier.vkey)
    assert verifier == signer.verifier
    assert open_note(signer.sign("round trip\n"), [verifier]).text == "round trip\n"


def test_key_id_depends_on_name_and_algorithm() -> None:
    assert key_id("PeterNeumann", PETER.public_key) == PETER.key_id
    assert key_id("PeterNeumann2", PETER.public_key) != PETER.key_id
    assert key_id("PeterNeumann", PETER.public_key, algorithm=0x04) != PETER.key_id
