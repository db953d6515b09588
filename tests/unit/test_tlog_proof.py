"""C2SP tlog-proof: the text form matches the published marshalling examples
(transparency-dev formats, proof tests), round-trips, and verifies only the right leaf under a
trusted checkpoint."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import IntegrityError
from ledger.integrity.checkpoint import Checkpoint, sign_checkpoint
from ledger.integrity.merkle import CompactRange, leaf_hash, prove_inclusion
from ledger.integrity.note import NoteSigner
from ledger.integrity.tlog_proof import TlogProof, verify_tlog_proof

H1 = hashlib.sha256(b"hash1").digest()
H2 = hashlib.sha256(b"hash2").digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("proof", "text"),
    [
        (
            TlogProof(index=5, audit_path=(H1, H2), checkpoint_note="test checkpoint\n"),
            f"c2sp.org/tlog-proof@v1\nindex 5\n{b64(H1)}\n{b64(H2)}\n\ntest checkpoint\n",
        ),
        (
            TlogProof(
                index=10,
                audit_path=(H1,),
                checkpoint_note="checkpoint data\n",
                extra=b"extra information",
            ),
            f"c2sp.org/tlog-proof@v1\nextra {b64(b'extra information')}\nindex 10\n{b64(H1)}"
            "\n\ncheckpoint data\n",
        ),
        (
            TlogProof(index=0, audit_path=(), checkpoint_note="checkpoint\n"),
            "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n",
        ),
    ],
)
def test_text_form_matches_the_published_examples(proof: TlogProof, text: str) -> None:
    assert proof.text() == text
    assert TlogProof.parse(text) == proof


@pytest.mark.parametrize(
    "text",
    [
        "not a proof at all",
        "c2sp.org/tlog-proof@v1\n",
        "c2sp.org/tlog-proof@v1\nindex notanumber\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n",
        f"c2sp.org/tlog-proof@v1\nindex 0\n{b64(b'short')}\n\ncheckpoint\n",
    ],
)
def test_malformed_proofs_are_refused(text: str) -> None:
    with pytest.raises(IntegrityError):
        TlogProof.parse(text)


class Tree:
    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        compact = CompactRange()
        for index, leaf in enumerate(leaves):
            self.nodes[(0, index)] = leaf
            for level, position, digest in compact.append(leaf):
                self.nodes[(level, position)] = digest

    def read_nodes(self, nodes: object) -> dict[tuple[int, int], bytes]:
        return {node: self.nodes[node] for node in nodes}  # type: ignore[attr-defined]


def test_a_proof_verifies_offline_and_only_for_its_leaf() -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(11)]
    tree = Tree(leaves)
    signer = NoteSigner("log.example/a", Ed25519PrivateKey.generate())
    inclusion = prove_inclusion(tree, index=6, size=11)
    note = sign_checkpoint(Checkpoint("log.example/a", 11, inclusion.root_hash), signer)
    text = TlogProof(index=6, audit_path=inclusion.audit_path, checkpoint_note=note).text()

    proof, checkpoint = verify_tlog_proof(
        text, leaf=leaves[6], verifiers=[signer.verifier], origin="log.example/a"
    )
    assert (proof.index, checkpoint.size) == (6, 11)
    with pytest.raises(IntegrityError):
        verify_tlog_proof(text, leaf=leaves[5], verifiers=[signer.verifier])
    stranger = NoteSigner("log.example/a", Ed25519PrivateKey.generate())
    with pytest.raises(IntegrityError, match="trusted key"):
        verify_tlog_proof(text, leaf=leaves[6], verifiers=[stranger.verifier])
    with pytest.raises(IntegrityError, match="origin"):
        verify_tlog_proof(text, leaf=leaves[6], verifiers=[signer.verifier], origin="other/log")
