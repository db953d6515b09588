"""Every verification run is recorded once it ends, passed or failed, and its outcome is
returned or raised unchanged; a record that cannot be written never hides the outcome."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.app.service import Ledger
from ledger.app.verification import verify_and_record
from ledger.errors import StoreUnavailableError, TamperedLogError
from ledger.integrity.note import NoteSigner
from ledger.log.entry import EntryInput
from ledger.log.ports import VerificationRun
from ledger.store.memory import MemoryLogStore

ORIGIN = "test.pactledger.example/log"


class Runs:
    def __init__(self, *, broken: bool = False) -> None:
        self.runs: list[VerificationRun] = []
        self.broken = broken

    def record(self, run: VerificationRun) -> None:
        if self.broken:
            raise StoreUnavailableError("the database is read-only")
        self.runs.append(run)

    def latest(self) -> VerificationRun | None:
        return self.runs[-1] if self.runs else None


def _ledger() -> Ledger:
    store = MemoryLogStore(ORIGIN)
    ledger = Ledger(store=store, signer=NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))
    store.append(  # the store's own append: no catalogue needed for these
        [
            EntryInput(
                type="InferenceRouted", stream=f"request:{i}", tenant="acme", payload={"n": i}
            )
            for i in range(20)
        ]
    )
    ledger.checkpoint()
    return ledger


def test_a_passing_run_is_recorded_with_its_size_and_root() -> None:
    ledger, runs = _ledger(), Runs()
    recorded = verify_and_record(ledger, runs, "cli")
    (run,) = runs.runs
    assert (run.ok, run.tree_size, run.root_hash, run.source) == (
        True,
        20,
        recorded.report.root_hash,
        "cli",
    )
    assert run.started_at <= run.finished_at
    assert recorded.record_failed is None


def test_a_failing_run_is_recorded_and_still_raised() -> None:
    ledger, runs = _ledger(), Runs()
    store = ledger.store
    assert isinstance(store, MemoryLogStore)
    store.entries[7] = store.entries[7]._replace(tenant="mallory")
    with pytest.raises(TamperedLogError) as caught:
        verify_and_record(ledger, runs, "dashboard:abc")
    (run,) = runs.runs
    assert (run.ok, run.kind, run.tree_size, run.source) == (
        False,
        caught.value.kind,
        7,
        "dashboard:abc",
    )
    assert run.error is not None
    assert "seq 7" in run.error


def test_a_record_that_cannot_be_written_does_not_hide_the_outcome() -> None:
    recorded = verify_and_record(_ledger(), Runs(broken=True), "cli")
    assert recorded.report.size == 20
    assert recorded.record_failed == "the database is read-only"
