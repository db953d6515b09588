"""The ledger's use cases over a :class:`~ledger.log.ports.LogStore` and a checkpoint signer.

Guarantees: only admitted entries are appended (typed by the event catalogue, priced, citing
published policies: see :mod:`ledger.app.admission`); a checkpoint is signed only after the
current tree is proven consistent with the newest checkpoint already stored, so the ledger
never signs two histories; proofs are built from stored complete subtrees (O(log n) reads);
``verify`` streams the whole log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ledger.app.admission import Admission
from ledger.app.published import PublishedCache
from ledger.errors import (
    IntegrityError,
    LedgerError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from ledger.events import Catalogue, default_catalogue
from ledger.integrity.checkpoint import Checkpoint, sign_checkpoint
from ledger.integrity.merkle import (
    ConsistencyProof,
    InclusionProof,
    prove_consistency,
    prove_inclusion,
)
from ledger.integrity.note import NoteSigner, NoteVerifier
from ledger.integrity.tlog_proof import TlogProof
from ledger.log.audit import AuditReport, audit_log, signed_roots
from ledger.log.entry import EntryLike, Receipt, SealedEntry, utc_now
from ledger.log.ports import CheckpointRecord, LogStore
from ledger.log.sequencer import Head
from ledger.privacy import Vault


@dataclass
class Ledger:
    store: LogStore
    signer: NoteSigner | None = None
    clock: Callable[[], datetime] = utc_now
    catalogue: Catalogue = field(default_factory=default_catalogue)
    # Called after every append that committed (ledger.compose: projectors or Celery); it
    # must not raise, and it cannot undo the append.
    after_append: Callable[[], None] | None = None
    # Subject keys for personal fields (None: entries carrying personal data are refused).
    vault: Vault | None = None

    # --- writing --------------------------------------------------------------------------

    def __post_init__(self) -> None:
        self._published = PublishedCache(self.store, self.catalogue)
        # The largest tree size this ledger has seen: the log only grows, so a proof at a
        # size up to it needs no read of the head (one round trip less per proof).
        self._size_seen = 0

    def append(self, inputs: Sequence[EntryLike]) -> list[Receipt]:
        """Admit a batch (catalogue and domain rules, see ``admission``) and append it
        atomically; a refused entry raises with ``.index`` and nothing is written.

        Published policies and price lists are read through a cache that this ledger's own
        publications invalidate at once; another process's are seen within a second (and at
        once where an entry would otherwise be refused for lack of them)."""
        admission = self._admitted(inputs)
        admitted = admission.admit(inputs)
        if not admission.save_subject_keys():  # another process made a subject's key first
            admission = self._admitted(inputs)
            admitted = admission.admit(inputs)
            if not admission.save_subject_keys():
                raise StoreUnavailableError(  # transient, retryable (503 with Retry-After)
                    "the data subjects' keys changed twice during this append; retry it"
                )
        try:
            receipts = self.store.append(admitted)
        finally:
            if admission.publishes:
                self._published.invalidate()
        if self.after_append is not None and any(not r.duplicate for r in receipts):
            self.after_append()
        return receipts

    def _admitted(self, inputs: Sequence[EntryLike]) -> Admission:
        return Admission(self.store, self.catalogue, self.clock, self._published, vault=self.vault)

    def append_admissible(self, inputs: Sequence[EntryLike]) -> list[Receipt | LedgerError]:
        """Append every entry the ledger admits, in one transaction; one result per input, in
        order: its receipt, or the error that refused it (that entry alone is left out and the
        rest appended again without it). An error that is not about one entry (the database
        is down) is raised, and then nothing was written.

        For callers that speak for many independent clients at once: the group commit of
        single-event requests, an OTLP export of many spans.
        """
        results: list[Receipt | LedgerError | None] = [None] * len(inputs)
        positions = list(range(len(inputs)))
        while positions:
            try:
                receipts = self.append([inputs[p] for p in positions])
            except LedgerError as exc:
                index = getattr(exc, "index", None)
                if index is None or not 0 <= index < len(positions):
                    raise
                exc.index = None  # type: ignore[attr-defined]  # it is about its own input
                results[positions.pop(index)] = exc
                continue
            for position, receipt in zip(positions, receipts, strict=True):
                results[position] = receipt
            break
        return [r for r in results if r is not None]

    def checkpoint(self) -> CheckpointRecord:
        """Sign the current tree head, after proving it extends the newest stored checkpoint."""
        signer = self._require_signer()
        head = self.store.head()
        mine = [c for c in self.store.checkpoints() if c.key_id == signer.verifier.key_id]
        if mine:
            latest = mine[-1]
            if latest.tree_size > head.size:
                raise IntegrityError(
                    f"the log holds {head.size} entries but checkpoint size {latest.tree_size} "
                    "was signed before: the log was truncated; run `pactledger verify`"
                )
            proof = prove_consistency(self.store, first=latest.tree_size, second=head.size)
            if proof.first_root != latest.root_hash or proof.second_root != head.root_hash:
                raise IntegrityError(
                    f"stored nodes do not reproduce checkpoint {latest.tree_size} and the head: "
                    "refusing to sign; run `pactledger verify`"
                )
            proof.verify()
        note = sign_checkpoint(Checkpoint(head.origin, head.size, head.root_hash), signer)
        return self.store.add_checkpoint(
            CheckpointRecord(
                tree_size=head.size,
                root_hash=head.root_hash,
                key_name=signer.name,
                key_id=signer.verifier.key_id,
                note=note,
                created_at=self.clock(),
            )
        )

    # --- reading --------------------------------------------------------------------------

    def head(self) -> Head:
        return self.store.head()

    def entry(self, seq: int) -> SealedEntry:
        return self.store.entry(seq)

    def latest_checkpoint(self) -> CheckpointRecord | None:
        return self.store.latest_checkpoint()

    def prove_inclusion(self, seq: int, *, size: int | None = None) -> InclusionProof:
        tree_size = self._tree_size(size)
        if not 0 <= seq < tree_size:
            raise NotFoundError(f"seq {seq} is not in a tree of size {tree_size}")
        return prove_inclusion(self.store, index=seq, size=tree_size)

    def tlog_proof(self, seq: int) -> TlogProof:
        """A C2SP tlog-proof of entry ``seq`` against the newest stored checkpoint."""
        latest = self.latest_checkpoint()
        if latest is None or latest.tree_size <= seq:
            raise NotFoundError(
                f"no signed checkpoint covers seq {seq} yet: run `pactledger checkpoint`"
            )
        proof = prove_inclusion(self.store, index=seq, size=latest.tree_size)
        if proof.root_hash != latest.root_hash:
            raise IntegrityError(
                f"stored nodes do not reproduce checkpoint {latest.tree_size}: "
                "run `pactledger verify`"
            )
        return TlogProof(index=seq, audit_path=proof.audit_path, checkpoint_note=latest.note)

    def prove_consistency(self, first: int, second: int | None = None) -> ConsistencyProof:
        second_size = self._tree_size(second)
        if not 0 <= first <= second_size:
            raise ValidationError(
                f"first size {first} must be between 0 and the second size {second_size}",
                field="first",
            )
        return prove_consistency(self.store, first=first, second=second_size)

    def verify(
        self,
        *,
        external_notes: Sequence[tuple[str, str]] = (),
        trusted: Sequence[NoteVerifier] = (),
        progress: Callable[[int], None] | None = None,
    ) -> AuditReport:
        """Audit the whole stored log; raise TamperedLogError at the first failure."""
        head = self.store.head()
        verifiers = list(trusted)
        if not verifiers and self.signer is not None:
            verifiers = [self.signer.verifier]
        roots = signed_roots(
            self.store.checkpoints(), external_notes, origin=head.origin, verifiers=verifiers
        )
        return audit_log(
            self.store.iter_entries(),
            head=head,
            roots=roots,
            nodes_in=self.store.nodes_in,
            progress=progress,
        )

    def _tree_size(self, size: int | None) -> int:
        if size is not None and 0 <= size <= self._size_seen:
            return size
        current = self.store.head().size
        self._size_seen = max(self._size_seen, current)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise ValidationError(
                f"tree size {size} must be between 0 and the log size {current}", field="size"
            )
        return size

    def _require_signer(self) -> NoteSigner:
        if self.signer is None:
            raise NotFoundError("no signing key is configured: run `pactledger init`")
        return self.signer
