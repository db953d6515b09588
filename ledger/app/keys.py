"""The checkpoint signing key: an Ed25519 private key in a PKCS#8 PEM file (mode 0600).

The key name in checkpoint signatures is the log's origin, as C2SP tlog-checkpoint recommends.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ledger.errors import ConfigurationError
from ledger.integrity.note import NoteSigner


def create_signing_key(path: Path) -> bool:
    """Create a new key at ``path`` unless one exists; return True if one was created."""
    if path.exists():
        return False
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return True


def load_signer(path: Path, origin: str) -> NoteSigner:
    """The signer for checkpoints of ``origin`` with the key at ``path``."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigurationError(
            f"no signing key at {path}: run `pactledger init` or set PACTLEDGER_SIGNING_KEY"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return NoteSigner(origin, key)
