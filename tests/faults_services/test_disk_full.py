"""Disk full under the SQLite default: the ``pactledger`` CLI, as a real process, appends to a
ledger on a tiny tmpfs until the filesystem is full.

Proves that the append that no longer fits fails with exit status 1 and one clear sentence (no
traceback), that nothing of that batch is in the log (same size, same root), that ``pactledger
verify`` still passes on the full disk, and that once space is freed (a filler file created
before the ledger is deleted) the same file appends, the log's new tree is consistent with the
root from before the failure (an RFC 9162 consistency proof), ``verify`` passes, and the file
appended once more is all duplicates (its idempotency keys hold across the failure).

The CLI runs as a subprocess (no traceback may appear); heads and the proof are read in-process.

Mounting needs root; without it, or where the kernel refuses (a container without
CAP_SYS_ADMIN), the test is skipped even under CI=true, with the reason. A mount that is
permitted but fails otherwise fails the test under CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.app.service import Ledger
from ledger.integrity.merkle import ConsistencyProof, verify_consistency
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from tests.domain import delivered
from tests.faults_services.private import unavailable

ROOT = Path(__file__).resolve().parents[2]
FS_KIB = 1536
FILLER_BYTES = 768 * 1024  # freed to recover
BATCH = 400  # about 400 KiB of SQLite pages with the inline projections
MAX_BATCHES = 8  # the disk is full long before: about 600 KiB are free after init
REFUSED = ("permission denied", "operation not permitted", "must be superuser", "only root")


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    """A tmpfs of FS_KIB KiB, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    base = Path(tempfile.mkdtemp(prefix="pactledger-diskfull-"))
    mount = base / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_KIB}k", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        base.joinpath("fs").rmdir()
        base.rmdir()
        reason = f"mount -t tmpfs failed: {done.stderr.strip()}"
        if any(word in done.stderr.lower() for word in REFUSED):
            pytest.skip(f"{reason} (this machine does not permit mounts)")
        unavailable(reason)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()
        base.rmdir()


class Cli:
    def __init__(self, database: Path, keys: Path) -> None:
        self.env = {
            **os.environ,
            "PACTLEDGER_DATABASE_URL": f"sqlite:///{database}",
            "PACTLEDGER_SIGNING_KEY": str(keys / "signing-key.pem"),
            "PACTLEDGER_KEK": str(keys / "kek.key"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-c", "from ledger.cli.main import app; app()", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"pactledger {' '.join(args)}: {done.stderr}"
        return done.stdout

    def prove_consistency(self, first: int, second: int) -> ConsistencyProof:
        engine = make_engine(self.env["PACTLEDGER_DATABASE_URL"])
        try:
            return Ledger(store=SqlLogStore(engine)).prove_consistency(first, second)
        finally:
            engine.dispose()

    def head(self) -> dict[str, Any]:
        """The head as ``pactledger head --json`` shows it, read in this process (faster)."""
        engine = make_engine(self.env["PACTLEDGER_DATABASE_URL"])
        try:
            head = SqlLogStore(engine).head()
        finally:
            engine.dispose()
        return {"size": head.size, "root_hash": head.root_hash.hex(),
                "chain_head": head.chain_head.hex()}  # fmt: skip


def write_batch(path: Path, number: int) -> Path:
    lines = []
    for i in range(BATCH):
        entry = delivered(number * BATCH + i, idempotency_key=f"disk-full-{number}-{i}")
        lines.append(json.dumps(entry))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_full_disk_refuses_the_append_cleanly_and_the_ledger_goes_on_after_space_is_freed(
    tiny_fs: Path, tmp_path: Path
) -> None:
    filler = tiny_fs / "filler.bin"
    filler.write_bytes(b"\0" * FILLER_BYTES)
    cli = Cli(tiny_fs / "ledger.db", tmp_path)
    cli.ok("init")

    failed: subprocess.CompletedProcess[str] | None = None
    for number in range(MAX_BATCHES):
        batch = write_batch(tmp_path / f"batch-{number}.jsonl", number)
        before = cli.head()
        done = cli.run("append", str(batch))
        if done.returncode != 0:
            failed = done
            break
    assert failed is not None, f"{MAX_BATCHES} batches of {BATCH} fitted on {FS_KIB} KiB"
    appended_before_full = before["size"]
    assert appended_before_full >= BATCH, "the disk was full before the first batch"

    assert failed.returncode == 1
    message = failed.stderr.strip().splitlines()[-1]
    assert message == (
        "error: the disk that holds the database is full: free space on it and retry; "
        "nothing was appended"
    ), failed.stderr
    assert cli.head() == before  # nothing of the failed batch: same size, root and chain head
    assert "log intact" in cli.ok("verify")

    filler.unlink()
    cli.ok("append", str(batch))  # the very batch that failed, idempotency keys and all
    after = cli.head()
    assert after["size"] == before["size"] + BATCH
    proof = cli.prove_consistency(before["size"], after["size"])
    verify_consistency(
        first_size=before["size"],
        second_size=after["size"],
        first_root=bytes.fromhex(before["root_hash"]),  # remembered before the failure
        second_root=bytes.fromhex(after["root_hash"]),
        consistency_path=proof.consistency_path,
    )
    assert f"{after['size']} entries" in cli.ok("verify")
    retry = json.loads(cli.ok("append", str(batch), "--json"))
    assert retry["appended"] == 0
    assert retry["duplicates"] == BATCH
