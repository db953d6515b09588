"""Personal data in the log: per-subject encryption and crypto-shredding (DESIGN §2.5).

Pure: no I/O besides the :class:`SubjectKeys` port handed in. See ``envelope`` for the stored
form and ``vault`` for the key life cycle.
"""

from ledger.privacy.envelope import ERASED, is_envelope
from ledger.privacy.vault import (
    MAX_PERSONAL_BYTES,
    MemorySubjectKeys,
    PersonalFields,
    SubjectKey,
    SubjectKeys,
    Vault,
)

__all__ = [
    "ERASED",
    "MAX_PERSONAL_BYTES",
    "MemorySubjectKeys",
    "PersonalFields",
    "SubjectKey",
    "SubjectKeys",
    "Vault",
    "is_envelope",
]
