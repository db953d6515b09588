"""Key files: the checkpoint signing key (an Ed25519 private key in a PKCS#8 PEM file) and
the key-encryption key for personal data (32 random bytes, base64, one line).

Both are created with mode 0600 and never overwritten. Both are refused when their file is
readable by group or others. The key name in checkpoint signatures is the log's
origin, as C2SP tlog-checkpoint recommends.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
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

KEK_BYTES = 32


def create_signing_key(path: Path) -> bool:
    """Create a new key at ``path`` unless one exists; return True if one was created."""
    if path.exists():
        return False
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    _write_private(path, pem)
    return True


def create_kek(path: Path) -> bool:
    """Create a new key-encryption key at ``path`` unless one exists; True if created."""
    if path.exists():
        return False
    _write_private(path, base64.b64encode(os.urandom(KEK_BYTES)) + b"\n")
    return True


def load_kek(path: Path) -> bytes:
    """The key-encryption key at ``path``; ConfigurationError if missing, malformed or
    readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"no key-encryption key at {path}: run `pactledger init` or set PACTLEDGER_KEK"
        ) from None
    _refuse_shared(path, mode)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != KEK_BYTES:
        raise ConfigurationError(
            f"{path} does not hold a key-encryption key (32 bytes in base64 on one line)"
        )
    return key


def _refuse_shared(path: Path, mode: int) -> None:
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}`"
        )


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def load_signer(path: Path, origin: str) -> NoteSigner:
    """The signer for checkpoints of ``origin`` with the key at ``path``; ConfigurationError
    if missing, not an Ed25519 PEM key or readable by others."""
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"no signing key at {path}: run `pactledger init` or set PACTLEDGER_SIGNING_KEY"
        ) from None
    _refuse_shared(path, mode)
    try:
        key = load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return NoteSigner(origin, key)
