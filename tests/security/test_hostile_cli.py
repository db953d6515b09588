"""Hostile path arguments to the CLI (issue 9 item 3): SQL and path fragments, ``%00``, a NUL
byte, a directory where a file is expected, a missing directory where a file is written. Each
command exits non-zero with a one-line error (or Click's usage error), never a traceback, shows
no key material, and appends nothing.

The commands run in a deep temporary working directory, so ``../../etc/passwd`` resolves inside
the test's own folder. ``pactledger demo --out`` is sent only values Click refuses before it runs:
the demo clears its ``--out`` directory first (see docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from ledger.cli.main import app
from tests.cli.test_cli import write_seeded_key

ORIGIN = "hostile.pactledger.example/log"
HOSTILE = ("../../etc/passwd", "%00", "' OR 1=1 --", ";DROP TABLE entries", "missing/dir/x")
NUL = "a\x00b"
# command → the path arguments it reads (each is given every hostile value in turn)
READS: dict[str, list[str]] = {
    "append": ["append", "{}"],
    "verify --against": ["verify", "--against", "{}"],
    "verify-bundle": ["verify-bundle", "{}"],
    "policy publish": ["policy", "publish", "{}"],
}
WRITES: dict[str, list[str]] = {
    "export --out": ["export", "--out", "{}"],
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_clean_failure(result: Result, secrets: list[str]) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception),
        result.output,
    )
    assert "Traceback" not in result.output
    assert 'File "' not in result.output
    for secret in secrets:
        assert secret not in result.output


@pytest.fixture
def ledger_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An initialised ledger with one checkpoint; the working directory three levels below; the
    secrets (signing key PEM lines, KEK) returned."""
    keys = tmp_path / "keys"
    keys.mkdir()
    write_seeded_key(keys / "sig.pem", 3)
    monkeypatch.setenv("PACTLEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("PACTLEDGER_SIGNING_KEY", str(keys / "sig.pem"))
    monkeypatch.setenv("PACTLEDGER_KEK", str(keys / "kek.key"))
    monkeypatch.setenv("PACTLEDGER_ORIGIN", ORIGIN)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert invoke("init").exit_code == 0
    assert invoke("checkpoint").exit_code == 0
    pem = (keys / "sig.pem").read_text().splitlines()
    return [line for line in pem if line and "PRIVATE KEY" not in line] + [
        (keys / "kek.key").read_text().strip()
    ]


def head_size() -> int:
    result = invoke("head", "--json")
    assert result.exit_code == 0, result.output
    return int(result.stdout.split('"size": ', 1)[1].split(",", 1)[0].split("\n", 1)[0])


@pytest.mark.parametrize("command", [*READS, *WRITES])
def test_hostile_path_arguments_fail_cleanly_and_append_nothing(
    ledger_dir: list[str], command: str
) -> None:
    size = head_size()
    template = {**READS, **WRITES}[command]
    for value in (*HOSTILE, NUL):
        args = [part.replace("{}", value) for part in template]
        result = invoke(*args)
        if command in WRITES and value not in (NUL, "missing/dir/x"):
            # a writable name is the operator's choice: it is written, inside the working tree
            assert result.exit_code in (0, 1), result.output
            assert result.exception is None or isinstance(result.exception, SystemExit)
            continue
        assert_clean_failure(result, ledger_dir)
        if value != NUL:
            assert value in result.output or "holds no" in result.output, result.output
    assert head_size() == size
    assert not (Path.cwd().parents[1] / "etc" / "passwd").is_file() or command in WRITES


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--out", "."],
        ["export", "--out", "missing/dir/x.zip"],
        ["append", "."],
        ["verify", "--against", "."],
        ["demo", "--out", NUL],
        ["policy", "publish", NUL],
    ],
)
def test_directories_and_missing_parents_fail_cleanly(
    ledger_dir: list[str], args: list[str]
) -> None:
    size = head_size()
    assert_clean_failure(invoke(*args), ledger_dir)
    assert head_size() == size
