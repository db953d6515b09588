"""The hash chain over leaf hashes (pactledger DESIGN §2.2).

``chain_hash[i] = SHA-256(0x02 || chain_hash[i-1] || leaf_hash[i])`` with ``chain_hash[-1]``
equal to 32 zero bytes. The 0x02 prefix keeps chain links apart from RFC 6962 leaves (0x00) and
interior nodes (0x01), so no value can be read as more than one of them.
"""

from __future__ import annotations

import hashlib

CHAIN_PREFIX = b"\x02"
GENESIS_CHAIN_HASH = bytes(32)


def chain_next(previous: bytes, leaf_hash: bytes) -> bytes:
    """The chain hash that follows ``previous`` when ``leaf_hash`` is appended."""
    return hashlib.sha256(CHAIN_PREFIX + previous + leaf_hash).digest()
