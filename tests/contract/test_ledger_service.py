"""The Ledger use cases over every store: signed checkpoints that never fork, proofs against the
current or an older size, and verification of an intact log."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.app.service import Ledger
from ledger.errors import IntegrityError, NotFoundError, ValidationError
from ledger.integrity.checkpoint import open_checkpoint
from ledger.integrity.note import NoteSigner
from ledger.log.ports import LogStore
from ledger.store.memory import MemoryLogStore
from tests.conftest import ORIGIN
from tests.domain import delivered as entry


@pytest.fixture
def ledger(store: LogStore) -> Ledger:
    return Ledger(store=store, signer=NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))


def test_checkpoints_sign_the_current_head(ledger: Ledger) -> None:
    ledger.append([entry(i) for i in range(5)])
    record = ledger.checkpoint()
    assert ledger.signer is not None
    checkpoint = open_checkpoint(record.note, [ledger.signer.verifier], origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root_hash) == (5, ledger.head().root_hash)
    assert ledger.checkpoint() == record  # same size: the same note, stored once
    ledger.append([entry(9)])
    assert ledger.checkpoint().tree_size == 6
    assert [c.tree_size for c in ledger.store.checkpoints()] == [5, 6]


def test_verify_accepts_an_intact_log_and_counts_what_it_checked(ledger: Ledger) -> None:
    for size in (4, 9, 3):
        ledger.append([entry(100 * size + i) for i in range(size)])
        ledger.checkpoint()
    report = ledger.verify()
    assert report.size == 16
    assert report.checkpoints_checked == 3
    assert report.nodes_checked == 1  # of 16 leaves only the level-4 subtree is stored
    assert report.root_hash == ledger.head().root_hash


def test_proofs_against_older_sizes(ledger: Ledger) -> None:
    ledger.append([entry(i) for i in range(10)])
    proof = ledger.prove_inclusion(3, size=4)
    assert proof.tree_size == 4
    proof.verify()
    ledger.prove_consistency(4, 10).verify()
    with pytest.raises(NotFoundError):
        ledger.prove_inclusion(4, size=4)
    with pytest.raises(ValidationError):
        ledger.prove_inclusion(0, size=11)
    with pytest.raises(ValidationError):
        ledger.prove_consistency(7, 5)


def test_no_checkpoint_is_signed_over_a_forked_history() -> None:
    store = MemoryLogStore(ORIGIN)
    ledger = Ledger(store=store, signer=NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))
    ledger.append([entry(i) for i in range(16)])
    ledger.checkpoint()
    ledger.append([entry(99)])
    store.nodes[(4, 0)] = bytes(32)  # the stored subtree the checkpoint signed has changed
    with pytest.raises(IntegrityError, match="refusing to sign"):
        ledger.checkpoint()
    assert [c.tree_size for c in store.checkpoints()] == [16]


def test_checkpoint_needs_a_signing_key() -> None:
    with pytest.raises(NotFoundError, match="pactledger init"):
        Ledger(store=MemoryLogStore(ORIGIN)).checkpoint()
